"""MovieLens readers, both into the GML-FM paper's features.

User side: user_id, gender, age, occupation; item side: item_id, genre. Every rating counts as an
implicit interaction. MovieLens-100k with side info is not downloadable from GroupLens here, so the
project takes RecBole's copy out of its PyPI wheel and pins the bytes by SHA-256.

With `context`, each rating also carries the weekday and the time of day (four-hour buckets) of
its timestamp, read in UTC: context fields for context-aware models, appended after the paper's
fields so that those keep their features.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from training.data.instances import Interactions
from training.data.schema import (
    FeatureSchema,
    Field,
    categorical_columns,
    concat_tables,
    context_rows,
    multihot_columns,
)
from training.errors import DataError

RECBOLE = "recbole==1.2.1"
WHEEL_FOLDER = "recbole/dataset_example/ml-100k/"
ML100K_SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}
# ML-1M's age codes; 100k's raw ages are bucketed into them so both datasets share one field.
AGE_BOUNDS = (18, 25, 35, 45, 50, 56)
AGE_CODES = np.array(["1", "18", "25", "35", "45", "50", "56"])
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday
HOURS_PER_BUCKET = 4
TIMES_OF_DAY = tuple(f"{h:02d}-{h + HOURS_PER_BUCKET:02d}h" for h in range(0, 24, HOURS_PER_BUCKET))
CONTEXT_FIELDS = ("weekday", "time_of_day")


@dataclass(frozen=True)
class _Source:
    """A parsed file: its rows of string fields and the line number of its first row."""

    path: Path
    rows: np.ndarray  # (R, n_fields) str
    first_line: int

    def numbers(self, col: int, dtype: type, what: str) -> np.ndarray:
        return _numbers(self.rows[:, col], dtype, what, self.path, self.first_line)


def load_movielens_100k(data_dir: Path, context: bool = False) -> Interactions:
    """MovieLens-100k from `data_dir/ml-100k`, fetched from the RecBole wheel when absent;
    with `context`, the rating's weekday and time of day as context fields."""
    folder = Path(data_dir) / "ml-100k"
    _ensure_ml100k(folder)
    blobs = {name: _checked(folder / name) for name in ML100K_SHA256}
    ratings = _source(blobs["ml-100k.inter"], folder / "ml-100k.inter", 4, b"\t", header=True)
    users = _source(blobs["ml-100k.user"], folder / "ml-100k.user", 5, b"\t", header=True)
    items = _source(blobs["ml-100k.item"], folder / "ml-100k.item", 4, b"\t", header=True)
    ages = AGE_CODES[np.digitize(users.numbers(1, np.int64, "age"), AGE_BOUNDS)]
    genres = [g.split() for g in items.rows[:, 3]]
    return _assemble("movielens-100k", ratings, users, (users.rows[:, 2], ages, users.rows[:, 3]),
                     items, genres, list(blobs.values()), context,
                     {"title": items.rows[:, 1], "year": items.rows[:, 2]})


def load_movielens_1m(path: Path, context: bool = False) -> Interactions:
    """MovieLens-1M from a folder holding GroupLens' ratings.dat, users.dat and movies.dat;
    with `context`, the rating's weekday and time of day as context fields."""
    folder = Path(path)
    blobs = {name: _read(folder / name) for name in ("ratings.dat", "users.dat", "movies.dat")}
    ratings = _source(blobs["ratings.dat"], folder / "ratings.dat", 4, b"::")
    users = _source(blobs["users.dat"], folder / "users.dat", 5, b"::")
    items = _source(blobs["movies.dat"], folder / "movies.dat", 3, b"::", encoding="latin-1")
    genres = [[g for g in text.split("|") if g] for text in items.rows[:, 2]]
    return _assemble("movielens-1m", ratings, users, tuple(users.rows[:, 1:4].T), items, genres,
                     list(blobs.values()), context, {"title": items.rows[:, 1]})


