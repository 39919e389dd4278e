"""The torch-free reader: a bundle with a missing, truncated, corrupt or newer-format file is
refused with one message naming that file; lookups and request encoding behave."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bundle import (
    BundleError,
    BundleInputError,
    OnnxScorer,
    find_bundle,
    load_bundle,
    prepacked,
)
from bundle import format as fmt
from bundle.fields import LARGE_VOCAB, compact_vocabulary
from bundle.id_index import IdIndex
from tests.export.helpers import export, random_model
from tests.factories import tiny_interactions
from training.data.protocols import make_split

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    data = tiny_interactions()
    split = make_split(data, "topn", seed=0)
    bundle = export(random_model(data, split, "gmlfm"), data, split,
                    tmp_path_factory.mktemp("models"))
    return data, bundle


@pytest.fixture
def copy(exported, tmp_path):
    target = tmp_path / "models" / "m" / exported[1].name
    shutil.copytree(exported[1], target)
    return target


def refused(path: Path, culprit: str, match: str) -> None:
    with pytest.raises(BundleError, match=match) as err:
        load_bundle(path)
    assert str(path / culprit) in str(err.value) and "\n" not in str(err.value)


def test_a_whole_bundle_loads(copy):
    bundle = load_bundle(copy)
    assert bundle.version == copy.name and len(bundle.catalog) == 150 and len(bundle.users) == 30


@pytest.mark.parametrize("culprit", [fmt.table_file("user_t"), fmt.SEEN_ITEMS, fmt.ONNX_MODEL])
def test_a_flipped_byte_is_refused(copy, culprit):
    data = bytearray((copy / culprit).read_bytes())
    data[-3] ^= 0x40
    (copy / culprit).write_bytes(bytes(data))
    refused(copy, culprit, "sha256 differs")


@pytest.mark.parametrize("culprit", [fmt.ITEM_IDX, fmt.ONNX_MODEL])
def test_a_truncated_file_is_refused(copy, culprit):
    data = (copy / culprit).read_bytes()
    (copy / culprit).write_bytes(data[:len(data) // 2])
    refused(copy, culprit, "truncated")


@pytest.mark.parametrize("culprit", [fmt.ITEM_CONST, fmt.ONNX_MODEL, fmt.MANIFEST])
def test_a_missing_file_is_refused(copy, culprit):
    (copy / culprit).unlink()
    refused(copy, culprit, "missing")


def test_a_newer_format_is_refused(copy):
    manifest = json.loads((copy / fmt.MANIFEST).read_text())
    manifest["format_version"] = fmt.FORMAT_VERSION + 1
    (copy / fmt.MANIFEST).write_text(json.dumps(manifest))
    refused(copy, fmt.MANIFEST, "newer than this reader")


def test_a_broken_manifest_is_refused(copy):
    (copy / fmt.MANIFEST).write_text('{"format": "gmlrec-bundle", ')
    refused(copy, fmt.MANIFEST, "not valid JSON")


def test_a_shape_other_than_the_manifest_is_refused(copy):
    """Even with a matching checksum (a hand-edited manifest), shapes are checked."""
    manifest = json.loads((copy / fmt.MANIFEST).read_text())
    manifest["files"][fmt.ITEM_VAL]["shape"][0] += 1
    (copy / fmt.MANIFEST).write_text(json.dumps(manifest))
    refused(copy, fmt.ITEM_VAL, "the manifest says")


def test_find_bundle_takes_the_newest_complete_version(copy):
    home = copy.parent
    older = home / "20000101T000000Z-00000000"
    shutil.copytree(copy, older)
    (home / ".export-unfinished").mkdir()
    assert find_bundle(home.parent) == copy == find_bundle(home.parent, "m")
    (home.parent / "other").mkdir()
    with pytest.raises(BundleError, match="expected one model, found 2"):
        find_bundle(home.parent)
    with pytest.raises(BundleError, match="no bundle version"):
        find_bundle(home.parent, "other")


def test_profiles_items_and_interactions_round_trip(exported):
    data, path = exported
    bundle = load_bundle(path)
    user = bundle.users.position("7")
    assert bundle.users.profile(user) == {"user_id": "7", "group": "b"}
    item = bundle.catalog.positions(["42", "nope"])
    assert item[1] == ["nope"] and len(item[0]) == 1
    details = bundle.catalog.details(int(item[0][0]))
    genres = data.item_table.idx[42][data.item_table.val[42] > 0][1:]
    assert details["item_id"] == "42" and details["features"]["item_id"] == "42"
    offset = data.schema.field("genre").offset
    assert details["features"]["genre"] == [data.schema.field("genre").vocab[g - offset]
                                            for g in genres]
    assert set(bundle.users.seen_items(user).tolist()) <= set(data.items[data.users == 7].tolist())


def test_encoding_request_features(exported):
    bundle = load_bundle(exported[1])
    row = bundle.encoder.encode({"user_id": "3", "group": "zzz"})
    assert row.ignored == {"group": ["zzz"]} and row.val.tolist() == [1.0, 0.0]
    known = bundle.users.row(bundle.users.position("3"))
    assert row.idx[0] == known[0][0]
    for features, field in [({"colour": "red"}, "colour"), ({"genre": "x"}, "genre"),
                            ({"group": ["a", "b"]}, "group")]:
        with pytest.raises(BundleInputError) as err:
            bundle.encoder.encode(features)
        assert err.value.field == field


def test_the_bundle_package_imports_neither_torch_nor_training_nor_service(exported):
    """Load and score in a fresh interpreter, then look at what it imported."""
    code = f"""
