"""Config layering: defaults < TOML file < CLI flags, with clear errors for bad options."""

from __future__ import annotations

import pytest

from training.config import FitConfig, read_toml, resolve
from training.errors import ConfigError


def test_flags_override_file_and_file_overrides_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('model = "fm"\ndim = 16\nbatch-size = 512\nlr = 0.01\n')
    config = resolve(read_toml(path), {"dim": 32, "lr": None})
    assert (config.dim, config.batch_size, config.lr) == (32, 512, 0.01)
    assert config.epochs == FitConfig().epochs


def test_unknown_key_in_file_is_named(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("dimension = 3\n")
    with pytest.raises(ConfigError, match="unknown option 'dimension'"):
        read_toml(path)


def test_wrong_type_and_range_are_named(tmp_path):
    with pytest.raises(ConfigError, match="'dim' expects int"):
        resolve({"dim": "big"}, {})
    with pytest.raises(ConfigError, match="--dropout"):
        resolve({}, {"dropout": 1.5})
    with pytest.raises(ConfigError, match="--task"):
        resolve({}, {"task": "ranking"})
    with pytest.raises(ConfigError, match="--transform-init"):
        resolve({}, {"transform_init": "xavier"})


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        read_toml(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("dim = = 3\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_toml(broken)


def test_pairwise_only_distances_refuse_the_other_forms():
    with pytest.raises(ConfigError, match="manhattan distance has only the pairwise form"):
        resolve({}, {"distance": "manhattan", "form": "additive"})
    assert resolve({}, {"distance": "manhattan", "form": "pairwise"}).form == "pairwise"


def test_a_model_without_dropout_refuses_the_flag():
    with pytest.raises(ConfigError, match="transfm has no dropout"):
        resolve({}, {"model": "transfm", "dropout": 0.3})
    assert resolve({}, {"model": "transfm"}).dropout == 0.0


def test_gmlfm_without_weight_refuses_dropout_it_has_nowhere_to_apply():
    with pytest.raises(ConfigError, match="without its weight has no dropout"):
        resolve({}, {"model": "gmlfm", "weight": False, "dropout": 0.3})
    deep = resolve({}, {"model": "gmlfm", "weight": False, "layers": 2, "dropout": 0.3})
    assert deep.dropout == 0.3 and deep.dropout_absent() is None
