"""model.onnx for each scoring family, built from the bundle's numpy tables (no torch).

Split bundles:  state (B, D), candidates (B, C), exclude (B, E), n (1,)
                -> scores (B, C), top_items (B, n), top_scores (B, n)
    The whole catalog is scored once per call (B, N); `scores` gathers the candidates from it,
    and the top n come from it after the excluded positions are set to -inf. onnxruntime runs
    every node of a graph whatever outputs are asked for, so one pass serves both.
Whole bundles:  state (B, 2 W_u), candidates (B, C) -> scores (B, C)
    The model over each (user row, candidate row) pair; the scorer ranks a catalog in chunks.
Each graph mirrors the numpy reference of bundle/ (reference.py, whole.py) step by step, but
for the matrix form of the pair term (matrix_cross), which the reference, the tests' oracle,
computes in the row form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

from bundle import format as fmt
from bundle.layout import PAIRWISE_ONLY, SQUARED, StateLayout
from bundle.whole import field_onehot
from training.export.graph_builder import GraphBuilder, tensor_input


def build_graph(bundle_dir: Path, scoring: dict[str, Any]) -> onnx.ModelProto:
    """The scoring graph of a bundle whose npy files are already written in bundle_dir."""
    b, layout = GraphBuilder(bundle_dir), StateLayout.of(scoring)
    state = tensor_input(fmt.STATE, TensorProto.FLOAT, "batch", layout.size)
    candidates = tensor_input(fmt.CANDIDATES, TensorProto.INT64, "batch", "candidates")
    if scoring["path"] == fmt.WHOLE:
        whole_scores(b, scoring, layout, name=fmt.SCORES)
        return b.model([state, candidates],
                       [tensor_input(fmt.SCORES, TensorProto.FLOAT, "batch", "candidates")])
    family = {fmt.LINEAR: linear_items, fmt.FEATURE_PAIRS: feature_pair_items,
              fmt.NFM: nfm_items}[scoring["family"]]
    items = family(b, scoring, layout)  # (B, N): const_I + cross(U, I)
    part = b.slice(fmt.STATE, *layout.span("part"), 1)  # (B, 1): the same for every item, so
    b.op("Add", b.op("GatherElements", items, fmt.CANDIDATES, axis=1), part,  # added after
         name=fmt.SCORES)  # selecting, not to all N
    top_n(b, items, part)
    inputs = [state, candidates, tensor_input(fmt.EXCLUDE, TensorProto.INT64, "batch", "exclude"),
              tensor_input(fmt.TOP_N, TensorProto.INT64, 1)]
    outputs = [tensor_input(fmt.SCORES, TensorProto.FLOAT, "batch", "candidates"),
               tensor_input(fmt.TOP_ITEMS, TensorProto.INT64, "batch", "n"),
               tensor_input(fmt.TOP_SCORES, TensorProto.FLOAT, "batch", "n")]
    return b.model(inputs, outputs)


def top_n(b: GraphBuilder, catalog: str, part: str) -> None:
    """TopK over the catalog with `exclude` set to -inf."""
    values, items = b.op("TopK", exclusion_mask(b, catalog), fmt.TOP_N, outputs=2, axis=1,
                         largest=1, sorted=1)
    b.op("Add", values, part, name=fmt.TOP_SCORES)
    gone = b.op("Equal", values, b.const(-np.inf))
    b.op("Where", gone, b.const(-1, dtype=np.int64), items, name=fmt.TOP_ITEMS)


def exclusion_mask(b: GraphBuilder, catalog: str) -> str:
    """(B, N) with the positions of `exclude` set to -inf. The scatter takes the minimum of
    the old and the new value: a real position gets -inf, a -1 padding (sent to position 0)
    +inf, which leaves the score as it was, even where position 0 is also excluded."""
    padding = b.op("Less", fmt.EXCLUDE, b.const(0, dtype=np.int64))
    positions = b.op("Max", fmt.EXCLUDE, b.const(0, dtype=np.int64))
    bounds = b.op("Where", padding, b.const(np.inf), b.const(-np.inf))  # (B, E)
    return b.op("ScatterElements", catalog, positions, bounds, axis=1, reduction="min")


def linear_items(b: GraphBuilder, scoring: dict[str, Any], layout: StateLayout) -> str:
    """const_I + query_U · matrix_I for every item: one Gemm, (B, m) x (N, m)ᵀ + (N,)."""
    query = b.slice(fmt.STATE, *layout.span("query"), 1)
    return b.op("Gemm", query, b.table(fmt.item_table_file("matrix")),
                b.table(fmt.ITEM_CONST), transB=1)


def feature_pair_items(b: GraphBuilder, scoring: dict[str, Any], layout: StateLayout) -> str:
    """const_I + the gains g_l of the item's features, weighted by its row: (B, N)."""
    tables = {name: b.table(fmt.item_table_file(name))
              for name in ("feature_t", "feature_v", "feature_s") if name in item_tables(scoring)}
    gains = feature_gains(b, scoring, layout, tables, scoring["item_features"])  # (B, M)
    return item_sums(b, gains)


