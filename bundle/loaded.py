"""A loaded bundle: its manifest, its arrays by name, and the parts that read them.

`load_bundle` (bundle/reader.py) builds one after checking every file. The tables the scorers
read are looked up here by name; what a request needs is in the parts: `catalog` (items by id,
display, filters), `users` (the known users' rows, training items and profiles) and `encoder`
(a request's raw values as a user row), all over the same `fields`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bundle import format as fmt
from bundle.catalog import Catalog
from bundle.encoding import UserEncoder
from bundle.errors import BundleError
from bundle.fields import Fields
from bundle.users import KnownUsers


class Bundle:
    """A verified bundle: manifest, memory-mapped arrays, and its catalog, users and encoder."""

    def __init__(self, path: Path, manifest: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.path, self.manifest, self.arrays = path, manifest, arrays
        self.fields = Fields(manifest["fields"])
        self.user_columns: tuple[str, ...] = tuple(manifest["columns"]["user"])
        self.item_columns: tuple[str, ...] = tuple(manifest["columns"]["item"])
        self.catalog = Catalog(self.array, self.fields, self.item_columns,
                               manifest.get("display", []))
        self.users = KnownUsers(self.array, self.fields, self.user_columns)
        self.encoder = UserEncoder(self.fields, self.user_columns)

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
        """A user-side table or a weight of the model (tables/<name>.npy)."""
        return self.array(fmt.table_file(name))

    def item_table(self, name: str) -> np.ndarray:
        """A per-item or per-item-feature table (items/<name>.npy)."""
        return self.array(fmt.item_table_file(name))

    @property
    def item_features_supported(self) -> bool:
        """Whether items its catalog lacks can be scored from their features: a bundle
        exported before added items lacks the item features' tables and the id field (it
        still serves its own catalog)."""
        return fmt.ITEM_ID_FIELD in self.manifest and all(
            name in self.arrays for name in fmt.added_item_files(self.scoring))

    def require_item_features(self) -> None:
        """Raise BundleError, saying to re-export, unless `item_features_supported`."""
        if not self.item_features_supported:
            missing = [n for n in fmt.added_item_files(self.scoring) if n not in self.arrays]
            raise BundleError(self.path, "exported before added items (it lacks "
                                         f"{', '.join(missing) or fmt.ITEM_ID_FIELD}): "
                                         "re-export it (python -m training export) to score "
                                         "items its catalog does not hold")