import sys
from bundle import OnnxScorer, load_bundle, reference_scorer
bundle = load_bundle({str(exported[1])!r})
row = bundle.encoder.encode({{"group": "a"}})
for scorer in (reference_scorer(bundle), OnnxScorer(bundle, threads=1)):
    state = scorer.user_state(row.idx[None], row.val[None])
    assert scorer.top_n(state, 5)[0].shape == (1, 5)
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "training", "service"))
print(",".join(bad))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_the_format_alone_loads_neither_onnxruntime_nor_the_scorers():
    """What the exporter imports for its names costs nothing: the package's public names
    are resolved on first use."""
    code = """
import sys
import bundle.format
print(",".join(sorted(m for m in sys.modules
                      if m.split(".")[0] in ("onnxruntime", "numpy") or m.startswith("bundle."))))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "bundle.format"


def _top_and_scores(scorer, bundle):
    state = scorer.user_state(*(a[None] for a in bundle.users.row(0)))
    return (scorer.top_n(state, 5, [bundle.users.seen_items(0)]),
            scorer.score(state, np.arange(8)[None]))


needs_prepacking = pytest.mark.skipif(
    not prepacked.prepacking_works(),
    reason="onnxruntime below 1.32 crashes on prepacked graphs; the cache is off there "
           "(test_prepacking_is_off_where_onnxruntime_would_crash)")


def test_prepacking_is_off_where_onnxruntime_would_crash(exported, tmp_path):
    bundle = load_bundle(exported[1])
    scorer = OnnxScorer(bundle, threads=1, cache_dir=tmp_path / "cache", share_from=0)
    expected = prepacked.prepacking_works()
    assert (scorer.model_path != bundle.onnx_path) == expected
    assert _top_and_scores(scorer, bundle)[0][0].shape == (1, 5)


@needs_prepacking
def test_a_large_bundle_is_served_from_its_prepacked_copy_with_the_same_answers(exported,
                                                                                tmp_path):
    bundle = load_bundle(exported[1])
    plain = OnnxScorer(bundle, threads=1)
    cached = OnnxScorer(bundle, threads=1, cache_dir=tmp_path, share_from=0)
    assert plain.model_path == bundle.onnx_path and cached.model_path.is_relative_to(tmp_path)
    assert (cached.model_path.parent / prepacked.WEIGHTS).is_file()
    (items, top), scores = _top_and_scores(cached, bundle)
    (items0, top0), scores0 = _top_and_scores(plain, bundle)
    assert (items == items0).all()
    np.testing.assert_allclose(top, top0, rtol=1e-5)
    np.testing.assert_allclose(scores, scores0, rtol=1e-5)
    built = cached.model_path.stat().st_mtime_ns  # a second process reuses the copy
    again = OnnxScorer(bundle, threads=1, cache_dir=tmp_path, share_from=0)
    assert again.model_path == cached.model_path
    assert again.model_path.stat().st_mtime_ns == built


@needs_prepacking
def test_the_two_phase_graph_is_served_from_a_prepacked_copy_of_its_own(exported, tmp_path):
    """two_phase.onnx gets its own entry beside model.onnx's (neither deletes the other), and
    answers from it exactly as from the bundle's file."""
    bundle = load_bundle(exported[1])
    assert fmt.TWO_PHASE_MODEL in bundle.manifest["files"]
    cached = OnnxScorer(bundle, threads=1, cache_dir=tmp_path, share_from=0, two_phase_from=0)
    plain = OnnxScorer(bundle, threads=1, two_phase_from=0)
    entries = sorted(p.name for p in (tmp_path / bundle.name).iterdir() if p.is_dir())
    assert len(entries) == 2 and any("two_phase" in e for e in entries)
    assert all(prepacked._trusted(bundle, tmp_path / bundle.name / e, graph) for e, graph in
               zip(entries, (fmt.ONNX_MODEL, fmt.TWO_PHASE_MODEL)))
    for user in range(5):
        state = plain.user_state(*(a[None] for a in bundle.users.row(user)))
        got = cached.two_phase.top_n(state, 5, [bundle.users.seen_items(user)])
        want = plain.two_phase.top_n(state, 5, [bundle.users.seen_items(user)])
        assert (got is None) == (want is None)
        if got is not None:
            assert all(np.array_equal(g, w) for g, w in zip(got, want))


