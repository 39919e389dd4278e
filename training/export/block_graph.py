"""blocks.onnx: whole blocks of the catalog scored exactly as model.onnx scores their items,
for one user.

    state (1, D), blocks (1, K) -> item_scores (1, K S)

The block search (bundle/block_ranker.py) reads the catalog a few blocks at a time through
this graph. It gathers each block's slab (bundle/blocks.py: the block's item rows copied in
block order, S slots, padding included) and runs model.onnx's operators over them, in the
order model.onnx adds them (the two-phase rescoring's sequence, two_phase_graph.py), so each
slot's score is model.onnx's item score before the user's own part, to the bit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from bundle import blocks
from bundle import format as fmt
from bundle.layout import StateLayout
from training.export.graph_builder import GraphBuilder, tensor_input
from training.export.onnx_graphs import added, feature_gains, item_tables
from training.export.two_phase_graph import linear_scores


def block_reads(scoring: dict[str, Any]) -> tuple[str, ...]:
    """The item tables blocks.onnx reads, each copied into slabs at export."""
    return ("matrix",) if scoring["family"] == fmt.LINEAR else item_tables(scoring)


def build_block_graph(bundle_dir: Path, scoring: dict[str, Any]) -> onnx.ModelProto:
    """The block-scoring graph of an eligible bundle whose npy files are in bundle_dir."""
    b, layout = GraphBuilder(bundle_dir), StateLayout.of(scoring)

    def slab(name: str) -> str:  # (1, K, S, ...): the blocks' slabs of one array
        return b.op("Gather", b.table(fmt.block_file(f"slab_{name}")), fmt.BLOCK_IDS)

    if scoring["family"] == fmt.LINEAR:
        scores = linear_scores(b, layout, slab("matrix"), slab("const"))
    else:
        scores = _feature_pair_blocks(b, scoring, layout, bundle_dir, slab)
    b.op("Identity", scores, name=fmt.ITEM_SCORES)
    return b.model([tensor_input(fmt.STATE, TensorProto.FLOAT, 1, layout.size),
                    tensor_input(fmt.BLOCK_IDS, TensorProto.INT64, 1, "blocks")],
                   [tensor_input(fmt.ITEM_SCORES, TensorProto.FLOAT, 1, "slots")])


def _feature_pair_blocks(b: GraphBuilder, scoring: dict[str, Any], layout: StateLayout,
                         bundle_dir: Path, slab: Callable[[str], str]) -> str:
    """Each slot's gains per column (the own columns' from the slab's rows, a shared
    column's gathered from its distinct features' gains), then model.onnx's sum: (1, K S)."""
    width = scoring["item_width"]
    shared = blocks.shared_columns(np.load(bundle_dir / fmt.ITEM_IDX, mmap_mode="r"))
    own = [w for w in range(width) if w not in shared]
    gains: dict[int, str] = {}
    if own:
        rows = {name: b.reshape(slab(name), -1, *_row_shape(bundle_dir, name))
                for name in item_tables(scoring)}  # (K S W_own, k): the catalog tables' rows
        own_gains = b.reshape(feature_gains(b, scoring, layout, rows, -1), 1, -1, len(own))
        gains |= {w: b.reshape(b.slice(own_gains, i, i + 1, 2), 1, -1)
                  for i, w in enumerate(own)}
    for w in shared:
        features = b.table(fmt.block_file(f"shared_{w}"))
        rows = {name: b.op("Gather", b.table(fmt.item_table_file(name)), features)
                for name in item_tables(scoring)}
        column = b.reshape(feature_gains(b, scoring, layout, rows, -1), 1, -1)  # (1, F)
        gains[w] = b.op("GatherElements", column, b.reshape(slab(f"index_{w}"), 1, -1),
                        axis=1)  # (Gather copies one element at a time: 5× as long)
    valued = blocks.valued_columns(np.load(bundle_dir / fmt.ITEM_VAL, mmap_mode="r"))
    if valued:
        values = b.reshape(slab("val"), 1, -1, len(valued))
        for i, w in enumerate(valued):
            gains[w] = b.op("Mul", gains[w], b.reshape(b.slice(values, i, i + 1, 2), 1, -1))
    parts = [gains[w] for w in range(width)]  # as model.onnx's item_sums, column after column
    return b.op("Add", added(b, parts), b.reshape(slab("const"), 1, -1))


def _row_shape(bundle_dir: Path, name: str) -> tuple[int, ...]:
    """The shape of one feature's row in a slab (k, or () for a scalar per feature)."""
    return np.load(bundle_dir / fmt.block_file(f"slab_{name}"), mmap_mode="r").shape[2:]