def item_tables(scoring: dict[str, Any]) -> tuple[str, ...]:
    """The per-feature item tables a feature-pair graph reads."""
    names = ["feature_t"]
    if scoring["weighted"]:
        names.append("feature_v")
        if scoring["distance"] in SQUARED:
            names.append("feature_s")
    return tuple(names)


def feature_gains(b: GraphBuilder, scoring: dict[str, Any], layout: StateLayout,
                  tables: dict[str, str], features: int) -> str:
    """The gain g_l of each row l of the item-feature tables given (the whole tables, or
    rows gathered from them; features = -1 for one user's call over gathered rows): (B, M).
    The two-phase graph rescores its shortlist with this same sequence of operators."""
    k, width, distance = scoring["dim"], scoring["user_width"], scoring["distance"]
    users = -1 if features >= 0 else 1
    matrix = scoring.get("pair_form") == fmt.PAIR_MATRIX
    products, span = None, v_rows(layout, matrix)  # (B, rows, M): v_l · each of those rows
    if span is not None:
        rows = (span[1] - span[0]) // k
        products = b.reshape(rows_gemm(b, b.reshape(b.slice(fmt.STATE, *span, 1), -1, k),
                                       tables["feature_v"], rows, features),
                             users, rows, features)
    if matrix:
        cross = matrix_cross(b, layout, scoring, tables)
    else:
        x = b.unsqueeze(b.slice(fmt.STATE, *layout.span("x"), 1), 1)  # (B, 1, R)
        item_t = tables["feature_t"]  # (M, k')
        t = b.slice(fmt.STATE, *layout.span("t"), 1)
        if distance in PAIRWISE_ONLY:
            diff = b.op("Abs", b.op("Sub", b.reshape(t, 0, width, 1, k), item_t))  # (B,R,M,k')
            pair = (b.sum(diff, -1) if distance == "manhattan"
                    else b.op("ReduceMax", diff, b.ints(-1), keepdims=0))  # (B, R, M)
        else:
            pair = b.reshape(rows_gemm(b, b.reshape(t, -1, k), item_t, width, features),
                             users, width, features)
        if products is not None:
            pair = b.op("Mul", pair, b.slice(products, rows - width, rows, 1))
        cross = b.reshape(b.op("MatMul", x, pair), 0, -1)  # (B, M): Σ_j x_j pair_j
    if distance not in SQUARED:
        return cross
    # s_l (a · v_l) + b · v_l − 2 Σ_j x_j (hv_j · v_l)(t_j · t_l)
    spread = b.op("Mul", tables["feature_s"], b.reshape(b.slice(products, 0, 1, 1), 0, -1))
    spread = b.op("Add", spread, b.reshape(b.slice(products, 1, 2, 1), 0, -1))
    return b.op("Sub", spread, b.op("Mul", cross, b.const(2.0)))


def v_rows(layout: StateLayout, matrix: bool) -> tuple[int, int] | None:
    """[start, stop) in the state of the user rows each item feature's v_l meets: a and b
    (squared distances), then, in the row form, the R rows h ⊙ v_j; None where none."""
    if matrix:
        return (layout.span("a")[0], layout.span("b")[1]) if layout.has("a") else None
    if not layout.has("hv"):
        return None
    return layout.span("a" if layout.has("a") else "hv")[0], layout.span("hv")[1]


def matrix_cross(b: GraphBuilder, layout: StateLayout, scoring: dict[str, Any],
                 tables: dict[str, str]) -> str:
    """Σ_j x_j (hv_j · v_l)(t_j · t_l) in the matrix form: v_lᵀ C t_l with the user's
    C = Σ_j x_j hv_j t_jᵀ (k × k'), formed once per call, so an item feature costs
    k k' + k whatever the user width R (the row form: 2 R k; tables.cheaper_pair_form)."""
    k, width = scoring["dim"], scoring["user_width"]
    x = b.unsqueeze(b.slice(fmt.STATE, *layout.span("x"), 1), 2)  # (B, R, 1)
    t = b.reshape(b.slice(fmt.STATE, *layout.span("t"), 1), 0, width, k)  # (B, R, k')
    hv = b.reshape(b.slice(fmt.STATE, *layout.span("hv"), 1), 0, width, k)  # (B, R, k)
    c_t = b.op("MatMul", b.op("Transpose", b.op("Mul", x, t), perm=[0, 2, 1]), hv)  # Cᵀ
    c_t_l = b.op("MatMul", tables["feature_t"], c_t)  # (B, M, k): C t_l, a row per feature
    return b.sum(b.op("Mul", c_t_l, tables["feature_v"]), -1)  # (B, M)


