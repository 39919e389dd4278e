"""The bundle format: every name the writer (`training.export`) and the reader share.

A bundle is a folder `models/<name>/<version>/`:

    manifest.json       what the bundle is, and every other file with its sha256 and shape
    model.onnx          the scoring graph; its large initializers live in the npy files below
    tables/*.npy        per-feature tables of the user side, and the model's weights
    items/*.npy         the catalog: ids, feature rows, precomputed item tables, display text
    users/*.npy         the known users: ids, feature rows, training interactions

Feature indices are local to a side: user rows index the user-side tables (user and context
fields), item rows the item-side ones, so neither side's tables carry the other's features.
Every array is a plain npy (no pickles) that `np.load(mmap_mode="r")` maps.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FORMAT = "gmlrec-bundle"
FORMAT_VERSION = 1  # a reader refuses a bundle whose format_version is larger
MANIFEST = "manifest.json"
ONNX_MODEL = "model.onnx"
OPSET = 18  # ai.onnx opset of model.onnx (18: ScatterElements with reduction="min")
IR_VERSION = 8

# scoring paths (manifest["scoring"]["path"]) and, within them, families of state and tables
SPLIT, WHOLE = "split", "whole"
LINEAR = "linear"  # score = part_U + const_I + item_matrix_I · query_U   (fm, transfm, ...)
FEATURE_PAIRS = "feature_pairs"  # per-item-feature gains gathered per item (weighted gmlfm)
NFM = "nfm"  # additive (S, Q) per item, then the MLP over every candidate
# how a feature-pair graph forms Σ_j x_j (hv_j · v_l)(t_j · t_l) (scoring["pair_form"], chosen
# at export as the cheaper for the user width; bundles from before it have the row form):
PAIR_ROWS = "rows"  # 2R dot products of k per item feature
PAIR_MATRIX = "matrix"  # v_lᵀ C t_l with the user's C = Σ_j x_j hv_j t_jᵀ: k k' + k
PAIR_FORMS = (PAIR_ROWS, PAIR_MATRIX)
FAMILIES = {SPLIT: (LINEAR, FEATURE_PAIRS, NFM), WHOLE: (WHOLE,)}

# what each family scores an item from (items/<name>.npy, one row per catalog item): the
# catalog's, or an added item's computed from its feature row (bundle/added_items.py)
ITEM_PARTS = {LINEAR: ("const", "matrix"), FEATURE_PAIRS: ("const", "idx", "val"),
              NFM: ("const", "s", "q"), WHOLE: ("idx", "val")}
# manifest key: the item field whose value is each catalog item's id (null: none is), where an
# added item's own id goes; bundles from before added items lack it
ITEM_ID_FIELD = "item_id_field"

# sides of a field; context fields join the user side at request time
USER_SIDE, ITEM_SIDE = "user", "item"

# model.onnx inputs and outputs
STATE = "state"  # (B, D) float32: one user state per row
CANDIDATES = "candidates"  # (B, C) int64: catalog positions to score
EXCLUDE = "exclude"  # (B, E) int64: catalog positions left out of the top n, -1 pads
TOP_N = "n"  # (1,) int64: how many items the top-n outputs hold
SCORES = "scores"  # (B, C) float32
TOP_ITEMS = "top_items"  # (B, n) int64, -1 where fewer than n items remain
TOP_SCORES = "top_scores"  # (B, n) float32, -inf where fewer than n items remain

# two_phase.onnx (bundle/two_phase.py): one user a call; its inputs beside state, exclude, n
TWO_PHASE_MODEL = "two_phase.onnx"
USER_V = "user_codes_v"  # (r, k) uint8: the user's rows against the v (or matrix) codes
USER_T = "user_codes_t"  # (R, k) uint8: the user's t rows (feature pairs)
MIX = "mix"  # (1, c) float32: the factors that turn code products into scores
BOUND = "bound"  # (1, P) float32: λ, the bound's coefficients
SHORTLIST = "shortlist"  # (1,) int64: K, the items rescored in float32
CERTIFIED = "certified"  # (1,) bool: the answer is provably the float32 path's

# blocks.onnx (bundle/blocks.py, bundle/block_ranker.py): whole blocks of the catalog scored
# as model.onnx scores their items, for one user a call; blocks/*.npy hold the catalog's blocks,
# their bounds' summaries and their items' rows in block order (slabs). Both optional: a
# bundle without them serves by the full pass.
BLOCKS_MODEL = "blocks.onnx"
BLOCK_IDS = "blocks"  # (1, K) int64: the blocks to score
ITEM_SCORES = "item_scores"  # (1, K S) float32: their slots' scores before the user's own part

# files of the catalog and the known users
ITEM_IDS = "items/ids.npy"  # (N,) str
ITEM_IDX = "items/idx.npy"  # (N, W_i) int32 item-side feature indices
ITEM_VAL = "items/val.npy"  # (N, W_i) float32, 0 pads
ITEM_CONST = "items/const.npy"  # (N,) float32: w0 + the item's own linear and pair terms
ITEM_ATTRIBUTE = "items/attr_{}.npy"  # (N,) str: a display attribute such as the title
USER_IDS = "users/ids.npy"  # (U,) str
USER_IDX = "users/idx.npy"  # (U, W_u) int32 user-side feature indices
USER_VAL = "users/val.npy"  # (U, W_u) float32
SEEN_OFFSETS = "users/seen_offsets.npy"  # (U + 1,) int64: user u's items are seen[o[u]:o[u+1]]
SEEN_ITEMS = "users/seen_items.npy"  # (P,) int32 catalog positions, training interactions


def table_file(name: str) -> str:
    """Where a named table lives, e.g. `user_v` -> tables/user_v.npy."""
    return f"tables/{name}.npy"


def item_table_file(name: str) -> str:
    """A per-item or per-item-feature table, e.g. `matrix` -> items/matrix.npy."""
    return f"items/{name}.npy"


def block_file(name: str) -> str:
    """A per-block array, e.g. `order` -> blocks/order.npy."""
    return f"blocks/{name}.npy"


def feature_tables(scoring: Mapping[str, Any]) -> tuple[str, ...]:
    """The per-feature tables a row's own terms are computed from, on either side (the user
    side's tables/user_<name>.npy, the item side's items/feature_<name>.npy): the features'
    biases and the vectors the family's pair term reads (v, GML-FM's t = T(v), TransFM's
    a = v + v')."""
    if scoring.get("kind") == "gmlfm":
        return ("bias", "t", "v") if scoring.get("weighted") else ("bias", "t")
    return ("bias", "v", "a") if scoring.get("kind") == "transfm" else ("bias", "v")


def added_item_files(scoring: Mapping[str, Any]) -> tuple[str, ...]:
    """Every file an added item is scored from, beside the user side's: w0 and the item
    features' tables. A bundle written before added items lacks some of them."""
    return (table_file("w0"),
            *(item_table_file(f"feature_{name}") for name in feature_tables(scoring)))
