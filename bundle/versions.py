"""Find the newest version folder of a model in a models folder.

The exporter names each version `<UTC time>-<content hash>` (models/<name>/<version>/), so the
newest is the last in name order; folders of any other name (an export still being written,
`.export-*`) are not versions and are passed over.
"""

from __future__ import annotations

import re
from pathlib import Path

from bundle.errors import BundleError

VERSION_PATTERN = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


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