def rows_gemm(b: GraphBuilder, rows: str, table: str, count: int, features: int,
              *bias: str) -> str:
    """rows (r, k) · table (M, k)ᵀ. Over gathered rows (features < 0: the two-phase
    rescoring) a single row gets a zero row beside it: onnxruntime multiplies one row by a
    table it did not pack with another kernel, whose float32 sums can differ from model.onnx's
    in the last bit; two rows take the kernel model.onnx's packed tables take."""
    if features >= 0 or count > 1:
        return b.op("Gemm", rows, table, *bias, transB=1)
    padded = b.op("Concat", rows, b.op("Mul", rows, b.const(0.0)), axis=0)
    return b.slice(b.op("Gemm", padded, table, *bias, transB=1), 0, 1, 0)


def item_sums(b: GraphBuilder, gains: str) -> str:
    """const_I + Σ_w val_iw g(idx_iw) for every item, from the (B, M) feature gains, one
    item column after another (their products added left to right, then const: the order the
    two-phase rescoring repeats, training/export/two_phase_graph.py).

    Each column takes the cheapest exact route its contents allow, decided here at export:
    a column whose features are the catalog in order (an item-id field) is a slice of the
    gains, any other a GatherElements (onnxruntime's Gather copies one element at a time:
    21 ms of a 58 ms call at a million items, GatherElements 2); a column whose values are
    all 1 (a categorical field) skips the product, which would change no bit."""
    idx = np.load(b.bundle_dir / fmt.ITEM_IDX, mmap_mode="r")
    val = np.load(b.bundle_dir / fmt.ITEM_VAL, mmap_mode="r")
    users = b.slice(b.op("Shape", gains), 0, 1, 0)
    parts = []
    for w in range(idx.shape[1]):
        column = np.asarray(idx[:, w], np.int64)
        if len(column) and np.array_equal(column, column[0] + np.arange(len(column))):
            part = b.slice(gains, int(column[0]), int(column[0]) + len(column), 1)
        else:
            where = b.reshape(b.slice(b.table(fmt.ITEM_IDX), w, w + 1, 1), 1, -1)  # (1, N)
            wide = b.op("Expand", where, b.op("Concat", users, b.ints(1), axis=0))
            part = b.op("GatherElements", gains, wide, axis=1)  # (B, N)
        if not np.all(np.asarray(val[:, w]) == 1):
            part = b.op("Mul", part, b.reshape(b.slice(b.table(fmt.ITEM_VAL), w, w + 1, 1),
                                               1, -1))
        parts.append(part)
    return b.op("Add", added(b, parts), b.table(fmt.ITEM_CONST))


def added(b: GraphBuilder, parts: list[str]) -> str:
    """parts[0] + parts[1] + ..., left to right: float32 sums depend on their order, and the
    two-phase rescoring must add an item's columns exactly as model.onnx does."""
    total = parts[0]
    for part in parts[1:]:
        total = b.op("Add", total, part)
    return total


def nfm_items(b: GraphBuilder, scoring: dict[str, Any], layout: StateLayout) -> str:
    """const_I + the MLP of ½((S_U + S_I)² − (Q_U + Q_I)) for every item: (B, N)."""
    s = b.op("Add", b.unsqueeze(b.slice(fmt.STATE, *layout.span("s"), 1), 1),
             b.table(fmt.item_table_file("s")))  # (B, N, k)
    q = b.op("Add", b.unsqueeze(b.slice(fmt.STATE, *layout.span("q"), 1), 1),
             b.table(fmt.item_table_file("q")))
    bi = b.op("Mul", b.op("Sub", b.op("Mul", s, s), q), b.const(0.5))
    return b.op("Add", b.sum(dense_tower(b, bi, scoring["dense_layers"]), -1),
                b.table(fmt.ITEM_CONST))


def dense_tower(b: GraphBuilder, x: str, layers: int) -> str:
    for i in range(layers):
        x = b.op("Add", b.op("MatMul", x, b.table(fmt.table_file(f"dense{i}_w"))),
                 b.table(fmt.table_file(f"dense{i}_b")))
        if i < layers - 1:
            x = b.op("Relu", x)
    return x


