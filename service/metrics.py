"""Prometheus metrics, correct with several uvicorn workers.

`python -m service` points PROMETHEUS_MULTIPROC_DIR at a fresh folder before any worker
starts; prometheus-client then keeps every value in a per-process file there and /metrics
adds them up across workers (the model gauge keeps one series per live worker, labelled
by pid, because during a reload two workers can serve different versions). Without that
variable (tests, `uvicorn service.app:app`) the ordinary in-process registry answers.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (.001, .0025, .005, .0075, .01, .015, .02, .03, .05, .075, .1, .25, .5, 1, 2.5)

REQUEST_SECONDS = Histogram("gmlrec_http_request_duration_seconds",
                            "Time from request to the last byte of the answer, by route.",
                            ["method", "route"], buckets=LATENCY_BUCKETS)
REQUESTS = Counter("gmlrec_http_requests_total", "Answers by route and status code.",
                   ["method", "route", "status"])
STATE_CACHE = Counter("gmlrec_state_cache_total",
                      "User states: hit (read from the store), miss (computed and written), "
                      "bypass (request-specific features or a store outage: computed only).",
                      ["result"])
HISTORY_WRITES = Counter("gmlrec_history_writes_total",
                         "Interaction writes to a history model's user: moved (its state moved "
                         "incrementally), rebuilt (no usable state: built from the history), "
                         "raced (another writer kept winning: the history only, the next read "
                         "builds the state).", ["result"])
STORE_ERRORS = Counter("gmlrec_store_errors_total",
                       "Store calls that failed (timeout, refused, error reply).")
STORE_FALLBACKS = Counter("gmlrec_store_fallbacks_total",
                          "Requests answered without the store, from the bundle alone.")
SCORING_SECONDS = Histogram("gmlrec_scoring_seconds",
                            "Time in the model per call: score (given items) or top_n "
                            "(the whole catalog).", ["op"], buckets=LATENCY_BUCKETS)
TWO_PHASE = Counter("gmlrec_two_phase_total",
                    "One-user top n calls over a bundle's two_phase.onnx, by the path that "
                    "answered: certified (the int8 first pass, provably the float32 answer) or "
                    "float32 (no certificate: model.onnx answered).", ["path"])
PRUNED = Counter("gmlrec_pruned_total",
                 "One-user top n calls given to the block search (bundle/block_ranker.py), by "
                 "how they ended: answered (exact, having read part of the catalog) or "
                 "fell_back (it gave up; the full pass answered).", ["result"])
RANKING_PATH = Gauge("gmlrec_ranking_path",
                     "1 for the path a lone user's top n of each shape takes in the served "
                     "bundle: pruned (block search), two_phase or float32 (a full pass).",
                     ["shape", "path"], multiprocess_mode="livemax")
MODEL_INFO = Gauge("gmlrec_model_info", "1 for the model version a worker serves.",
                   ["name", "version"], multiprocess_mode="liveall")
CATALOG_VERSION = Gauge("gmlrec_catalog_version",
                        "The catalog overlay version served, the lowest among live workers "
                        "(each worker follows the store's change log).",
                        multiprocess_mode="livemin")
CATALOG_ITEMS = Gauge("gmlrec_catalog_overlay_items",
                      "Ids in the catalog overlay served: added (retired ones included, "
                      "PUT records of bundle ids too) and retired.", ["kind"],
                      multiprocess_mode="livemax")
CATALOG_READS = Counter("gmlrec_catalog_reads_total",
                        "Reads of the catalog overlay that changed it: changes (the log's "
                        "newest entries) or whole (at start, or behind the log).", ["kind"])
MODEL_RELOADS = Counter("gmlrec_model_reloads_total",
                        "Bundle versions loaded or refused after startup.", ["result"])

# the online experiment, by variant (GMLREC_VARIANTS: at most 8 names, so the labels are bounded)
VARIANT_ANSWERS = Counter("gmlrec_variant_answers_total",
                          "/recommend answers served, by the variant that made them.",
                          ["variant"])
VARIANT_IMPRESSIONS = Counter("gmlrec_variant_impressions_total",
                              "Answers reported shown (the first impression of each).",
                              ["variant"])
VARIANT_ATTRIBUTED = Counter("gmlrec_variant_attributed_total",
                             "Interacted items credited to an answer of the variant.",
                             ["variant"])
VARIANT_HITS = Counter("gmlrec_variant_hits_total",
                       "Answers both impressed and credited with an interaction (once each).",
                       ["variant"])
VARIANT_SECONDS = Histogram("gmlrec_variant_ranking_seconds",
                            "Time to rank one /recommend request (user state and top n), by "
                            "variant: the served variant's on the request, a shadow's beside "
                            "it.", ["variant"], buckets=LATENCY_BUCKETS)
SHADOW_OVERLAP = Histogram("gmlrec_shadow_overlap",
                           "A shadow variant's overlap@n with the served answer: the share of "
                           "the served items its own top n holds.", ["variant"],
                           buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.99, 1.0))
SHADOW_SKIPPED = Counter("gmlrec_shadow_skipped_total",
                         "Shadow rankings not done: busy (too many pending in this worker) or "
                         "failed.", ["variant", "reason"])
EXPERIMENT_WRITES_LOST = Counter("gmlrec_experiment_writes_lost_total",
                                 "Answers or interactions the experiment could not record (the "
                                 "store was down); the request itself was served.", ["what"])


def ranked(path: str) -> None:
    """Count a one-user top n by the path that answered (OnnxScorer's `observe`)."""
    if path in ("pruned", "pruned_fallback"):
        PRUNED.labels("answered" if path == "pruned" else "fell_back").inc()
    else:
        TWO_PHASE.labels(path).inc()


def ranking_paths(paths: dict[str, str]) -> None:
    """Set gmlrec_ranking_path: 1 for each shape's path, 0 for the others (bounded labels:
    three shapes, three paths)."""
    for shape, chosen in paths.items():
        for path in ("pruned", "two_phase", "float32"):
            RANKING_PATH.labels(shape, path).set(1 if path == chosen else 0)


def model_served(name: str, version: str, previous: tuple[str, str] | None) -> None:
    if previous is not None:
        MODEL_INFO.labels(*previous).set(0)
    MODEL_INFO.labels(name, version).set(1)


def exposition() -> tuple[bytes, str]:
    """The text /metrics answers, summed over workers when there are several."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def forget_dead_workers() -> None:
    """Drop the live gauges of workers that have exited (uvicorn restarts a dead worker
    without telling anyone; each new worker sweeps up after its predecessors)."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if not _alive(pid):
            multiprocess.mark_process_dead(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
