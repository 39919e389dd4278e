"""model.onnx with its prepacked weights on disk, so that workers map them instead of copying.

onnxruntime maps a bundle's npy files (model.onnx's external data) without copying them, but
at session start each Gemm over a constant item table repacks that table into its own heap
buffer: every worker then holds a private copy of the largest tables (bench/scale_out.py: at
1,000,000 items and k = 64, 490 MB a worker). Turning prepacking off keeps the tables shared
but made the 1M-item top 10 1.7× as slow on one thread (110 ms against 67 ms: each call packs
its operand anew). Instead, the first process to load a bundle lets onnxruntime save its
optimized graph with the packed weights in an external file
(`session.save_external_prepacked_constant_initializers`), and every session then loads that
file, which onnxruntime maps read-only: the packed tables sit once in the page cache, shared by
all workers, and calls run at the packed speed. Its cost: the file holds the graph's tables
as well as their packed copies (1 GB for a 548 MB 1M-item bundle), and other versions' entries
of the same model are deleted when a new one is built.

The cache is keyed by model name, bundle version (its content hash), onnxruntime version and
machine; a file lock makes concurrent workers build it once. It is derived data: a process
that cannot build or read it scores from model.onnx as before (logged), and the service's
self-check still compares every loaded session with the numpy reference.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnxruntime as ort

from bundle.reader import Bundle

log = logging.getLogger("bundle")

# below this many bytes of item tables a private copy per worker costs less than the cache's
# files (a 100,000-item k = 64 bundle holds 55 MB)
SHARE_FROM_BYTES = 32 << 20
MODEL, WEIGHTS = "model.onnx", "weights.bin"


def item_table_bytes(bundle: Bundle) -> int:
    return sum(a.nbytes for name, a in bundle.arrays.items() if name.startswith("items/"))


def cached_model(bundle: Bundle, cache_dir: Path) -> Path:
    """The path of the bundle's prepacked model under cache_dir, built now if missing;
    model.onnx itself where the cache cannot be built."""
    home = Path(cache_dir) / bundle.name
    entry = home / f"{bundle.version}-ort{ort.__version__}-{platform.machine()}"
    try:
        home.mkdir(parents=True, exist_ok=True)
        with _locked(home / ".lock"):
            if not (entry / MODEL).is_file():
                _build(bundle, home, entry)
    except Exception as err:  # OSError, or onnxruntime's errors (no base class but Exception)
        log.warning("prepacked cache not built, each worker packs its own copy",
                    extra={"bundle": str(bundle.path), "problem": str(err)})
        return bundle.onnx_path
    return entry / MODEL


def _build(bundle: Bundle, home: Path, entry: Path) -> None:
    """Save the optimized graph and its packed weights into a fresh folder, rename it into
    place, and drop the entries of other versions (a mapped file outlives its deletion)."""
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=home))
    try:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        options.optimized_model_filepath = str(tmp / MODEL)
        for key, value in (("session.optimized_model_external_initializers_file_name", WEIGHTS),
                           ("session.optimized_model_external_initializers_min_size_in_bytes",
                            "1024"),
                           ("session.save_external_prepacked_constant_initializers", "1")):
            options.add_session_config_entry(key, value)
        ort.InferenceSession(str(bundle.onnx_path), options, providers=["CPUExecutionProvider"])
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for other in home.iterdir():
        if other.is_dir() and other != entry:
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
