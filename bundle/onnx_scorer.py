"""Score through model.onnx with onnxruntime; the same answers as the numpy reference.

User states stay in numpy: a state is a gather of a few table rows and some sums (measured in
bench/export_serving.py at a few microseconds, below one onnxruntime call's overhead), and
the service caches it anyway. Split bundles rank the whole catalog inside the graph (scores,
exclusion mask and TopK in one call); whole-model bundles score candidate rows, so their
catalog is ranked in chunks of rows here. A lone user over a large catalog is ranked through
two_phase.onnx first where the bundle has it (bundle/two_phase_ranker.py), and, where its
blocks pay (bundle/path_picker.py), through the block search before either
(bundle/block_ranker.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from bundle import format as fmt
from bundle import path_picker
from bundle.block_ranker import BlockRanker
from bundle.graph_io import pad_rows, padded
from bundle.loaded import Bundle
from bundle.prepacked import SHARE_FROM_BYTES, item_table_bytes
from bundle.ranking import chunked_catalog_scores, top_n_of
from bundle.reference import ReferenceScorer, reference_scorer
from bundle.sessions import open_graph, session_options
from bundle.two_phase import TWO_PHASE_FROM_ITEMS
from bundle.two_phase_ranker import TwoPhaseRanker

WHOLE_CHUNK_ROWS = 4096  # (user, item) rows per call of a whole-model graph


class OnnxScorer:
    """One onnxruntime session over a bundle's model.onnx, with explicit intra-op threads.

    `spinning=False` lets idle intra-op threads sleep instead of busy-waiting for the next
    call: a server whose calls are spread out between requests needs those cores for its
    own Python, Redis and the network (bench/serve.py: twice the requests/s on 2 cores).

    With `cache_dir`, a bundle of at least `share_from` bytes of item tables is loaded from
    its prepacked copy there (bundle/prepacked.py), so that processes serving it
    share the packed tables instead of each holding its own.

    Catalogs of at least `two_phase_from` items rank a lone user through `two_phase`, the
    bundle's two_phase.onnx, where it has one; None keeps the float32 path alone.

    `prune` says when a lone user is ranked by the block search (the bundle's blocks.onnx):
    "off" never, "on" for every top n, "auto" for the shapes where measuring it on a few
    known users at load found that it pays (bundle/path_picker.py). `paths` says which path
    each shape takes.
    """

    def __init__(self, bundle: Bundle, threads: int = 1, spinning: bool = True,
                 cache_dir: Path | None = None, share_from: int = SHARE_FROM_BYTES,
                 two_phase_from: int | None = TWO_PHASE_FROM_ITEMS,
                 observe: Callable[[str], None] | None = None, prune: str = "off"):
        options = session_options(threads, spinning)
        shared = cache_dir if cache_dir is not None \
            and item_table_bytes(bundle) >= share_from else None
        self.model_path, self.session = open_graph(bundle, fmt.ONNX_MODEL, options, shared)
        self.reference: ReferenceScorer = reference_scorer(bundle)
        self.whole = bundle.scoring["path"] == fmt.WHOLE
        self.n_items = len(bundle.catalog)
        self.two_phase = TwoPhaseRanker(
            open_graph(bundle, fmt.TWO_PHASE_MODEL, options, shared)[1], bundle.scoring,
            self.n_items) if two_phase_from is not None and self.n_items >= two_phase_from \
            and fmt.TWO_PHASE_MODEL in bundle.manifest["files"] else None
        # one-user calls by the path that answered; `observe` hears each (service metrics)
        self.outcomes = {"certified": 0, "float32": 0, "pruned": 0, "pruned_fallback": 0}
        self.observe: Callable[[str], None] | None = None  # the picker's probes are not calls
        # one thread: a round scores a few thousand items, too little to split across
        # threads, whose hand-offs cost more than they save (bench.prune)
        self.blocks = BlockRanker(open_graph(bundle, fmt.BLOCKS_MODEL,
                                             session_options(1, spinning), None)[1],
                                  bundle.scoring, bundle.arrays, self.n_items) \
            if prune != "off" and fmt.block_file("slab_const") in bundle.manifest["files"] \
            else None  # blocks, and slabs to read them by (bundles from before: full pass)
        self.pruned_shapes = self._pick(bundle, prune)
        full = path_picker.TWO_PHASE if self.two_phase is not None else path_picker.FLOAT32
        self.paths = {shape: path_picker.PRUNED if self.pruned_shapes.get(shape) else full
                      for shape in (*(f"n<={n}" for n in path_picker.SHAPES),
                                    path_picker.LARGER)}
        self.outcomes = dict.fromkeys(self.outcomes, 0)
        self.observe = observe

    @property
    def state_size(self) -> int:
        return self.reference.state_size

    def user_state(self, idx: np.ndarray, val: np.ndarray) -> np.ndarray:
        """User-side rows (B, W_u) -> states (B, D) float32 (numpy: see the module doc)."""
        return self.reference.user_state(idx, val)

    def score(self, state: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        """States (B, D), catalog positions (B, C) -> scores (B, C)."""
        feed = {fmt.STATE: np.ascontiguousarray(state, np.float32),
                fmt.CANDIDATES: np.ascontiguousarray(candidates, np.int64)}
        if not self.whole:
            feed |= {fmt.EXCLUDE: np.full((len(state), 1), -1, np.int64),
                     fmt.TOP_N: np.ones(1, np.int64)}
        return self.session.run([fmt.SCORES], feed)[0]

    def top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """The n best catalog positions per user, best first, leaving out `exclude[b]`;
        -1 / -inf where fewer than n remain."""
        if self.whole:
            scores = chunked_catalog_scores(self.score, state, self.n_items, WHOLE_CHUNK_ROWS)
            return top_n_of(scores, n, exclude)
        if self.blocks is not None and len(state) == 1 and n > 0 \
                and self.pruned_shapes.get(path_picker.shape_of(n)):
            answer = self.blocks.top_n(state, n, exclude)
            self._count("pruned" if answer is not None else "pruned_fallback")
            if answer is not None:
                return answer
        return self.full_top_n(state, n, exclude)

    def full_top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None
                   ) -> tuple[np.ndarray, np.ndarray]:
        """The top n by a pass over every item: two_phase.onnx for a lone user where the
        bundle has it and it certifies, model.onnx otherwise."""
        if self.two_phase is not None and len(state) == 1 and n > 0:
            # one user: the int8 first pass (a stacked call shares its float32 reads already)
            answer = self.two_phase.top_n(state, n, exclude)
            self._count("float32" if answer is None else "certified")
            if answer is not None:
                return answer
        return self.float32_top_n(state, n, exclude)

    def _count(self, path: str) -> None:
        self.outcomes[path] += 1
        if self.observe is not None:
            self.observe(path)

    def _pick(self, bundle: Bundle, prune: str) -> dict[str, bool]:
        """Per shape, whether the block search ranks it (see the class doc)."""
        ranker = self.blocks
        if ranker is None:
            return {}
        if prune == "on":
            return {f"n<={n}": True for n in path_picker.SHAPES} | {path_picker.LARGER: True}
        users = len(bundle.users)
        if not users:
            return {}
        chosen = np.unique(np.linspace(0, users - 1, path_picker.PROBES).astype(np.int64))
        rows = [bundle.users.row(int(u)) for u in chosen]
        states = self.user_state(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
        return path_picker.measure(states, lambda s, n: ranker.top_n(s, n, None),
                                   lambda s, n: self.full_top_n(s, n, None))

    def float32_top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The top n through model.onnx: every item scored in float32."""
        take = min(n, self.n_items)
        feed = {fmt.STATE: np.ascontiguousarray(state, np.float32),
                fmt.CANDIDATES: np.zeros((len(state), 1), np.int64),
                fmt.EXCLUDE: pad_rows(exclude, len(state)),
                fmt.TOP_N: np.array([take], np.int64)}
        items, scores = self.session.run([fmt.TOP_ITEMS, fmt.TOP_SCORES], feed)
        return padded(items, scores, n)
