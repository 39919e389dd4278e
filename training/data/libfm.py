"""libFM reader: pre-split train / validation / test files of `label idx:value ...` lines.

The files do not say which field a feature belongs to. When every line has the same number of
entries and each position draws its indices from its own contiguous range (the NFM / GEM
preprocessing of Frappe and MovieLens-tag), each position becomes a field, so per-field models
(DeepFM, AFM) get real fields; otherwise all features form one field.

Positional fields are context unless the caller names which positions are user and which are
item columns (`libfm:PATH:user=0:item=1,2`), which export and GEM's graph b need.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NoReturn

import numpy as np

from training.data.instances import InstanceSet, LibfmData
from training.data.schema import FeatureSchema, FeatureTable, Field
from training.errors import DataError

IS_SPACE = np.zeros(256, bool)
IS_SPACE[list(b" \t\n\r\x0b\x0c")] = True  # exactly what bytes.split() splits on


@dataclass(frozen=True)
class _Parsed:
    """One file as flat arrays: line n holds entries counts[n] long, consecutive in idx / val."""

    labels: np.ndarray  # (N,) float32
    counts: np.ndarray  # (N,) int64
    idx: np.ndarray  # (E,) int64
    val: np.ndarray  # (E,) float32


def load_libfm(path: Path, user_columns: Sequence[int] = (),
               item_columns: Sequence[int] = ()) -> LibfmData:
    """Read a folder of one *.train.libfm, one optional *.validation.libfm, one *.test.libfm;
    the positions in user_columns / item_columns become user / item fields."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError("no such folder", folder)
    files = {split: _one(folder, split, required=split != "validation")
             for split in ("train", "validation", "test")}
    blobs = {split: p.read_bytes() for split, p in files.items() if p is not None}
    parsed = {split: _parse(data, files[split]) for split, data in blobs.items()}
    n = 1 + max((int(p.idx.max()) for p in parsed.values() if len(p.idx)), default=-1)
    if n == 0:
        raise DataError("no features in any file", folder)
    schema, fielded = _schema(list(parsed.values()), n)
    if user_columns or item_columns:
        schema = _with_sides(schema, fielded, user_columns, item_columns, folder)
    sets = {split: _instances(p, fielded) for split, p in parsed.items()}
    notes = [] if files["validation"] else ["no validation file"]
    notes.append(f"{len(schema.fields)} positional fields inferred" if fielded else
                 "one multi-hot field 'feature' (lines differ in length or positions overlap)")
    h = hashlib.sha256()
    for data in blobs.values():
        h.update(data)
    return LibfmData(f"libfm:{folder.name}", schema, sets["train"], sets.get("validation"),
                     sets["test"], h.hexdigest()[:16], notes,
                     {split: str(p) for split, p in files.items() if p is not None})


def _one(folder: Path, split: str, required: bool) -> Path | None:
    found = sorted(folder.glob(f"*.{split}.libfm"))
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise DataError(f"ambiguous: {len(found)} *.{split}.libfm files ({names})", folder)
    if not found and required:
        raise DataError(f"missing required file *.{split}.libfm", folder)
    return found[0] if found else None


def _parse(data: bytes, path: Path) -> _Parsed:
    """Bulk parse of all tokens at once; any inconsistency falls back to a scan naming the line."""
    data = data.rstrip() + b"\n"  # trailing blank lines at the end of a file are harmless
    raw = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(raw == ord("\n"))
    space = IS_SPACE[raw]
    starts = np.flatnonzero(~space & np.concatenate(([True], space[:-1])))
    tokens = np.bincount(np.searchsorted(ends, starts), minlength=len(ends))
    if len(ends) == 1 and tokens[0] == 0:
        raise DataError("no instances", path)
    if not tokens.all():
        raise DataError("blank line", path, int(np.argmin(tokens)) + 1)
    flat = np.array(data.split())
    first = np.cumsum(tokens) - tokens
    is_entry = np.ones(len(flat), bool)
    is_entry[first] = False
    try:
        labels = flat[first].astype(np.float64)
        idx_text, sep, val_text = np.char.partition(flat[is_entry], b":").T
        idx, val = idx_text.astype(np.int64), np.ones(len(val_text))
        other = val_text != b"1"  # one-hot files are mostly "1": skip converting those
        val[other] = val_text[other].astype(np.float64)
    except ValueError:
        _scan(data, path)
    if not ((sep == b":").all() and (idx >= 0).all()):
        _scan(data, path)
    return _Parsed(labels.astype(np.float32), tokens - 1, idx, val.astype(np.float32))


