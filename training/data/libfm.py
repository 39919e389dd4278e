"""libFM reader: pre-split train / validation / test files of `label idx:value ...` lines.

The files do not say which field a feature belongs to. When every line has the same number of
entries and each position (column) draws its indices from a range no other column's indices
enter (the NFM / GEM preprocessing of Frappe and MovieLens-tag, and any subset of such files,
whose ranges have gaps), each column becomes a field, so per-field models (DeepFM, AFM) get real
fields and GEM real node fields; otherwise all features form one field. A field's vocabulary is
the indices its column uses, so gaps cost nothing; the features are renumbered densely, field
after field, and the vocabulary keeps each feature's index in the files.

`--libfm-fields` names the columns and gives each its side of the user / item / context split:
`name:side` entries, where a bare `user` or `item` is that side and any other bare name context.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np

from training.data.instances import InstanceSet, LibfmData
from training.data.schema import SIDES, FeatureSchema, FeatureTable, Field, Side
from training.errors import ConfigError, DataError

UNFIELDED = "feature"  # the one field of files whose columns are not fields
IS_SPACE = np.zeros(256, bool)
IS_SPACE[list(b" \t\n\r\x0b\x0c")] = True  # exactly what bytes.split() splits on


@dataclass(frozen=True)
class _Parsed:
    """One file as flat arrays: line n holds entries counts[n] long, consecutive in idx / val."""

    labels: np.ndarray  # (N,) float32
    counts: np.ndarray  # (N,) int64
    idx: np.ndarray  # (E,) int64
    val: np.ndarray  # (E,) float32


def load_libfm(path: Path, names: Sequence[tuple[str, Side]] = ()) -> LibfmData:
    """Read a folder of one *.train.libfm, one optional *.validation.libfm, one *.test.libfm;
    `names` (from `parse_field_names`) names the positional fields, one per column."""
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
    schema, renumber, inferred = _schema(list(parsed.values()), n, names)
    sets = {split: _instances(p, renumber, len(schema.fields)) for split, p in parsed.items()}
    notes = [] if files["validation"] else ["no validation file"]
    notes.append(inferred)
    h = hashlib.sha256()
    for data in blobs.values():
        h.update(data)
    return LibfmData(f"libfm:{folder.name}", schema, sets["train"], sets.get("validation"),
                     sets["test"], h.hexdigest()[:16], notes,
                     {split: str(p) for split, p in files.items() if p is not None})


def parse_field_names(text: str) -> tuple[tuple[str, Side], ...]:
    """`user,item,weekday` or `uid:user,age:user,mid:item,hour:context` as (name, side) pairs;
    empty text is none. A bad entry is a ConfigError naming --libfm-fields and the text."""
    if not text.strip():
        return ()
    fields: list[tuple[str, Side]] = []
    for entry in (e.strip() for e in text.split(",")):
        name, sep, side = (s.strip() for s in entry.partition(":"))
        problem = None
        if not re.fullmatch(r"\w+", name):
            problem = (f"bad name {name!r}: each entry is NAME or NAME:SIDE, a name letters, "
                       "digits and _")
        elif sep and side not in SIDES:
            problem = f"bad side {side!r}: expects {', '.join(SIDES)}"
        elif name in (f for f, _ in fields):
            problem = f"field {name!r} named twice"
        if problem:
            raise ConfigError(f"invalid value for --libfm-fields: {text!r} ({problem})")
        fields.append((name, side if sep else name if name in ("user", "item") else "context"))
    return tuple(fields)


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


def _schema(parsed: list[_Parsed], n: int, names: Sequence[tuple[str, Side]]
            ) -> tuple[FeatureSchema, np.ndarray, str]:
    """Positional fields when the columns allow (see `_columns`), else one multi-hot field of
    every index; the lookup from a file index to its feature; what was inferred, as a note."""
    columns, why_not = _columns(parsed)
    if columns is None:
        if names:
            raise ConfigError(f"--libfm-fields: {len(names)} names given, but the files have no "
                              f"positional fields ({why_not})")
        vocab = tuple(str(i) for i in range(n))
        return (FeatureSchema.build([Field(UNFIELDED, "context", "multihot", vocab)]),
                np.arange(n), f"one multi-hot field '{UNFIELDED}' ({why_not})")
    ones = (np.concatenate([p.val.reshape(-1, columns.shape[1]) for p in parsed]) == 1).all(0)
    schema, renumber = _fielded_schema(columns, ones, names)
    return schema, renumber, _describe(schema, columns, bool(names))


def _columns(parsed: list[_Parsed]) -> tuple[np.ndarray | None, str]:
    """Every line's entries as rows of a (lines, m) index matrix when the lines have one width
    and each column's indices lie in a range that no other column's indices enter; else None
    and why not."""
    widths = np.unique(np.concatenate([p.counts for p in parsed]))
    if len(widths) > 1:
        return None, f"lines differ in length: {widths[0]} to {widths[-1]} entries"
    m = int(widths[0])
    idx = np.concatenate([p.idx.reshape(-1, m) for p in parsed])
    lo, hi = idx.min(0), idx.max(0)
    by_start = np.argsort(lo, kind="stable")
    clash = np.flatnonzero(lo[by_start[1:]] <= hi[by_start[:-1]])
    if len(clash):
        a, b = sorted(by_start[clash[0]:clash[0] + 2])
        return None, (f"the indices of columns {a} ({lo[a]}–{hi[a]}) and {b} ({lo[b]}–{hi[b]}) "
                      "overlap")
    return idx, ""


def _fielded_schema(columns: np.ndarray, ones: np.ndarray, names: Sequence[tuple[str, Side]]
                    ) -> tuple[FeatureSchema, np.ndarray]:
    """One field per column, its vocabulary the indices the column uses (categorical when
    its values are all 1, else multi-hot, weighted); and the lookup from a file index to its
    feature (dense, field after field)."""
    m = columns.shape[1]
    if names and len(names) != m:
        raise ConfigError(f"--libfm-fields: {len(names)} names for {m} columns (the files' "
                          "lines have one entry per column)")
    names = names or [(f"field{j}", "context") for j in range(m)]
    vocabs = [np.unique(columns[:, j]) for j in range(m)]
    schema = FeatureSchema.build([
        Field(name, side, "categorical" if one else "multihot", tuple(str(i) for i in vocab))
        for (name, side), vocab, one in zip(names, vocabs, ones, strict=True)])
    renumber = np.full(int(columns.max()) + 1, -1, np.int64)
    for field, vocab in zip(schema.fields, vocabs, strict=True):
        renumber[vocab] = field.offset + np.arange(field.size)
    return schema, renumber


def _describe(schema: FeatureSchema, columns: np.ndarray, named: bool) -> str:
    """What was inferred, for the run's notes: each field's values and index range."""
    fields = ", ".join(f"{f.name} ({f.side}): {f.size} values in {lo}–{hi}" for f, lo, hi in
                       zip(schema.fields, columns.min(0), columns.max(0), strict=True))
    hint = "" if named else "; --libfm-fields names them and gives their user / item sides"
    return (f"{len(schema.fields)} positional fields inferred, each column's indices in a range "
            f"of its own: {fields}{hint}")


def _instances(p: _Parsed, renumber: np.ndarray, n_fields: int) -> InstanceSet:
    """Each line is its own table row, padded to the file's longest line with (0, 0.0); file
    indices become features through `renumber`. Column j is field j, or with one field (the
    unfielded files) every column is field 0."""
    n, width = len(p.counts), max(int(p.counts.max()), 1)
    rows = np.repeat(np.arange(n), p.counts)
    cols = np.arange(len(p.idx)) - np.repeat(np.cumsum(p.counts) - p.counts, p.counts)
    idx, val = np.zeros((n, width), np.int64), np.zeros((n, width), np.float32)
    idx[rows, cols], val[rows, cols] = renumber[p.idx], p.val
    slots = np.minimum(np.arange(width), n_fields - 1)
    return InstanceSet((np.arange(n),), (FeatureTable(idx, val, slots),), p.labels)
