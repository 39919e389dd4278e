"""blocks.onnx: given catalog positions scored exactly as model.onnx scores them, for one user.

    state (1, D), positions (1, K) -> item_scores (1, K)

The block search (bundle/block_ranker.py) reads the catalog a few blocks at a time through
this graph. Its scores are model.onnx's item scores before the user's own part, to the bit:
it is the two-phase graph's rescoring (two_phase_graph.py), the operators of model.onnx over
the gathered rows, in the order model.onnx adds them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

from bundle import format as fmt
from bundle.layout import StateLayout
from training.export.graph_builder import GraphBuilder, tensor_input
from training.export.two_phase_graph import feature_pair_rescore, linear_rescore


def build_block_graph(bundle_dir: Path, scoring: dict[str, Any]) -> onnx.ModelProto:
    """The block-scoring graph of an eligible bundle whose npy files are in bundle_dir."""
    b, layout = GraphBuilder(bundle_dir), StateLayout.of(scoring)
    if scoring["family"] == fmt.LINEAR:
        scores = linear_rescore(b, layout, fmt.POSITIONS)
    else:
        scores = feature_pair_rescore(b, scoring, layout, fmt.POSITIONS)
    b.op("Identity", scores, name=fmt.ITEM_SCORES)
    return b.model([tensor_input(fmt.STATE, TensorProto.FLOAT, 1, layout.size),
                    tensor_input(fmt.POSITIONS, TensorProto.INT64, 1, "positions")],
                   [tensor_input(fmt.ITEM_SCORES, TensorProto.FLOAT, 1, "positions")])