def _scan(data: bytes, path: Path) -> NoReturn:
    """Raise DataError at the first line that does not parse (the slow path, for errors only)."""
    for number, line in enumerate(data.split(b"\n"), start=1):
        problem = _line_problem(line)
        if problem:
            raise DataError(problem, path, number)
    raise DataError("cannot parse file", path)


def _line_problem(line: bytes) -> str | None:
    parts = line.decode("utf-8", errors="replace").split()
    if not parts:
        return "blank line"
    try:
        float(parts[0])
    except ValueError:
        return f"label is not a number: {parts[0]!r}"
    for token in parts[1:]:
        idx, sep, val = token.partition(":")
        try:
            if not sep or int(idx) < 0:
                raise ValueError
            float(val)
        except ValueError:
            return f"expected idx:value (idx a non-negative integer), found {token!r}"
    return None


def _schema(parsed: list[_Parsed], n: int) -> tuple[FeatureSchema, bool]:
    """Positional fields when entry positions tile [0, n) in contiguous ranges, else one field."""
    widths = {int(c) for p in parsed for c in np.unique(p.counts)}
    if len(widths) == 1 and (m := widths.pop()) > 0:
        idx = np.concatenate([p.idx.reshape(-1, m) for p in parsed])
        lo, hi = idx.min(0), idx.max(0)
        if lo[0] == 0 and (lo[1:] == hi[:-1] + 1).all():
            ones = (np.concatenate([p.val.reshape(-1, m) for p in parsed]) == 1).all(0)
            return FeatureSchema.build([
                Field(f"field{j}", "context", "categorical" if ones[j] else "multihot",
                      tuple(str(i) for i in range(lo[j], hi[j] + 1))) for j in range(m)]), True
    vocab = tuple(str(i) for i in range(n))
    return FeatureSchema.build([Field("feature", "context", "multihot", vocab)]), False


def _with_sides(schema: FeatureSchema, fielded: bool, user_columns: Sequence[int],
                item_columns: Sequence[int], folder: Path) -> FeatureSchema:
    if not fielded:
        raise DataError("user and item columns need positional fields (every line the same "
                        "length, each position its own index range)", folder)
    named = [*user_columns, *item_columns]
    if len(set(named)) < len(named) or not all(0 <= c < len(schema.fields) for c in named):
        raise DataError(f"user columns {list(user_columns)} and item columns "
                        f"{list(item_columns)} must be distinct positions below "
                        f"{len(schema.fields)}", folder)
    sides = {**{c: "user" for c in user_columns}, **{c: "item" for c in item_columns}}
    return FeatureSchema(tuple(replace(f, side=sides.get(j, "context"))
                               for j, f in enumerate(schema.fields)))


def _instances(p: _Parsed, fielded: bool) -> InstanceSet:
    """Each line is its own table row, padded to the file's longest line with (0, 0.0)."""
    n, width = len(p.counts), max(int(p.counts.max()), 1)
    rows = np.repeat(np.arange(n), p.counts)
    cols = np.arange(len(p.idx)) - np.repeat(np.cumsum(p.counts) - p.counts, p.counts)
    idx, val = np.zeros((n, width), np.int64), np.zeros((n, width), np.float32)
    idx[rows, cols], val[rows, cols] = p.idx, p.val
    slots = np.arange(width) if fielded else np.zeros(width, np.int64)
    return InstanceSet((np.arange(n),), (FeatureTable(idx, val, slots),), p.labels)