def test_a_small_bundle_or_an_unusable_cache_falls_back_to_model_onnx(exported, tmp_path):
    bundle = load_bundle(exported[1])
    assert OnnxScorer(bundle, cache_dir=tmp_path).model_path == bundle.onnx_path
    assert not any(tmp_path.iterdir())  # below SHARE_FROM_BYTES nothing is written
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # another user could have planted what is in here
    fallback = OnnxScorer(bundle, cache_dir=shared, share_from=0)
    assert fallback.model_path == bundle.onnx_path and not any(shared.iterdir())
    assert _top_and_scores(fallback, bundle)[0][0].shape == (1, 5)
    unwritable = tmp_path / "file"
    unwritable.write_text("")  # a cache dir below a file cannot be made
    assert OnnxScorer(bundle, cache_dir=unwritable / "x", share_from=0).model_path \
        == bundle.onnx_path


@needs_prepacking
@pytest.mark.parametrize("plant", ["model", "weights", "extra file", "record"])
def test_a_planted_or_stale_cache_entry_is_refused_and_built_again(exported, tmp_path, plant):
    bundle = load_bundle(exported[1])
    good = OnnxScorer(bundle, threads=1, cache_dir=tmp_path / "cache", share_from=0)
    entry = good.model_path.parent
    assert entry.parent.parent.stat().st_mode & 0o777 == 0o700
    if plant == "model":
        (entry / prepacked.MODEL).write_bytes(b"not onnx")
    elif plant == "weights":
        weights = bytearray((entry / prepacked.WEIGHTS).read_bytes())
        weights[len(weights) // 2] ^= 0xFF  # a table quietly changed: scores would be wrong
        (entry / prepacked.WEIGHTS).write_bytes(bytes(weights))
    elif plant == "extra file":
        (entry / "evil.onnx").write_bytes(b"planted")
    else:  # an entry built from another bundle that happens to bear this one's name
        record = json.loads((entry / prepacked.RECORD).read_text())
        record["model_onnx_sha256"] = "0" * 64
        (entry / prepacked.RECORD).write_text(json.dumps(record))
    again = OnnxScorer(bundle, threads=1, cache_dir=tmp_path / "cache", share_from=0)
    assert again.model_path == good.model_path  # rebuilt in place
    assert not (entry / "evil.onnx").exists()
    assert prepacked._trusted(bundle, entry, "model.onnx")
    (items, top), scores = _top_and_scores(again, bundle)
    (items0, top0), scores0 = _top_and_scores(OnnxScorer(bundle, threads=1), bundle)
    assert (items == items0).all()
    np.testing.assert_allclose(scores, scores0, rtol=1e-5)


def test_id_index_finds_positions_and_only_exact_ids():
    ids = np.array(["b", "a", "c10", "c1"], dtype=str)  # width 3
    index = IdIndex(ids)
    assert index.positions(["a", "c1", "c10", "b"]).tolist() == [1, 3, 2, 0]
    # unknown, past either end, and longer than the array's width (never truncated to "c10")
    assert index.positions(["", "0", "zz", "c100", "c1 "]).tolist() == [-1] * 5
    assert index.positions([]).tolist() == []
    assert IdIndex(np.array([], dtype=str)).positions(["a"]).tolist() == [-1]


def test_id_index_lookups_cost_no_pass_over_the_ids():
    """A query wider than the ids (a long new id) is cast to their width, not they to its:
    a lookup in a million ids takes microseconds either way."""
    ids = np.array([str(i) for i in range(1_000_000)])  # width 6
    index = IdIndex(ids)
    for query in (["999999"], ["a much longer id than any"], ["a much longer id", "123"]):
        started = time.perf_counter()
        for _ in range(100):
            found = index.positions(query)
        assert (time.perf_counter() - started) / 100 < 1e-3  # a pass over the ids: ~3 ms
    assert found.tolist() == [-1, 123]


def test_large_vocabularies_are_kept_compact_and_read_alike():
    values = [str(v) for v in range(LARGE_VOCAB)]
    compact = compact_vocabulary(values)
    assert isinstance(compact, np.ndarray) and list(compact[:3]) == ["0", "1", "2"]
    assert isinstance(compact_vocabulary(values[:5]), tuple)

