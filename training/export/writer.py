"""Write a bundle folder: npy files, model.onnx over them, then the manifest that lists them.

Everything is written into a hidden temporary folder beside the versions, read back and
checked against the torch model (verify.py), and renamed into place only then, so a reader
never sees half a bundle or a wrong one; the version is a sortable UTC timestamp plus a hash
of the files' contents.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from bundle import blocks, two_phase
from bundle import format as fmt
from bundle.layout import MAX_EXACT_INDEX
from bundle.reader import sha256_of
from training.data.schema import FeatureSchema
from training.errors import ConfigError
from training.export.block_graph import block_reads, build_block_graph
from training.export.catalog import ServingData, SideIndex, item_id_field
from training.export.onnx_graphs import build_graph
from training.export.tables import Extracted, extract
from training.export.two_phase_graph import build_two_phase_graph
from training.export.verify import verify_bundle


@dataclass(frozen=True)
class Provenance:
    """Where the model came from, for the manifest."""

    kind: str  # the registry name of the model
    run: str  # the run folder
    data: str  # the data spec
    fingerprint: str  # the training data's fingerprint
    metrics: dict[str, Any]  # the run's metrics.json


def write_bundle(model: torch.nn.Module, schema: FeatureSchema, slot_field: np.ndarray,
                 serving: ServingData, provenance: Provenance, models_dir: Path,
                 name: str, pair_form: str | None = None) -> Path:
    """Export `model` with its catalog into models_dir/name/<version>; returns that folder.
    `pair_form` overrides the cheaper form export picks for a bundle that has one
    (tables.cheaper_pair_form; tests and benches hold both forms to the same answers)."""
    sides = SideIndex.of(schema)
    extracted = extract(model, sides, serving, slot_field)
    if pair_form is not None:
        if "pair_form" not in extracted.scoring or pair_form not in fmt.PAIR_FORMS:
            raise ConfigError(f"--pair-form {pair_form!r}: only GML-FM with its weight and a "
                              f"dot-product distance has one, of {', '.join(fmt.PAIR_FORMS)}")
        extracted.scoring["pair_form"] = pair_form
    if extracted.scoring["path"] == fmt.WHOLE and len(sides.user_features) >= MAX_EXACT_INDEX:
        raise ConfigError(f"{len(sides.user_features)} user-side features: a whole-model "
                          "state holds indices as float32, exact only below 2^24")
    home = Path(models_dir) / name
    new_home = not home.exists()
    home.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=home))
    try:
        arrays = bundle_arrays(extracted, serving, sides)
        for relative, array in arrays.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            np.save(tmp / relative, array, allow_pickle=False)
        graphs = {fmt.ONNX_MODEL: build_graph}
        if two_phase.eligible(extracted.scoring):
            graphs[fmt.TWO_PHASE_MODEL] = build_two_phase_graph
            graphs[fmt.BLOCKS_MODEL] = build_block_graph
        for file, build in graphs.items():
            onnx.save(build(tmp, extracted.scoring), tmp / file)
            onnx.checker.check_model(str(tmp / file))
        files = {relative: _describe(tmp / relative, arrays.get(relative))
                 for relative in [*arrays, *graphs]}
        created = datetime.now(UTC)
        content = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()
        version = f"{created:%Y%m%dT%H%M%SZ}-{content[:8]}"
        manifest = build_manifest(name, version, created, extracted, schema,
                                  np.asarray(slot_field), sides, serving, provenance, files)
        (tmp / fmt.MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        verify_bundle(tmp, model, serving)  # still staged: a mismatch publishes nothing
        for path in tmp.rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.chmod(tmp, 0o755)
        target = home / version
        if target.exists():  # the same content exported within the same second
            shutil.rmtree(tmp)
            return target
        os.rename(tmp, target)
        return target
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if new_home:  # leave no empty model folder behind (rmdir keeps a non-empty one)
            with contextlib.suppress(OSError):
                home.rmdir()
        raise


def bundle_arrays(extracted: Extracted, serving: ServingData,
                  sides: SideIndex) -> dict[str, np.ndarray]:
    """Every npy of the bundle by relative path; feature rows in side-local indices."""
    offsets, seen = serving.seen_csr()
    arrays = {
        fmt.ITEM_IDS: serving.item_ids.astype(str),
        fmt.ITEM_IDX: sides.to_local(serving.item_idx, serving.item_val),
        fmt.ITEM_VAL: serving.item_val.astype(np.float32),
        fmt.USER_IDS: serving.user_ids.astype(str),
        fmt.USER_IDX: sides.to_local(serving.user_idx, serving.user_val),
        fmt.USER_VAL: serving.user_val.astype(np.float32),
        fmt.SEEN_OFFSETS: offsets, fmt.SEEN_ITEMS: seen}
    arrays |= {fmt.ITEM_ATTRIBUTE.format(name): values.astype(str)
               for name, values in serving.attributes.items()}
    arrays |= serving.history.arrays() if serving.history is not None else {}
    arrays |= {fmt.table_file(name): np.ascontiguousarray(t, np.float32)
               for name, t in extracted.tables.items()}
    arrays |= {fmt.item_table_file(name): np.ascontiguousarray(t, np.float32)
               for name, t in extracted.item_tables.items()}
    if two_phase.eligible(extracted.scoring):  # int8 codes, the bound's basis, the blocks
        served = {name: arrays[fmt.item_table_file(name)] for name in extracted.item_tables}
        quantised = two_phase.item_arrays(extracted.scoring, served,
                                          arrays[fmt.ITEM_IDX], arrays[fmt.ITEM_VAL],
                                          arrays[fmt.ITEM_CONST])
        arrays |= {fmt.item_table_file(name): np.ascontiguousarray(t)
                   for name, t in quantised.items()}
        blocked = blocks.item_arrays(extracted.scoring, served, arrays[fmt.ITEM_IDX],
                                     arrays[fmt.ITEM_VAL], arrays[fmt.ITEM_CONST],
                                     block_reads(extracted.scoring))
        arrays |= {fmt.block_file(name): np.ascontiguousarray(t) for name, t in blocked.items()}
    return arrays


def _describe(path: Path, array: np.ndarray | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": sha256_of(path)}
    if array is not None:
        entry |= {"dtype": array.dtype.str, "shape": list(array.shape)}
    return entry


def build_manifest(name: str, version: str, created: datetime, extracted: Extracted,
                   schema: FeatureSchema, slot_field: np.ndarray, sides: SideIndex,
                   serving: ServingData, provenance: Provenance,
                   files: dict[str, Any]) -> dict[str, Any]:
    metrics = provenance.metrics
    names = [f.name for f in schema.fields]
    history = {} if serving.history is None else \
        {"history": serving.history.manifest(len(serving.user_columns))}
    return {
        "format": fmt.FORMAT, "format_version": fmt.FORMAT_VERSION,
        "name": name, "version": version,
        "created_at": created.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "model": {"kind": provenance.kind, "options": metrics.get("config", {})},
        "scoring": extracted.scoring,
        "fields": [{"name": f.name, "side": f.side, "kind": f.kind, "vocab": list(f.vocab),
                    "offset": sides.offsets[f.name]} for f in schema.fields],
        "columns": {"user": [names[f] for f in slot_field[serving.user_columns]],
                    "item": [names[f] for f in slot_field[serving.item_columns]]},
        "display": sorted(serving.attributes),
        fmt.ITEM_ID_FIELD: item_id_field(schema, serving, slot_field),
        "counts": {"users": len(serving.user_ids), "items": len(serving.item_ids),
                   "training_interactions": int(len(serving.seen_users)),
                   "user_features": len(sides.user_features),
                   "item_features": len(sides.item_features)},
        "data": {"spec": provenance.data, "fingerprint": provenance.fingerprint,
                 **({"events": metrics["events"]} if "events" in metrics else {})},
        "run": {"path": provenance.run,
                **{k: metrics[k] for k in ("task", "epochs", "best_epoch", "train_seconds")
                   if k in metrics}},
        "metrics": {k: metrics[k] for k in ("valid", "test") if k in metrics},
        "onnx": {"file": fmt.ONNX_MODEL, "opset": fmt.OPSET},
        **history,
        "files": files,
    }
