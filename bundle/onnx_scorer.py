"""Score through model.onnx with onnxruntime; the same answers as the numpy reference.

User states stay in numpy: a state is a gather of a few table rows and some sums (measured in
bench/export_serving.py at a few microseconds, below one onnxruntime call's overhead), and
the service caches it anyway. Split bundles rank the whole catalog inside the graph (scores,
exclusion mask and TopK in one call); whole-model bundles score candidate rows, so their
catalog is ranked in chunks of rows here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bundle import format as fmt
from bundle import two_phase
from bundle.loaded import Bundle
from bundle.prepacked import SHARE_FROM_BYTES, cached_model, item_table_bytes, log
from bundle.reference import (
    ReferenceScorer,
    chunked_catalog_scores,
    reference_scorer,
    top_n_of,
)
from bundle.two_phase import TWO_PHASE_FROM_ITEMS

WHOLE_CHUNK_ROWS = 4096  # (user, item) rows per call of a whole-model graph
SHORTLIST_MARGIN = 64  # the two-phase graph rescores K = 2 n + this many items


class OnnxScorer:
    """One onnxruntime session over a bundle's model.onnx, with explicit intra-op threads.

    `spinning=False` lets idle intra-op threads sleep instead of busy-waiting for the next
    call: a server whose calls are spread out between requests needs those cores for its
    own Python, Redis and the network (bench/serve.py: twice the requests/s on 2 cores).

    With `cache_dir`, a bundle of at least `share_from` bytes of item tables is loaded from
    its prepacked copy there (bundle/prepacked.py), so that processes serving it
    share the packed tables instead of each holding its own.
    """

    def __init__(self, bundle: Bundle, threads: int = 1, spinning: bool = True,
                 cache_dir: Path | None = None, share_from: int = SHARE_FROM_BYTES,
                 two_phase_from: int | None = TWO_PHASE_FROM_ITEMS,
                 observe: Callable[[str], None] | None = None):
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3  # warnings about unused initializers are not news
        shared = cache_dir is not None and item_table_bytes(bundle) >= share_from
        self.model_path, self.session = _loaded(bundle, fmt.ONNX_MODEL, options,
                                                cache_dir if shared else None)
        self.reference: ReferenceScorer = reference_scorer(bundle)
        self.whole = bundle.scoring["path"] == fmt.WHOLE
        self.n_items = len(bundle.catalog)
        self.scoring = bundle.scoring
        # with two_phase_from=None (or a bundle without the graph) the float32 path alone
        self.two_phase = _loaded(bundle, fmt.TWO_PHASE_MODEL, options,
                                 cache_dir if shared else None)[1] \
            if two_phase_from is not None and len(bundle.catalog) >= two_phase_from \
            and fmt.TWO_PHASE_MODEL in bundle.manifest["files"] else None
        # one-user calls by the path that answered; `observe` hears each (service metrics)
        self.outcomes, self.observe = {"certified": 0, "float32": 0}, observe
        self.shortlist_margin = SHORTLIST_MARGIN

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
        if self.two_phase is not None and len(state) == 1 and n > 0:
            # one user: the int8 first pass (a stacked call shares its float32 reads already)
            answer = self.two_phase_top_n(state, n, exclude)
            path = "float32" if answer is None else "certified"
            self.outcomes[path] += 1
            if self.observe is not None:
                self.observe(path)
            if answer is not None:
                return answer
        return self.float32_top_n(state, n, exclude)

    def shortlist(self, n: int) -> int:
        """K, the items the two-phase graph rescores in float32 for a top n."""
        return min(self.n_items, 2 * n + self.shortlist_margin)

    def two_phase_top_n(self, state: np.ndarray, n: int,
                        exclude: Sequence[np.ndarray] | None) -> tuple[np.ndarray,
                                                                       np.ndarray] | None:
        """One user's top n through two_phase.onnx (bundle/two_phase.py), or None where its
        certificate does not hold (the caller then runs the float32 graph)."""
        take = min(n, self.n_items)
        feed = two_phase.user_feed(self.scoring, state[0]) | {
            fmt.STATE: np.ascontiguousarray(state, np.float32),
            fmt.EXCLUDE: pad_rows(exclude, 1), fmt.TOP_N: np.array([take], np.int64),
            fmt.SHORTLIST: np.array([self.shortlist(take)], np.int64)}
        items, scores, certified = self.two_phase.run(
            [fmt.TOP_ITEMS, fmt.TOP_SCORES, fmt.CERTIFIED], feed)
        if not certified[0]:
            return None
        return _padded(items, scores, n)

    def float32_top_n(self, state: np.ndarray, n: int, exclude: Sequence[np.ndarray] | None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """The top n through model.onnx: every item scored in float32."""
        take = min(n, self.n_items)
        feed = {fmt.STATE: np.ascontiguousarray(state, np.float32),
                fmt.CANDIDATES: np.zeros((len(state), 1), np.int64),
                fmt.EXCLUDE: pad_rows(exclude, len(state)),
                fmt.TOP_N: np.array([take], np.int64)}
        items, scores = self.session.run([fmt.TOP_ITEMS, fmt.TOP_SCORES], feed)
        return _padded(items, scores, n)


def _padded(items: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-n outputs widened to n columns (-1 / -inf) where the catalog had fewer items."""
    short = n - items.shape[1]
    if short > 0:
        items = np.pad(items, ((0, 0), (0, short)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, short)), constant_values=-np.inf)
    return items, scores


def _loaded(bundle: Bundle, graph: str, options: ort.SessionOptions,
            cache_dir: Path | None) -> tuple[Path, ort.InferenceSession]:
    """A session over one of the bundle's graphs, from its prepacked copy in cache_dir where
    given and readable (else the bundle's own file), and the path it was loaded from."""
    own = bundle.path / graph
    path = cached_model(bundle, cache_dir, graph) if cache_dir is not None else own
    try:
        return path, _session(path, options)
    except Exception as err:  # onnxruntime's errors share no base class but Exception
        if path == own:
            raise
        log.warning("prepacked cache unreadable, loading %s", graph,
                    extra={"bundle": str(bundle.path), "problem": str(err)})
        return own, _session(own, options)


def _session(model: Path, options: ort.SessionOptions) -> ort.InferenceSession:
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def pad_rows(rows: Sequence[np.ndarray] | None, batch: int) -> np.ndarray:
    """Ragged per-user position lists as one (B, E) int64 array padded with -1 (E >= 1)."""
    rows = list(rows or [])
    width = max([1, *(len(r) for r in rows)])
    out = np.full((batch, width), -1, np.int64)
    for b, r in enumerate(rows):
        out[b, :len(r)] = r
    return out
