"""Open onnxruntime sessions over a bundle's graphs, from their shared prepacked copy if any.

Every graph of a bundle (model.onnx, two_phase.onnx) runs with the same options: explicit
intra-op threads, one inter-op thread, sequential execution. Where the caller names a cache
folder, a graph is loaded from its prepacked copy there (bundle/prepacked.py) so that the
processes serving it share the packed tables; a copy that cannot be read is logged and the
bundle's own file is loaded instead.
"""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort

from bundle.loaded import Bundle
from bundle.prepacked import cached_model, log


def session_options(threads: int, spinning: bool) -> ort.SessionOptions:
    """`threads` intra-op threads; `spinning=False` lets them sleep between calls instead of
    busy-waiting for the next (see OnnxScorer)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # warnings about unused initializers are not news
    return options


def open_graph(bundle: Bundle, graph: str, options: ort.SessionOptions,
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
