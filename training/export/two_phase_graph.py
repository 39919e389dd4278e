"""two_phase.onnx: the int8 first pass, the shortlist, its float32 rescoring and the certificate,
in one onnxruntime call for one user (bundle/two_phase.py has the proof).

    state (1, D), user_codes_v (r, k) uint8, [user_codes_t (R, k) uint8], mix (1, c),
    bound (1, P), exclude (1, E), n (1,), shortlist (1,)
        -> top_items (1, n), top_scores (1, n), certified (1,)

The first pass scores every item from the int8 codes (MatMulInteger: exact int32 products)
and bounds it with λ Ψ; the shortlist is the K items of highest upper bound after the
exclusions, put in catalog order; the rescoring runs the operators of model.onnx
(onnx_graphs.py) over the shortlist's rows, so its scores are the float32 path's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from bundle import format as fmt
from bundle.layout import StateLayout
from training.export.graph_builder import GraphBuilder, tensor_input
from training.export.onnx_graphs import (
    added,
    exclusion_mask,
    feature_gains,
    item_sums,
    item_tables,
    rows_gemm,
)


def build_two_phase_graph(bundle_dir: Path, scoring: dict[str, Any]) -> onnx.ModelProto:
    """The two-phase graph of an eligible bundle whose npy files are written in bundle_dir."""
    b, layout = GraphBuilder(bundle_dir), StateLayout.of(scoring)
    linear = scoring["family"] == fmt.LINEAR
    approx = linear_first_pass(b, scoring) if linear else feature_pair_first_pass(b, scoring)
    bound = b.op("MatMul", fmt.BOUND, b.table(fmt.item_table_file("bound_basis")))  # (1, N)
    upper = b.op("Add", approx, bound)
    tops, short = b.op("TopK", exclusion_mask(b, upper), fmt.SHORTLIST, outputs=2, axis=1,
                       largest=1, sorted=1)  # (1, K), highest upper bound first
    lower = b.op("Where", b.op("Equal", tops, b.const(-np.inf)), b.const(-np.inf),
                 b.op("Sub", b.op("GatherElements", approx, short, axis=1),
                      b.op("GatherElements", bound, short, axis=1)))
    floor = b.op("ReduceMin", b.op("TopK", lower, fmt.TOP_N, outputs=2, axis=1)[0],
                 b.ints(1), keepdims=0)  # (1,): L, the n-th highest lower bound
    last = b.op("ReduceMin", tops, b.ints(1), keepdims=0)  # the K-th upper bound
    b.op("Or", b.op("Less", last, floor), b.op("Equal", last, b.const(-np.inf)),
         name=fmt.CERTIFIED)
    # the shortlist in catalog order, so that TopK breaks ties as model.onnx's does
    order, where = b.op("TopK", b.op("Neg", short), fmt.SHORTLIST, outputs=2, axis=1)
    positions = b.op("Neg", order)  # (1, K) ascending
    kept = b.op("GatherElements", tops, where, axis=1)  # their upper bounds, in that order
    rescored = (linear_rescore(b, layout, positions) if linear
                else feature_pair_rescore(b, scoring, layout, positions))
    gone = b.op("Equal", kept, b.const(-np.inf))  # excluded items the shortlist had to take
    rescored = b.op("Where", gone, b.const(-np.inf), rescored)
    values, at = b.op("TopK", rescored, fmt.TOP_N, outputs=2, axis=1, largest=1, sorted=1)
    part = b.slice(fmt.STATE, *layout.span("part"), 1)
    b.op("Add", values, part, name=fmt.TOP_SCORES)
    b.op("Where", b.op("Equal", values, b.const(-np.inf)), b.const(-1, dtype=np.int64),
         b.op("GatherElements", positions, at, axis=1), name=fmt.TOP_ITEMS)
    users = [tensor_input(fmt.USER_V, TensorProto.UINT8, "rows", "dim")]
    if not linear:
        users.append(tensor_input(fmt.USER_T, TensorProto.UINT8, "width", "dim"))
    inputs = [tensor_input(fmt.STATE, TensorProto.FLOAT, 1, layout.size), *users,
              tensor_input(fmt.MIX, TensorProto.FLOAT, 1, "mix"),
              tensor_input(fmt.BOUND, TensorProto.FLOAT, 1, "basis"),
              tensor_input(fmt.EXCLUDE, TensorProto.INT64, 1, "exclude"),
              tensor_input(fmt.TOP_N, TensorProto.INT64, 1),
              tensor_input(fmt.SHORTLIST, TensorProto.INT64, 1)]
    outputs = [tensor_input(fmt.TOP_ITEMS, TensorProto.INT64, 1, "n"),
               tensor_input(fmt.TOP_SCORES, TensorProto.FLOAT, 1, "n"),
               tensor_input(fmt.CERTIFIED, TensorProto.BOOL, 1)]
    return b.model(inputs, outputs)


def codes_product(b: GraphBuilder, user: str, table: str) -> str:
    """User codes (r, k) uint8 × item codes (k, M) int8 -> (r, M) float32, exact."""
    product = b.op("MatMulInteger", user, b.table(fmt.item_table_file(table)),
                   b.const(128, "zero_point", np.uint8))
    return b.op("Cast", product, to=TensorProto.FLOAT)


def linear_first_pass(b: GraphBuilder, scoring: dict[str, Any]) -> str:
    """ŝ_i = const_i + α σ_i (ã · q_i): (1, N)."""
    scaled = b.op("Mul", codes_product(b, fmt.USER_V, "q_matrix"),
                  b.table(fmt.item_table_file("q_matrix_scale")))
    return b.op("Add", b.op("Mul", scaled, fmt.MIX), b.table(fmt.ITEM_CONST))


def feature_pair_first_pass(b: GraphBuilder, scoring: dict[str, Any]) -> str:
    """ĝ_l = s_l σ_l α_a I_a + σ_l α_b I_b + σ_l τ_l Σ_j c_j I_hv_j I_t_j per feature, then
    gathered per item as model.onnx gathers its gains: (1, N)."""
    width = scoring["user_width"]
    products = codes_product(b, fmt.USER_V, "q_v")  # (2 + R, M): a, b, hv_j
    pairs = codes_product(b, fmt.USER_T, "q_t")  # (R, M): t_j
    spread = b.op("MatMul", b.slice(fmt.MIX, 0, 2, 1),
                  b.op("Mul", b.slice(products, 0, 2, 0), b.table(fmt.item_table_file("q_mix"))))
    crossed = b.op("MatMul", b.slice(fmt.MIX, 2, 2 + width, 1),
                   b.op("Mul", b.slice(products, 2, 2 + width, 0), pairs))
    gains = b.op("Add", spread, b.op("Mul", crossed, b.table(fmt.item_table_file("q_pair"))))
    return item_sums(b, gains)


def linear_rescore(b: GraphBuilder, layout: StateLayout, positions: str) -> str:
    """model.onnx's Gemm over the shortlist's rows: (1, K)."""
    return linear_scores(b, layout, b.op("Gather", b.table(fmt.item_table_file("matrix")),
                                         positions),
                         b.op("Gather", b.table(fmt.ITEM_CONST), positions))


def linear_scores(b: GraphBuilder, layout: StateLayout, rows: str, const: str) -> str:
    """model.onnx's Gemm over given item rows (any shape ending in the query's width) and
    their consts: (1, K)."""
    query = layout.span("query")
    return rows_gemm(b, b.slice(fmt.STATE, *query, 1),
                     b.reshape(rows, -1, query[1] - query[0]), 1, -1, b.reshape(const, -1))


def feature_pair_rescore(b: GraphBuilder, scoring: dict[str, Any], layout: StateLayout,
                         positions: str) -> str:
    """model.onnx's gains over the shortlist's feature rows, weighted and summed per item as
    there: (1, K)."""
    idx = b.op("Gather", b.table(fmt.ITEM_IDX), positions)  # (1, K, W_i)
    flat = b.reshape(idx, -1)
    tables = {name: b.op("Gather", b.table(fmt.item_table_file(name)), flat)
              for name in item_tables(scoring)}
    gains = b.op("Reshape", feature_gains(b, scoring, layout, tables, -1),
                 b.op("Shape", idx))  # (1, K, W_i)
    values = b.op("Gather", b.table(fmt.ITEM_VAL), positions)
    parts = [b.op("Mul", b.reshape(b.slice(gains, w, w + 1, 2), 1, -1),  # as item_sums
                  b.reshape(b.slice(values, w, w + 1, 2), 1, -1))  # (x · 1 is x)
             for w in range(scoring["item_width"])]
    return b.op("Add", added(b, parts), b.reshape(b.op("Gather", b.table(fmt.ITEM_CONST),
                                                       positions), 1, -1))