def _assemble(name: str, ratings: _Source, users: _Source, user_values: tuple[np.ndarray, ...],
              items: _Source, genres: list[list[str]], blobs: list[bytes],
              context: bool, display: dict[str, np.ndarray]) -> Interactions:
    """Fields in the paper's order, then the context fields if asked; tables in id order;
    ratings mapped to those rows; the items' display text beside them (never a feature).

    user_values: gender, age and occupation per row of `users`, in file order; display: text
    columns of `items` in file order, kept for serving (the genres are added to them).
    """
    user_order, user_ids = _id_order(users, "user id")
    item_order, item_ids = _id_order(items, "item id")
    named = {"user_id": user_ids} | {
        n: v[user_order] for n, v in zip(("gender", "age", "occupation"), user_values, strict=True)}
    user_fields = [_categorical(n, "user", v) for n, v in named.items()]
    item_field, item_codes = _categorical("item_id", "item", item_ids)
    genre_field, genre_codes = _genres([genres[k] for k in item_order])
    times = ratings.numbers(3, np.float64, "timestamp").astype(np.int64)
    context_fields = _timestamp_context(times) if context else []
    schema = FeatureSchema.build([f for f, _ in user_fields] + [item_field, genre_field] +
                                 [f for f, _ in context_fields])
    user_table = concat_tables([categorical_columns(schema.fields[p], p, codes)
                                for p, (_, codes) in enumerate(user_fields)])
    item_table = concat_tables([categorical_columns(schema.fields[4], 4, item_codes),
                                multihot_columns(schema.fields[5], 5, genre_codes)])
    ratings.numbers(2, np.float64, "rating")  # unused as implicit feedback, but must be valid
    context_table, contexts = None, None
    if context:
        first = len(schema.fields) - len(context_fields)
        context_table, contexts = context_rows(schema.fields[first:],
                                               list(range(first, len(schema.fields))),
                                               [codes for _, codes in context_fields])
        name += "+context"  # and features of its own, so a fingerprint of its own
        blobs = [*blobs, ("context:" + ",".join(CONTEXT_FIELDS)).encode()]
    return Interactions(
        name, schema,
        users=_lookup(ratings, 0, user_ids, "user id", users.path),
        items=_lookup(ratings, 1, item_ids, "item id", items.path),
        times=times, user_table=user_table, item_table=item_table,
        user_ids=schema.fields[0].vocab, item_ids=item_field.vocab,
        fingerprint=_fingerprint(blobs), context_table=context_table, contexts=contexts,
        item_attributes={**{k: tuple(v[item_order].tolist()) for k, v in display.items()},
                         "genres": tuple("|".join(genres[k]) for k in item_order)})


