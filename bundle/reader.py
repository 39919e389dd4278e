"""Load a bundle and refuse it, naming the file, unless every file is whole and as described.

The manifest lists every other file with its byte size, sha256, dtype and shape; `load_bundle`
checks them all before anything is served, so a truncated copy, a flipped byte, a missing
table or a bundle written by a newer exporter fails at load time with one message, never as a
wrong score later.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.errors import BundleError
from bundle.loaded import Bundle

HASH_CHUNK = 1 << 20


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
    """A bundle folder's manifest, refused unless it is this format at a version this reader
    knows, with every key the reader needs."""
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
    """A file's sha256, read in chunks (a bundle's tables can be larger than memory)."""
    digest = hashlib.sha256()
    with open(file, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
