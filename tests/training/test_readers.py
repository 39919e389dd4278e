"""Readers: MovieLens (1M fixtures, the real 100k), libFM, the synthetic generator, data specs."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from training.data.libfm import load_libfm, parse_field_names
from training.data.movielens import ML100K_SHA256, load_movielens_1m, load_movielens_100k
from training.data.specs import default_data_dir, load_data
from training.data.synthetic import load_synthetic
from training.errors import ConfigError, DataError

ML1M = {
    "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n3::M::25::15::55117\n"
                 "10::F::35::1::95370\n",
    "movies.dat": "1::Toy Story (1995)::Animation|Children's|Comedy\n"
                  "2::Jumanji (1995)::Adventure|Children's|Fantasy\n"
                  "5::Café (1999)::Drama\n7::Untitled (2000)::\n",
    "ratings.dat": "1::1::5::978300760\n1::2::3::978302109\n2::5::4::978301968\n"
                   "10::1::2::978300275\n3::2::1::978824291\n",
}
PAPER_FIELDS = ["user_id", "gender", "age", "occupation", "item_id", "genre"]


def write_ml1m(folder: Path, **replace: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in ML1M.items():
        key = name.split(".")[0]
        (folder / name).write_bytes(replace.get(key, text).encode("latin-1"))
    return folder


def write_libfm(folder: Path, **splits: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in splits.items():
        (folder / f"tiny.{split}.libfm").write_text(text)
    return folder


# --- MovieLens-1M -----------------------------------------------------------------------------

def test_ml1m_fields_tables_and_codes(tmp_path):
    data = load_movielens_1m(write_ml1m(tmp_path / "ml"))
    assert [f.name for f in data.schema.fields] == PAPER_FIELDS
    assert [f.side for f in data.schema.fields] == ["user"] * 4 + ["item"] * 2
    assert data.user_ids == ("1", "2", "3", "10")  # numeric order, not string order
    assert data.item_ids == ("1", "2", "5", "7")
    assert data.users.tolist() == [0, 0, 1, 3, 2] and data.items.tolist() == [0, 1, 2, 0, 1]
    assert data.times.dtype == np.int64 and data.times[0] == 978300760
    gender, age = data.schema.field("gender"), data.schema.field("age")
    assert age.vocab == ("1", "25", "35", "56")
    assert data.user_table.idx[3, 1] == gender.offset + gender.vocab.index("F")
    assert data.user_table.idx[3, 2] == age.offset + age.vocab.index("35")
    genre = data.schema.field("genre")
    assert genre.kind == "multihot" and "Children's" in genre.vocab
    sums = data.item_table.val[:, 1:].sum(axis=1)
    np.testing.assert_allclose(sums, [1, 1, 1, 0], rtol=1e-6)  # the last movie has no genre
    slots = data.item_table.slot_field
    assert slots[0] == 4 and set(slots[1:]) == {5}
    assert len(data.fingerprint) == 16


def test_ml1m_with_context_adds_weekday_and_time_of_day_after_the_paper_fields(tmp_path):
    folder = write_ml1m(tmp_path / "ml")
    plain, data = load_movielens_1m(folder), load_movielens_1m(folder, context=True)
    assert [f.name for f in data.schema.fields] == PAPER_FIELDS + ["weekday", "time_of_day"]
    assert data.schema.fields[:6] == plain.schema.fields  # the paper's features unchanged
    assert [f.side for f in data.schema.fields[6:]] == ["context", "context"]
    assert data.schema.field("weekday").vocab[0] == "Mon"
    assert data.schema.field("time_of_day").vocab == (
        "00-04h", "04-08h", "08-12h", "12-16h", "16-20h", "20-24h")
    # 978300760 is Sun 2000-12-31 22:12 UTC; 978824291 is Sat 2001-01-06 23:38 UTC
    rows = data.context_table.idx[data.contexts] - data.schema.fields[6].offset
    assert [data.schema.fields[6].vocab[w] for w in rows[[0, 4], 0]] == ["Sun", "Sat"]
    assert (rows[:, 1] - data.schema.fields[6].size).tolist() == [5, 5, 5, 5, 5]
    np.testing.assert_array_equal(data.user_table.idx, plain.user_table.idx)
    assert data.name == "movielens-1m+context" and data.fingerprint != plain.fingerprint
    assert plain.context_table is None and plain.contexts is None
    assert load_data(f"movielens-1m+context:{folder}").fingerprint == data.fingerprint


def test_ml1m_fingerprint_follows_the_bytes(tmp_path):
    a = load_movielens_1m(write_ml1m(tmp_path / "a"))
    b = load_movielens_1m(write_ml1m(tmp_path / "b", ratings=ML1M["ratings.dat"][:-2] + "2\n"))
    assert a.fingerprint != b.fingerprint


@pytest.mark.parametrize("file, text, where, problem", [
    ("ratings", "1::1::5::1\n1::2::3\n", "ratings.dat:2:", "expected 4 fields, found 3"),
    ("ratings", "1::1::5::1\n2::x::4::1\n", "ratings.dat:2:", "item id is not a number"),
    ("ratings", "1::1::5::1\n1::1::five::1\n", "ratings.dat:2:", "rating is not a number"),
    ("ratings", "1::1::5::1\n\n1::2::3::1\n", "ratings.dat:2:", "expected 4 fields, found 1"),
    ("ratings", "1::1::5::1\n99::1::5::1\n", "ratings.dat:2:", "unknown user id 99"),
    ("ratings", "1::1::5::1\n1::1::5::1\n1::4::5::1\n", "ratings.dat:3:", "unknown item id 4"),
    ("users", "1::F::1::10::1\n1::M::1::10::1\n", "users.dat:2:", "duplicate user id 1"),
    ("movies", "1::A::Drama\n2::B\n", "movies.dat:2:", "expected 3 fields, found 2"),
])
def test_ml1m_bad_lines_name_file_and_line(tmp_path, file, text, where, problem):
    folder = write_ml1m(tmp_path / "ml", **{file: text})
    with pytest.raises(DataError, match=problem) as err:
        load_movielens_1m(folder)
    assert where in str(err.value)


def test_ml1m_missing_file(tmp_path):
    folder = write_ml1m(tmp_path / "ml")
    (folder / "movies.dat").unlink()
    with pytest.raises(DataError, match="movies.dat: missing required file"):
        load_movielens_1m(folder)


# --- MovieLens-100k (the real files, fetched from the RecBole wheel on first use) ----------------

@pytest.fixture(scope="module")
def ml100k():
    return load_movielens_100k(default_data_dir())


def test_ml100k_real(ml100k):
    assert (ml100k.n_users, ml100k.n_items, len(ml100k.users)) == (943, 1682, 100_000)
    assert [f.name for f in ml100k.schema.fields] == PAPER_FIELDS
    assert ml100k.schema.field("age").vocab == ("1", "18", "25", "35", "45", "50", "56")
    age = ml100k.schema.field("age")
    assert ml100k.user_table.idx[0, 2] == age.offset + age.vocab.index("18")  # user 1 is 24
    assert ml100k.schema.field("gender").vocab == ("F", "M")
    assert len(ml100k.schema.field("occupation").vocab) == 21
    sums = ml100k.item_table.val[:, 1:].sum(axis=1)
    has_genre = (ml100k.item_table.val[:, 1:] > 0).any(axis=1)
    assert has_genre.sum() > 1600
    np.testing.assert_allclose(sums[has_genre], 1.0, rtol=1e-5)
    assert ml100k.users.max() == 942 and ml100k.items.max() == 1681
    assert ml100k.user_ids[195] == "196" and ml100k.users[0] == 195  # first rating: user 196


def test_ml100k_with_context_keeps_the_plain_data_as_recorded(ml100k):
    assert ml100k.fingerprint == "7f61671b3989312b"  # the data of bench/RESULTS.md's rows
    data = load_data("movielens-100k+context")
    assert data.schema.fields[:6] == ml100k.schema.fields
    assert [f.size for f in data.schema.fields[6:]] == [7, 6]
    assert len(data.contexts) == 100_000 and len(data.context_table) <= 42
    np.testing.assert_array_equal(data.times, ml100k.times)


def copy_ml100k(target: Path, names) -> Path:
    folder = target / "ml-100k"
    folder.mkdir(parents=True)
    for name in names:
        shutil.copy(default_data_dir() / "ml-100k" / name, folder / name)
    return folder


def test_ml100k_checksum_mismatch(ml100k, tmp_path):
    folder = copy_ml100k(tmp_path, ML100K_SHA256)
    with open(folder / "ml-100k.user", "ab") as f:
        f.write(b"944\t30\tM\tother\t00000\n")
    with pytest.raises(DataError, match="checksum mismatch") as err:
        load_movielens_100k(tmp_path)
    assert "ml-100k.user" in str(err.value)


def test_ml100k_fetches_only_missing_files(ml100k, tmp_path):
    folder = copy_ml100k(tmp_path, ["ml-100k.inter", "ml-100k.user"])
    data = load_movielens_100k(tmp_path)
    assert data.fingerprint == ml100k.fingerprint
    assert sorted(p.name for p in folder.iterdir()) == sorted(ML100K_SHA256)  # no temp leftovers


def test_ml100k_pip_failure_is_one_line(tmp_path, monkeypatch):
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\necho 'ERROR: no network here' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    with pytest.raises(DataError, match="pip download recbole==1.2.1 failed: ERROR: no network"):
        load_movielens_100k(tmp_path / "data")
    assert not list((tmp_path / "data" / "ml-100k").iterdir())


# --- libFM ----------------------------------------------------------------------------------

FIELDED = {"train": "1 0:1 3:1 5:1\n-1 1:1 4:1 6:0.5\n", "validation": "1 2:1 3:1 5:1\n",
           "test": "-1 0:1 4:1 6:1\n1 1:1 3:1 5:1\n"}


def test_libfm_fielded(tmp_path):
    data = load_libfm(write_libfm(tmp_path / "d", **FIELDED))
    fields = data.schema.fields
    assert [(f.name, f.side, f.offset, f.vocab) for f in fields] == [
        ("field0", "context", 0, ("0", "1", "2")), ("field1", "context", 3, ("3", "4")),
        ("field2", "context", 5, ("5", "6"))]
    assert [f.kind for f in fields] == ["categorical", "categorical", "multihot"]
    table = data.train.tables[0]
    assert table.idx.tolist() == [[0, 3, 5], [1, 4, 6]] and table.val[1, 2] == 0.5
    assert table.slot_field.tolist() == [0, 1, 2]
    assert data.train.labels.tolist() == [1, -1] and data.train.labels.dtype == np.float32
    assert len(data.valid) == 1 and len(data.test) == 2
    idx, val = data.test.gather(np.arange(2))
    assert idx.tolist() == [[0, 4, 6], [1, 3, 5]] and val.sum() == 6
    assert "no validation file" not in data.notes and len(data.fingerprint) == 16


def test_libfm_unfielded_pads_and_notes(tmp_path):
    data = load_libfm(write_libfm(tmp_path / "d", train="1 0:1 7:2\n0 3:1\n",
                                  test="1 5:1 2:1 4:0.5\n"))
    assert [(f.name, f.kind, f.size) for f in data.schema.fields] == [("feature", "multihot", 8)]
    table = data.train.tables[0]
    assert table.idx.tolist() == [[0, 7], [3, 0]] and table.val.tolist() == [[1, 2], [1, 0]]
    assert table.slot_field.tolist() == [0, 0] and data.test.tables[0].width == 3
    assert data.valid is None and "no validation file" in data.notes


def test_libfm_overlapping_positions_are_one_field(tmp_path):
    folder = write_libfm(tmp_path / "d", train="1 0:1 2:1\n1 2:1 3:1\n", test="0 1:1 3:1\n")
    data = load_libfm(folder)
    assert [f.name for f in data.schema.fields] == ["feature"]
    assert "columns 0 (0–2) and 1 (2–3) overlap" in data.notes[-1]


# Columns whose indices have gaps, as any subset of a libFM file has: column 0 uses 0 and 3
# (1, 2 unused), column 1 lives above column 2, and nothing uses 6–9.
GAPPED = {"train": "1 0:1 14:1 10:1\n-1 3:1 12:1 11:1\n1 3:1 14:1 5:1\n",
          "test": "1 0:1 12:1 5:1\n"}


def test_libfm_gapped_columns_are_positional_fields(tmp_path):
    data = load_libfm(write_libfm(tmp_path / "d", **GAPPED))
    fields = data.schema.fields
    assert [(f.name, f.side, f.kind, f.vocab) for f in fields] == [
        ("field0", "context", "categorical", ("0", "3")),
        ("field1", "context", "categorical", ("12", "14")),
        ("field2", "context", "categorical", ("5", "10", "11"))]
    assert data.schema.n_features == 7  # dense: the unused indices are no features
    table = data.train.tables[0]
    assert table.idx.tolist() == [[0, 3, 5], [1, 2, 6], [1, 3, 4]]
    assert table.slot_field.tolist() == [0, 1, 2]
    assert data.test.tables[0].idx.tolist() == [[0, 2, 4]]
    assert "3 positional fields inferred" in data.notes[-1]
    assert "field1 (context): 2 values in 12–14" in data.notes[-1]
    assert "--libfm-fields" in data.notes[-1]  # says how to name them


def test_libfm_fields_name_the_columns_and_give_their_sides(tmp_path):
    folder = write_libfm(tmp_path / "d", **GAPPED)
    data = load_libfm(folder, parse_field_names("user,item,hour"))
    assert [(f.name, f.side) for f in data.schema.fields] == [
        ("user", "user"), ("item", "item"), ("hour", "context")]
    assert "user (user): 2 values in 0–3" in data.notes[-1]
    explicit = load_libfm(folder, parse_field_names("uid:user, mid : item,place:context"))
    assert [(f.name, f.side) for f in explicit.schema.fields] == [
        ("uid", "user"), ("mid", "item"), ("place", "context")]
    assert load_data(f"libfm:{folder}", libfm_fields="a:user,b:item,c").schema.fields[1].side \
        == "item"


def test_libfm_fields_that_do_not_fit_the_files(tmp_path):
    with pytest.raises(ConfigError, match=r"--libfm-fields: 2 names for 3 columns"):
        load_libfm(write_libfm(tmp_path / "a", **GAPPED), parse_field_names("user,item"))
    unfielded = write_libfm(tmp_path / "b", train="1 0:1 7:2\n0 3:1\n", test="1 5:1\n")
    with pytest.raises(ConfigError, match=r"--libfm-fields: 2 names given, but the files have "
                                          r"no positional fields \(lines differ in length"):
        load_libfm(unfielded, parse_field_names("user,item"))


@pytest.mark.parametrize("text, problem", [
    ("user,,item", "bad name ''"), ("user:seller", "bad side 'seller'"),
    ("user,item,user", "field 'user' named twice"), ("user id,item", "bad name 'user id'"),
])
def test_libfm_field_names_refused(text, problem):
    with pytest.raises(ConfigError, match=f"invalid value for --libfm-fields: '{text}' "
                                          f"\\({problem}"):
        parse_field_names(text)


@pytest.mark.parametrize("train, line, problem", [
    ("1 0:1\n1 3:x\n", 2, "expected idx:value"),
    ("1 0:1\n\n1 2:1\n", 2, "blank line"),
    ("1 0:1\nyes 1:1\n", 2, "label is not a number"),
    ("1 0:1\n1 0:1 4\n", 2, "expected idx:value"),
    ("1 0:1\n1 1:1\n1 -1:1\n", 3, "expected idx:value"),
    ("1 0:1:1 2\n", 1, "expected idx:value"),
])
def test_libfm_bad_lines_name_file_and_line(tmp_path, train, line, problem):
    folder = write_libfm(tmp_path / "d", train=train, test="1 0:1\n")
    with pytest.raises(DataError, match=problem) as err:
        load_libfm(folder)
    assert f"tiny.train.libfm:{line}:" in str(err.value)


def test_libfm_missing_and_ambiguous_files(tmp_path):
    with pytest.raises(DataError, match=r"missing required file \*\.test\.libfm"):
        load_libfm(write_libfm(tmp_path / "a", train="1 0:1\n"))
    folder = write_libfm(tmp_path / "b", train="1 0:1\n", test="1 0:1\n")
    (folder / "other.train.libfm").write_text("1 0:1\n")
    with pytest.raises(DataError, match=r"ambiguous: 2 \*\.train\.libfm"):
        load_libfm(folder)
    with pytest.raises(DataError, match="no instances"):
        load_libfm(write_libfm(tmp_path / "c", train="1 0:1\n", test="\n"))


# --- synthetic ------------------------------------------------------------------------------

SMALL = "users=300,items=400,interactions=6000,categories=10,segments=4"


def test_synthetic_deterministic_per_seed():
    a, b = load_synthetic(SMALL + ",seed=1"), load_synthetic(SMALL + ",seed=1")
    c = load_synthetic(SMALL + ",seed=2")
    for name in ("users", "items", "times"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.user_table.idx, b.user_table.idx)
    np.testing.assert_array_equal(a.item_table.idx, b.item_table.idx)
    assert len(a.users) != len(c.users) or not np.array_equal(a.items, c.items)
    assert a.fingerprint == b.fingerprint != c.fingerprint


def test_synthetic_shape_and_guarantees():
    data = load_synthetic(SMALL)
    assert (data.n_users, data.n_items) == (300, 400) and data.name == "synthetic:" + SMALL
    assert [(f.name, f.side) for f in data.schema.fields] == [
        ("user_id", "user"), ("segment", "user"), ("item_id", "item"), ("category", "item")]
    assert 300 * 3 <= len(data.users) <= 6000
    assert np.bincount(data.users, minlength=300).min() >= 3
    pairs = data.users * data.n_items + data.items
    assert len(np.unique(pairs)) == len(pairs)
    assert (np.diff(data.times) > 0).all()
    assert data.items.max() < 400 and len(data.schema.field("category").vocab) == 10


def test_synthetic_plants_segment_taste():
    data = load_synthetic(SMALL)
    segment = data.user_table.idx[data.users, 1] - data.schema.field("segment").offset
    category = data.item_table.idx[data.items, 1] - data.schema.field("category").offset
    counts = np.zeros((4, 10))
    np.add.at(counts, (segment, category), 1)
    top_share = (counts.max(axis=1) / counts.sum(axis=1)).mean()
    assert top_share > 3 / 10  # uniform tastes would give about 1/10


def test_synthetic_context_fields_are_planted_beside_unchanged_data():
    plain = load_synthetic(SMALL)
    data = load_synthetic(SMALL + ",context_low=2,context_high=40")
    assert [(f.name, f.side, f.size) for f in data.schema.fields[4:]] == [
        ("context_low", "context", 2), ("context_high", "context", 40)]
    assert data.schema.fields[:4] == plain.schema.fields
    for name in ("users", "items", "times"):
        np.testing.assert_array_equal(getattr(data, name), getattr(plain, name))
    assert load_synthetic(SMALL + ",context_low=0").fingerprint == plain.fingerprint
    assert data.fingerprint != plain.fingerprint
    category = data.item_table.idx[data.items, 1] - data.schema.field("category").offset
    values = data.context_table.idx[data.contexts] - data.schema.fields[4].offset
    high = values[:, 1] - 2
    assert np.mean(high % 10 == category) > 0.5  # at home half the time, by chance 1 in 10
    assert np.mean(values[:, 0] == category % 2) > 0.7  # 1/2 + 1/2 * 1/2
    again = load_synthetic(SMALL + ",context_low=2,context_high=40")
    np.testing.assert_array_equal(again.contexts, data.contexts)


def test_synthetic_minimum_interactions():
    data = load_synthetic("users=50,items=3,interactions=0,categories=3")
    assert len(data.users) == 150 and np.bincount(data.users).min() == 3


@pytest.mark.parametrize("params, key", [
    ("users=10,colour=red", "colour"), ("users=ten", "users"), ("items=2", "items"),
    ("skew=-1", "skew"), ("seed=1.5", "seed"), ("skew=nan", "skew"), ("items", "items"),
    ("items=5,categories=6", "categories"), ("context_low=-1", "context_low"),
    ("context_high=2.5", "context_high"),
])
def test_synthetic_bad_params_name_the_key(params, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_synthetic(params)


# --- specs ----------------------------------------------------------------------------------

def test_specs_dispatch(tmp_path):
    assert load_data("synthetic").n_users == 1000
    assert load_data("synthetic:users=20,items=30,interactions=100").n_items == 30
    assert load_data(f"movielens-1m:{write_ml1m(tmp_path / 'ml')}").n_users == 4
    assert load_data(f"libfm:{write_libfm(tmp_path / 'lf', **FIELDED)}").schema.n_features == 7


@pytest.mark.parametrize("spec, message", [
    ("movielens-10m", "valid forms: movielens-100k"), ("movielens-100k:x", "unknown spec"),
    ("movielens-100k+context:x", "unknown spec"), ("libfm+context:x", "unknown spec"),
    ("synthetic+context", "unknown spec"), ("movielens-1m+context:", "movielens-1m"),
    ("libfm:", "libfm:PATH"), ("movielens-1m: ", "movielens-1m:PATH"), ("", "unknown spec"),
])
def test_specs_errors(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_data(spec)


def test_specs_missing_folder_is_data_error(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        load_data(f"libfm:{tmp_path / 'nope'}")
    with pytest.raises(DataError, match="ratings.dat: missing required file"):
        load_data(f"movielens-1m:{tmp_path}")


def test_default_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GMLREC_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("GMLREC_DATA_DIR")
    assert default_data_dir() == Path.home() / ".cache" / "gmlrec"


def test_libfm_topn_groups_that_do_not_divide_name_the_file(tmp_path):
    from training.data.protocols import make_split

    folder = write_libfm(tmp_path / "g", train="1 0:1 3:1\n-1 1:1 3:1\n",
                         test="1 0:1 4:1\n-1 0:1 3:1\n-1 0:1 5:1\n")
    with pytest.raises(DataError, match=r"tiny\.test\.libfm: 3 lines, not a multiple of "
                                        r"--group-size 2"):
        make_split(load_libfm(folder), "topn", seed=0, group_size=2)