def whole_scores(b: GraphBuilder, scoring: dict[str, Any], layout: StateLayout,
                 name: str) -> str:
    """DeepFM / xDeepFM / AFM over joined rows (user columns, then the candidate's)."""
    width, k = scoring["user_width"], scoring["dim"]
    idx = b.op("Cast", b.slice(fmt.STATE, *layout.span("idx"), 1), to=TensorProto.INT64)
    val = b.slice(fmt.STATE, *layout.span("val"), 1)  # (B, R)
    item_idx = b.op("Gather", b.table(fmt.ITEM_IDX), fmt.CANDIDATES)  # (B, C, W_i)
    item_val = b.op("Gather", b.table(fmt.ITEM_VAL), fmt.CANDIDATES)
    rows = b.op("Shape", fmt.CANDIDATES)

    def joined(user: str, item_table: str, tail: list[int]) -> str:
        """User columns broadcast over the candidates, then the candidate's columns."""
        shape = b.op("Concat", rows, b.ints(width, *tail), axis=0)
        user = b.op("Expand", b.unsqueeze(user, 1), shape)
        return b.op("Concat", user, b.op("Gather", b.table(item_table), item_idx), axis=2)

    x = b.op("Concat", b.op("Expand", b.unsqueeze(val, 1), b.op("Concat", rows, b.ints(width),
                                                                 axis=0)), item_val, axis=2)
    v = joined(b.op("Gather", b.table(fmt.table_file("user_v")), idx),
               fmt.item_table_file("feature_v"), [k])  # (B, C, W, k)
    bias = joined(b.op("Gather", b.table(fmt.table_file("user_bias")), idx),
                  fmt.item_table_file("feature_bias"), [])  # (B, C, W)
    linear = b.sum(b.op("Mul", bias, x), 2)
    xv = b.op("Mul", v, b.unsqueeze(x, 3))  # (B, C, W, k)
    onehot = b.const(field_onehot(scoring), "field_onehot")  # (W, F)
    e = b.op("Transpose", b.op("MatMul", b.op("Transpose", xv, perm=[0, 1, 3, 2]), onehot),
             perm=[0, 1, 3, 2])  # (B, C, F, k)
    head = {"deepfm": deepfm_head, "xdeepfm": xdeepfm_head, "afm": afm_head}[scoring["kind"]]
    total = b.op("Add", linear, head(b, scoring, xv, e))
    return b.op("Add", total, b.table(fmt.table_file("w0")), name=name)


def deep_part(b: GraphBuilder, scoring: dict[str, Any], e: str) -> str:
    flat = b.op("Reshape", e, b.ints(0, 0, -1))  # (B, C, F·k)
    return b.sum(dense_tower(b, flat, scoring["dense_layers"]), -1)


def deepfm_head(b: GraphBuilder, scoring: dict[str, Any], xv: str, e: str) -> str:
    summed = b.sum(xv, 2)  # (B, C, k)
    pair = b.op("Sub", b.op("Mul", summed, summed), b.sum(b.op("Mul", xv, xv), 2))
    pair = b.op("Mul", b.sum(pair, -1), b.const(0.5))
    return b.op("Add", pair, deep_part(b, scoring, e))


def xdeepfm_head(b: GraphBuilder, scoring: dict[str, Any], xv: str, e: str) -> str:
    hidden, pooled = e, []
    for layer in range(scoring["cin_layers"]):
        products = b.op("Mul", b.unsqueeze(hidden, 3), b.unsqueeze(e, 2))  # (B, C, H, F, k)
        products = b.reshape(products, 0, 0, -1, scoring["dim"])  # (B, C, H·F, k)
        hidden = b.op("MatMul", b.table(fmt.table_file(f"cin{layer}")), products)
        pooled.append(b.sum(hidden, -1))  # (B, C, H_l)
    cin = b.op("MatMul", b.op("Concat", *pooled, axis=-1),
               b.table(fmt.table_file("cin_out")))
    return b.op("Add", cin, deep_part(b, scoring, e))


def afm_head(b: GraphBuilder, scoring: dict[str, Any], xv: str, e: str) -> str:
    rows, cols = np.triu_indices(scoring["n_fields"], 1)
    products = b.op("Mul", b.op("Gather", e, b.const(rows, "pair_rows", np.int64), axis=2),
                    b.op("Gather", e, b.const(cols, "pair_cols", np.int64), axis=2))
    hidden = b.op("Relu", b.op("Add", b.op("MatMul", products, b.table(fmt.table_file("att_w"))),
                               b.table(fmt.table_file("att_b"))))
    weights = b.op("Softmax", b.op("MatMul", hidden, b.table(fmt.table_file("att_h"))), axis=-1)
    pooled = b.sum(b.op("Mul", b.unsqueeze(weights, 3), products), 2)  # (B, C, k)
    return b.op("MatMul", pooled, b.table(fmt.table_file("afm_p")))
