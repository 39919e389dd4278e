"""Load a bundle and refuse it, naming the file, unless every file is whole and as described.

The manifest lists every other file with its byte size, sha256, dtype and shape; `load_bundle`
checks them all before anything is served, so a truncated copy, a flipped byte, a missing
table or a bundle written by a newer exporter fails at load time with one message, never as a
wrong score later.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleError, BundleInputError

HASH_CHUNK = 1 << 20
VERSION_PATTERN = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


@dataclass(frozen=True)
class FieldInfo:
    """A feature field as the bundle stores it: `offset` is the local index of vocab[0] in the
    tables of its side (user and context fields share the user side)."""

    name: str
    side: str  # user | item | context
    kind: str  # categorical | multihot | numeric
    vocab: Sequence[str]  # a tuple, or for a large vocabulary a numpy str array (compact)
    offset: int

    @property
    def table_side(self) -> str:
        return fmt.ITEM_SIDE if self.side == fmt.ITEM_SIDE else fmt.USER_SIDE


@dataclass(frozen=True)
class EncodedUser:
    """One user-side feature row and the values it had to leave out."""

    idx: np.ndarray  # (W_u,) int32
    val: np.ndarray  # (W_u,) float32
    ignored: dict[str, list[str]]  # field -> values unknown to the vocabulary


class Bundle:
    """A verified bundle: manifest, memory-mapped arrays and the lookups the service needs."""

    def __init__(self, path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.path, self.manifest, self.arrays = path, manifest, arrays
        # the vocabularies leave the manifest: a million item ids as Python strings cost
        # 58 MB in every worker, as one numpy array a third of that
        self.fields = tuple(FieldInfo(f["name"], f["side"], f["kind"],
                                      compact_vocabulary(f.pop("vocab")), f["offset"])
                            for f in manifest["fields"])
        self.user_columns: tuple[str, ...] = tuple(manifest["columns"]["user"])
        self.item_columns: tuple[str, ...] = tuple(manifest["columns"]["item"])

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def version(self) -> str:
        return self.manifest["version"]

    @property
    def scoring(self) -> dict[str, Any]:
        return self.manifest["scoring"]

    @property
    def onnx_path(self) -> Path:
        return self.path / fmt.ONNX_MODEL

    def array(self, name: str) -> np.ndarray:
        """A file of the bundle by its relative path; a missing one is a bundle error."""
        if name not in self.arrays:
            raise BundleError(self.path / name, "missing from the bundle's manifest")
        return self.arrays[name]

    def table(self, name: str) -> np.ndarray:
        return self.array(fmt.table_file(name))

    def item_table(self, name: str) -> np.ndarray:
        return self.array(fmt.item_table_file(name))

    # ---- catalog and known users ---------------------------------------------------------
    @property
    def item_ids(self) -> np.ndarray:
        """(N,) str: the id of each catalog position (what top_n's positions map to)."""
        return self.array(fmt.ITEM_IDS)

    @property
    def user_ids(self) -> np.ndarray:
        return self.array(fmt.USER_IDS)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @cached_property
    def _item_index(self) -> IdIndex:
        return IdIndex(self.item_ids)

    @cached_property
    def _user_index(self) -> IdIndex:
        return IdIndex(self.user_ids)

    def item_positions(self, item_ids: list[str]) -> tuple[np.ndarray, list[str]]:
        """Catalog positions of the known ids, in order, and the ids the catalog lacks."""
        positions = self._item_index.positions(item_ids)
        unknown = [i for i, p in zip(item_ids, positions.tolist()) if p < 0]
        return positions[positions >= 0], unknown

    def user_position(self, user_id: str) -> int | None:
        position = int(self._user_index.positions([user_id])[0])
        return position if position >= 0 else None

    def user_row(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """A known user's feature row: idx (W_u,) int32, val (W_u,) float32."""
        return (np.asarray(self.array(fmt.USER_IDX)[position]),
                np.asarray(self.array(fmt.USER_VAL)[position]))

    def seen_items(self, position: int) -> np.ndarray:
        """Catalog positions of the items a known user interacted with in training."""
        offsets = self.array(fmt.SEEN_OFFSETS)
        return np.asarray(self.array(fmt.SEEN_ITEMS)[offsets[position]:offsets[position + 1]])

    def profile(self, position: int) -> dict[str, str | list[str]]:
        """A known user's raw field values, decoded from its row."""
        return self._decode(*self.user_row(position), self.user_columns)

    @property
    def display_names(self) -> tuple[str, ...]:
        """The catalog's display attributes (title, ...), in the manifest's order."""
        return tuple(self.manifest.get("display", []))

    def display(self, position: int, names: Sequence[str] | None = None) -> dict[str, str]:
        """An item's display attributes: `names` of them, or every one."""
        names = self.display_names if names is None else names
        return {name: str(self.array(fmt.ITEM_ATTRIBUTE.format(name))[position])
                for name in names}

    def items_with(self, name: str, values: Sequence[str]) -> tuple[np.ndarray, list[str]]:
        """(N,) bool: the catalog items holding any of `values` in item field `name`; and
        the values its vocabulary lacks. Raises BundleInputError for a field that is not an
        item field."""
        field = next((f for f in self.fields if f.name == name), None)
        if field is None or field.side != fmt.ITEM_SIDE:
            known = ", ".join(f.name for f in self.fields if f.side == fmt.ITEM_SIDE)
            raise BundleInputError(name, f"not an item field (item fields: {known})")
        codes = {str(v): field.offset + k for k, v in enumerate(field.vocab)}
        features = [codes[v] for v in values if v in codes]
        columns = [c for c, col in enumerate(self.item_columns) if col == name]
        idx = self.array(fmt.ITEM_IDX)[:, columns]
        held = np.isin(idx, features) & (self.array(fmt.ITEM_VAL)[:, columns] != 0)
        return held.any(axis=1), [v for v in values if v not in codes]

    def item_details(self, position: int) -> dict[str, Any]:
        """An item's id, raw feature values and display attributes."""
        idx, val = self.array(fmt.ITEM_IDX)[position], self.array(fmt.ITEM_VAL)[position]
        return {"item_id": str(self.item_ids[position]),
                "features": self._decode(idx, val, self.item_columns), **self.display(position)}

    def _decode(self, idx: np.ndarray, val: np.ndarray,
                columns: tuple[str, ...]) -> dict[str, str | list[str]]:
        by_name = {f.name: f for f in self.fields}
        values: dict[str, list[str]] = {}
        for name, i, v in zip(columns, idx.tolist(), val.tolist()):
            if v != 0:
                field = by_name[name]
                values.setdefault(name, []).append(str(field.vocab[i - field.offset]))
        return {name: vals if by_name[name].kind == "multihot" else vals[0]
                for name, vals in values.items()}

    # ---- encoding request features -------------------------------------------------------
    @cached_property
    def _codes(self) -> dict[str, dict[str, int]]:
        return {f.name: {v: k for k, v in enumerate(f.vocab)} for f in self.fields
                if f.table_side == fmt.USER_SIDE}

    def encode_user(self, features: Mapping[str, Any],
                    context: Mapping[str, Any] | None = None) -> EncodedUser:
        """A user-side row from raw field values (a profile, plus context for this request).

        A multi-hot field takes a list; its m known values weigh 1/m each, as in training.
        Values a vocabulary lacks are ignored, as an FM ignores an unseen feature, and
        reported; an unknown field, an item field or too many values raise BundleInputError.
        """
        by_name = {f.name: f for f in self.fields}
        idx = np.zeros(len(self.user_columns), np.int32)
        val = np.zeros(len(self.user_columns), np.float32)
        ignored: dict[str, list[str]] = {}
        for name, raw in {**features, **(context or {})}.items():
            field = by_name.get(name)
            if field is None or field.table_side != fmt.USER_SIDE:
                known = ", ".join(f.name for f in self.fields if f.table_side == fmt.USER_SIDE)
                raise BundleInputError(name, f"not a user or context field (known: {known})")
            values = [str(v) for v in (raw if isinstance(raw, list | tuple) else [raw])]
            columns = [c for c, col in enumerate(self.user_columns) if col == name]
            if len(values) > len(columns):
                raise BundleInputError(name, f"at most {len(columns)} value(s), got "
                                             f"{len(values)}")
            codes = self._codes[name]
            known_values = [v for v in values if v in codes]
            if len(known_values) < len(values):
                ignored[name] = [v for v in values if v not in codes]
            for column, value in zip(columns, known_values):
                idx[column] = field.offset + codes[value]
                val[column] = 1.0 / len(known_values) if field.kind == "multihot" else 1.0
        return EncodedUser(idx, val, ignored)


def find_bundle(models_dir: Path, name: str | None = None) -> Path:
    """The newest version folder of model `name`, or of the only model in `models_dir`."""
    models_dir = Path(models_dir)
    names = sorted(p.name for p in models_dir.iterdir() if p.is_dir()
                   and not p.name.startswith(".")) if models_dir.is_dir() else []
    if name is None:
        if len(names) != 1:
            raise BundleError(models_dir, f"expected one model, found {len(names)} "
                                          f"({', '.join(names) or 'none'}); name one")
        name = names[0]
    versions = sorted(p for p in (models_dir / name).glob("*")
                      if p.is_dir() and VERSION_PATTERN.fullmatch(p.name))
    if not versions:
        raise BundleError(models_dir / name, "no bundle version here")
    return versions[-1]


def load_bundle(path: Path, verify: bool = True) -> Bundle:
    """Read and check a bundle folder; `verify=False` skips only the sha256 pass."""
    path = Path(path)
    manifest = read_manifest(path)
    arrays = {}
    for name, entry in manifest["files"].items():
        file = path / name
        _check_file(file, entry, verify)
        if name.endswith(".npy"):
            arrays[name] = _load_npy(file, entry)
    if fmt.ONNX_MODEL not in manifest["files"]:
        raise BundleError(path / fmt.ONNX_MODEL, "missing from the bundle's manifest")
    return Bundle(path, manifest, arrays)


def read_manifest(path: Path) -> dict[str, Any]:
    file = path / fmt.MANIFEST
    if not file.is_file():
        raise BundleError(file, "missing (not a bundle folder?)")
    try:
        manifest = json.loads(file.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(file, f"not valid JSON ({err})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt.FORMAT:
        raise BundleError(file, f"not a {fmt.FORMAT} manifest")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise BundleError(file, f"invalid format_version {version!r}")
    if version > fmt.FORMAT_VERSION:
        raise BundleError(file, f"format version {version} is newer than this reader's "
                                f"{fmt.FORMAT_VERSION}; upgrade gmlrec to serve it")
    missing = [k for k in ("name", "version", "scoring", "fields", "columns", "files")
               if k not in manifest]
    if missing:
        raise BundleError(file, f"missing key(s) {', '.join(missing)}")
    return manifest


def _check_file(file: Path, entry: dict[str, Any], verify: bool) -> None:
    if not file.is_file():
        raise BundleError(file, "missing")
    size = file.stat().st_size
    if size != entry["bytes"]:
        raise BundleError(file, f"{size} bytes, the manifest says {entry['bytes']} "
                                "(truncated or replaced)")
    if verify and sha256_of(file) != entry["sha256"]:
        raise BundleError(file, "sha256 differs from the manifest (corrupt)")


def _load_npy(file: Path, entry: dict[str, Any]) -> np.ndarray:
    try:
        array = np.load(file, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise BundleError(file, f"not a readable npy array ({err})") from None
    if list(array.shape) != entry["shape"] or array.dtype.str != entry["dtype"]:
        raise BundleError(file, f"{array.dtype.str} {list(array.shape)}, the manifest says "
                                f"{entry['dtype']} {entry['shape']}")
    return array


def sha256_of(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


LARGE_VOCAB = 10_000  # values from which a vocabulary is kept as a numpy array


def compact_vocabulary(vocab: list[str]) -> Sequence[str]:
    """A small vocabulary as a tuple, a large one as a numpy str array (a third the memory)."""
    return np.asarray(vocab, dtype=str) if len(vocab) >= LARGE_VOCAB else tuple(vocab)


class IdIndex:
    """Positions of ids in a (memory-mapped) numpy str array, found by binary search over its
    sort order: 8 bytes an id in the worker's heap, where a dict of Python strings took 140
    (a 1,000,000-item catalog: 8 MB against 140 MB in every worker)."""

    def __init__(self, ids: np.ndarray):
        self.ids, self.order = ids, np.argsort(ids, kind="stable")

    def positions(self, wanted: Sequence[str]) -> np.ndarray:
        """(len(wanted),) int64: each id's position, -1 where it is not there."""
        if len(self.ids) == 0 or len(wanted) == 0:
            return np.full(len(wanted), -1, np.int64)
        query = np.asarray(wanted, dtype=str)  # its own width: a longer id never truncates
        at = np.minimum(np.searchsorted(self.ids, query, sorter=self.order), len(self.ids) - 1)
        found = self.order[at]
        return np.where(self.ids[found] == query, found, -1).astype(np.int64)