def _timestamp_context(times: np.ndarray) -> list[tuple[Field, np.ndarray]]:
    """The weekday and the four-hour bucket of each Unix timestamp (UTC), as context fields
    with every value in their vocabulary, seen or not, and each rating's code."""
    days, seconds = np.divmod(times, 86_400)
    return [(Field("weekday", "context", "categorical", WEEKDAYS), (days + EPOCH_WEEKDAY) % 7),
            (Field("time_of_day", "context", "categorical", TIMES_OF_DAY),
             seconds // (3600 * HOURS_PER_BUCKET))]


def _categorical(name: str, side: str, values: np.ndarray) -> tuple[Field, np.ndarray]:
    """Vocabulary of sorted unique values (numeric order for ids) and each row's code."""
    vocab, codes = np.unique(values, return_inverse=True)
    return Field(name, side, "categorical", tuple(str(v) for v in vocab)), codes


def _genres(genres: list[list[str]]) -> tuple[Field, list[list[int]]]:
    vocab = sorted({g for names in genres for g in names})
    code = {g: k for k, g in enumerate(vocab)}
    return (Field("genre", "item", "multihot", tuple(vocab)),
            [[code[g] for g in names] for names in genres])


def _id_order(src: _Source, what: str) -> tuple[np.ndarray, np.ndarray]:
    """Row order that sorts a side file by numeric id, and the sorted ids; duplicates are errors."""
    ids = src.numbers(0, np.int64, what)
    order = np.argsort(ids, kind="stable")
    repeated = np.flatnonzero(np.diff(ids[order]) == 0)
    if len(repeated):
        row = order[repeated[0] + 1]
        raise DataError(f"duplicate {what} {ids[row]}", src.path, src.first_line + row)
    return order, ids[order]


def _lookup(ratings: _Source, col: int, ids: np.ndarray, what: str, side_path: Path) -> np.ndarray:
    """Codes of the ids a rating references; an id missing from the side file is an error."""
    raw = ratings.numbers(col, np.int64, what)
    codes = np.minimum(np.searchsorted(ids, raw), max(len(ids) - 1, 0))
    unknown = np.flatnonzero(ids[codes] != raw) if len(ids) else np.arange(len(raw))
    if len(unknown):
        row = unknown[0]
        raise DataError(f"unknown {what} {raw[row]} (not in {side_path.name})",
                        ratings.path, ratings.first_line + row)
    return codes.astype(np.int64)


def _source(data: bytes, path: Path, n_fields: int, sep: bytes, header: bool = False,
            encoding: str = "utf-8") -> _Source:
    """Rows of string fields; every line's field count is checked at once, on the bytes."""
    data, first = data.replace(b"\r\n", b"\n").replace(sep, b"\t"), 1
    if header:
        data, first = data[data.find(b"\n") + 1:] if b"\n" in data else b"", 2
    data = data.rstrip(b"\n") + b"\n" if data.strip() else b""
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    seps = np.bincount(np.searchsorted(ends, np.flatnonzero(raw == ord("\t"))), minlength=len(ends))
    bad = np.flatnonzero(seps != n_fields - 1)
    if len(bad):
        raise DataError(f"expected {n_fields} fields, found {seps[bad[0]] + 1}", path,
                        first + int(bad[0]))
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as e:
        line = first + data.count(b"\n", 0, e.start)
        raise DataError(f"not {encoding} text", path, line) from None
    fields = text.replace("\n", "\t").split("\t")[:-1]
    return _Source(path, np.array(fields, dtype=str).reshape(-1, n_fields), first)


def _numbers(column: np.ndarray, dtype: type, what: str, path: Path, first: int) -> np.ndarray:
    """Bulk conversion; when it fails, a scan names the first line that does not convert."""
    try:
        return column.astype(dtype)
    except ValueError:
        convert = int if np.issubdtype(dtype, np.integer) else float
        for k, text in enumerate(column):
            try:
                convert(text)
            except ValueError:
                raise DataError(f"{what} is not a number: {text!r}", path, first + k) from None
        raise DataError(f"{what}: a value is not a number", path) from None


def _ensure_ml100k(folder: Path) -> None:
    """Extract the files that are missing from RecBole's wheel; each lands whole or not at all."""
    missing = [name for name in ML100K_SHA256 if not (folder / name).is_file()]
    if not missing:
        return
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(Path(tmp), folder)
        try:
            with zipfile.ZipFile(wheel) as zf:
                blobs = {name: zf.read(WHEEL_FOLDER + name) for name in missing}
        except (KeyError, zipfile.BadZipFile) as e:
            raise DataError(f"unexpected {RECBOLE} wheel: {e}", wheel.name) from None
    for name, data in blobs.items():
        _verify(data, folder / name)
        _write_atomic(folder / name, data)


def _download_wheel(dest: Path, folder: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", RECBOLE,
           "-d", str(dest)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DataError(f"cannot run pip to fetch {RECBOLE}: {e}", folder) from None
    wheels = sorted(dest.glob("recbole-*.whl"))
    if done.returncode != 0 or not wheels:
        lines = (done.stderr.strip() or done.stdout.strip()).splitlines()
        reason = lines[-1] if lines else f"pip exited with status {done.returncode}"
        raise DataError(f"cannot fetch MovieLens-100k: pip download {RECBOLE} failed: {reason}",
                        folder)
    return wheels[0]


def _write_atomic(target: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)  # a shared cache, not a secret (mkstemp makes 0600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _checked(path: Path) -> bytes:
    data = _read(path)
    _verify(data, path)
    return data


def _verify(data: bytes, path: Path) -> None:
    got, want = hashlib.sha256(data).hexdigest(), ML100K_SHA256[path.name]
    if got != want:
        raise DataError(f"checksum mismatch: sha256 {got[:16]}..., expected {want[:16]}...; "
                        "delete the file to fetch it again", path)


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise DataError("missing required file", path)
    return path.read_bytes()


def _fingerprint(blobs) -> str:
    h = hashlib.sha256()
    for data in blobs:
        h.update(data)
    return h.hexdigest()[:16]
