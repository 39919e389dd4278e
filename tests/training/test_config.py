"""Config layering: defaults < TOML file < CLI flags; every option checked where it is declared,
and every bad value or misplaced option named in one line."""

from __future__ import annotations

import math

import pytest

from training.cli import main
from training.config import RunOptions, all_specs, models_taking, read_toml, resolve
from training.errors import ConfigError
from training.loop.trainer import TrainOptions
from training.models import MODELS
from training.options import Spec


def test_flags_override_file_and_file_overrides_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "fm"\ndim = 16\nbatch-size = 512\nlr = 0.01\n')
    config = resolve(read_toml(path), {"dim": 32, "lr": None})
    assert (config.model.dim, config.train.batch_size, config.train.lr) == (32, 512, 0.01)
    assert config.train.epochs == TrainOptions().epochs


def test_flat_table_round_trips_and_holds_only_what_the_run_takes(tmp_path):
    config = resolve({}, {"model": "gmlfm", "distance": "cosine", "weight": False})
    table = config.to_dict()
    assert table["distance"] == "cosine" and "graph" not in table  # GEM off: its options out
    assert resolve(table, {}) == config
    fm = resolve({}, {"model": "fm"}).to_dict()
    assert "distance" not in fm and "layers" not in fm


def test_unknown_key_in_file_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("dimension = 3\n")
    with pytest.raises(ConfigError, match="unknown option 'dimension'"):
        read_toml(path)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("dim = = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_toml(broken)


def test_pairwise_only_distances_refuse_the_other_forms():
    with pytest.raises(ConfigError, match="manhattan distance has only the pairwise form"):
        resolve({}, {"model": "gmlfm", "distance": "manhattan", "form": "additive"})
    config = resolve({}, {"model": "gmlfm", "distance": "manhattan", "form": "pairwise"})
    assert config.model.form == "pairwise"


def test_gmlfm_without_weight_refuses_dropout_it_has_nowhere_to_apply():
    with pytest.raises(ConfigError, match="without its weight has no dropout"):
        resolve({}, {"model": "gmlfm", "weight": False, "dropout": 0.3})
    deep = resolve({}, {"model": "gmlfm", "weight": False, "layers": 2, "dropout": 0.3})
    assert deep.model.dropout == 0.3


def test_transfm_takes_its_own_forms_and_no_dropout():
    assert resolve({}, {"model": "transfm", "form": "prefix"}).model.form == "prefix"
    with pytest.raises(ConfigError, match="--form: 'gram'.*auto, pairwise, prefix"):
        resolve({}, {"model": "transfm", "form": "gram"})
    with pytest.raises(ConfigError, match="--dropout: model transfm does not take"):
        resolve({}, {"model": "transfm", "dropout": 0.3})


def test_gem_options_need_gem():
    with pytest.raises(ConfigError, match="--sampling: a GEM option; it needs --embedding gcn"):
        resolve({}, {"sampling": 0.5})
    assert resolve({}, {"embedding": "gcn", "sampling": 0.5}).gem.sampling == 0.5


# ---- every user error of `fit`, walked from the declarations -------------------------------

def bad_values(spec: Spec) -> list[str]:
    """Values of a flag that its declaration refuses: wrong type, outside the range or the
    choices. Free strings (paths, data specs) are checked where they are used, below."""
    if spec.kind is bool:
        return []  # switches take no value
    if spec.choices:
        return ["nonsense"]
    if spec.kind in (int, float):
        values = ["abc"]
        if spec.bounds and spec.bounds.low > -math.inf:
            values.append(str(spec.kind(spec.bounds.low - 1)))
        if spec.bounds and spec.bounds.high < math.inf:
            values.append(str(spec.kind(spec.bounds.high + 1)))
        if spec.kind is int:
            values.append("1.5")
        return values
    return []


def model_taking(name: str) -> str:
    takers = models_taking(name)
    return takers[0] if takers else "fm"


BAD_VALUES = [(spec.flag, value, model_taking(spec.name))
              for spec in all_specs() for value in bad_values(spec)]
FREE_STRINGS = [("--data", "imagenet"), ("--data", "libfm:/no/such/folder"),
                ("--model", "gpt"), ("--device", "tpu"), ("--device", "cuda:x"),
                ("--events", "/no/such/events-folder"),
                ("--graph-fields", "colour"), ("--libfm-fields", "user:seller"),
                ("--libfm-fields", "user,item,user"), ("--libfm-fields", "user,,item")]
MISPLACED = [(spec.flag, model) for spec in all_specs() if models_taking(spec.name)
             for model in MODELS if model not in models_taking(spec.name)]


@pytest.fixture
def fit_error(capsys, tmp_path):
    """Run `fit` in process; assert it failed as a user error (exit 2, one line) and wrote
    nothing."""
    def run(*args: str) -> str:
        status = main(["fit", "--out", str(tmp_path / "run"), *args])
        err = capsys.readouterr().err.strip()
        assert status == 2, err
        assert err.startswith("error: ") and "\n" not in err, err
        assert list(tmp_path.iterdir()) == []
        return err
    return run


def test_bad_values_are_walked_for_every_declared_option():
    walked = {flag for flag, _, _ in BAD_VALUES} | {flag for flag, _ in FREE_STRINGS}
    flags = {s.flag for s in all_specs() if s.kind is not bool} - {"--out"}
    assert flags <= walked, flags - walked  # --out: tests/training/test_runs.py


@pytest.mark.parametrize("flag,value,model", BAD_VALUES)
def test_each_bad_value_is_one_line_naming_the_option(fit_error, flag, value, model):
    args = ["--model", model, flag, value]
    if flag.startswith("--gcn") or flag in ("--graph", "--sampling"):
        args += ["--embedding", "gcn"]
    err = fit_error(*args)
    assert flag in err and value in err


@pytest.mark.parametrize("flag,value", FREE_STRINGS)
def test_bad_free_strings_are_named(fit_error, flag, value):
    extra = ["--embedding", "gcn", "--data", "synthetic:users=20,items=150,interactions=300"] \
        if flag == "--graph-fields" else []
    err = fit_error(*extra, flag, value)
    assert value.split(":")[-1] in err


@pytest.mark.parametrize("flag,model", MISPLACED)
def test_an_option_the_model_does_not_take_is_refused_naming_both(fit_error, flag, model):
    spec = next(s for s in all_specs() if s.flag == flag)
    value = [] if spec.kind is bool else [str(spec.default if spec.default != "" else "x")]
    switch = [f"--no-{spec.name}" if spec.default else flag] if spec.kind is bool else [flag]
    err = fit_error("--model", model, *switch, *value)
    assert f"model {model} does not take this option" in err and flag in err


def test_groups_do_not_share_names():
    shared = [set(RunOptions.names()), set(TrainOptions.names())]
    assert not shared[0] & shared[1]
    for entry in MODELS.values():
        assert not set(entry.options.names()) & (shared[0] | shared[1])


def test_libfm_fields_that_do_not_fit_are_one_line(fit_error, tmp_path_factory):
    folder = tmp_path_factory.mktemp("libfm")
    for split, text in {"train": "1 0:1 4:1 9:1\n-1 2:1 5:1 8:1\n", "test": "1 0:1 5:1 9:1\n"
                        }.items():
        (folder / f"d.{split}.libfm").write_text(text)
    err = fit_error("--data", f"libfm:{folder}", "--libfm-fields", "user,item")
    assert "--libfm-fields: 2 names for 3 columns" in err
    err = fit_error("--data", "synthetic", "--libfm-fields", "user,item")
    assert "--libfm-fields" in err and "not libfm:PATH" in err
