"""model.onnx (and two_phase.onnx) with its prepacked weights on disk, so that workers map them
instead of copying.

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

Nothing in it is trusted for where it lies. The cache folder must be a real folder owned by
this process' user and closed to everyone else (mode 0700; it is made so, and refused if it
is not: another user could have planted it). Each entry records the bundle's own checksum of
the model.onnx it was built from and the checksums of the files it wrote; before use both are
checked, and an entry that fails (planted, tampered, or built from another bundle) is deleted
and built again. The check reads the entry once per process (about 1.5 s a GB).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import platform
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnxruntime as ort

from bundle.loaded import Bundle
from bundle.reader import sha256_of

log = logging.getLogger("bundle")

# below this many bytes of item tables a private copy per worker costs less than the cache's
# files (a 100,000-item k = 64 bundle holds 55 MB)
SHARE_FROM_BYTES = 32 << 20
MODEL, WEIGHTS, RECORD = "model.onnx", "weights.bin", "record.json"
# onnxruntime 1.22 to 1.31 build the prepacked graph but crash (SIGSEGV) running it on this
# project's exported graphs (found by CI's floors pass, 2026-12-03: 1.22.0/1.22.1/1.23.2/
# 1.24.4/1.27.0/1.30.0/1.31.1 crash, 1.32.0 answers); below this, every worker packs its own
PREPACKED_FROM = (1, 32)


def prepacking_works() -> bool:
    """Whether this onnxruntime runs a prepacked graph (PREPACKED_FROM)."""
    return tuple(int(p) for p in ort.__version__.split(".")[:2]) >= PREPACKED_FROM


class UntrustedCache(OSError):
    """The cache folder is not this user's alone."""


def item_table_bytes(bundle: Bundle) -> int:
    return sum(a.nbytes for name, a in bundle.arrays.items() if name.startswith("items/"))


def cached_model(bundle: Bundle, cache_dir: Path, graph: str = MODEL) -> Path:
    """The path of the bundle's prepacked `graph` (model.onnx, two_phase.onnx) under
    cache_dir, built now if missing; the bundle's own graph where the cache cannot be
    built."""
    source = bundle.path / graph
    if not prepacking_works():
        log.warning("prepacked cache off: onnxruntime %s crashes running a prepacked graph "
                    "(1.32 or later shares it); each worker packs its own copy",
                    ort.__version__, extra={"bundle": str(bundle.path)})
        return source
    home = Path(cache_dir) / bundle.name
    entry = home / (f"{bundle.version}-{Path(graph).stem}-ort{ort.__version__}-"
                    f"{platform.machine()}")
    try:
        private_folder(Path(cache_dir))
        home.mkdir(mode=0o700, exist_ok=True)
        with _locked(home / ".lock"):
            if (entry / MODEL).is_file() and not _trusted(bundle, entry, graph):
                log.warning("prepacked cache entry refused (planted, tampered or stale): "
                            "building it again", extra={"entry": str(entry)})
                shutil.rmtree(entry)
            if not (entry / MODEL).is_file():
                _build(bundle, graph, home, entry)
    except Exception as err:  # OSError, or onnxruntime's errors (no base class but Exception)
        log.warning("prepacked cache not built, each worker packs its own copy",
                    extra={"bundle": str(bundle.path), "problem": str(err)})
        return source
    return entry / MODEL


def _build(bundle: Bundle, graph: str, home: Path, entry: Path) -> None:
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
        ort.InferenceSession(str(bundle.path / graph), options,
                             providers=["CPUExecutionProvider"])
        record = {"model_onnx_sha256": _bundle_graph_sha256(bundle, graph),
                  "files": {f.name: sha256_of(f) for f in sorted(tmp.iterdir())}}
        (tmp / RECORD).write_text(json.dumps(record, indent=1))
        os.rename(tmp, entry)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for other in home.iterdir():  # this version's other graph stays
        if other.is_dir() and not other.name.startswith(f"{bundle.version}-"):
            shutil.rmtree(other, ignore_errors=True)


def private_folder(folder: Path) -> None:
    """Make `folder` (mode 0700) if missing; raise UntrustedCache unless it is a real folder
    of this user's that no one else may enter."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(folder)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() \
            or info.st_mode & 0o077:
        raise UntrustedCache(f"{folder} is not a folder of this user's closed to others "
                             f"(owner uid {info.st_uid}, mode {stat.S_IMODE(info.st_mode):o})")


def _trusted(bundle: Bundle, entry: Path, graph: str) -> bool:
    """Whether an entry was built from this bundle's `graph` and holds exactly the files it
    wrote."""
    try:
        record = json.loads((entry / RECORD).read_text())
        files = {f.name for f in entry.iterdir()} - {RECORD}
        return record["model_onnx_sha256"] == _bundle_graph_sha256(bundle, graph) \
            and files == set(record["files"]) \
            and all(sha256_of(entry / name) == digest for name, digest in record["files"].items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _bundle_graph_sha256(bundle: Bundle, graph: str) -> str:
    return bundle.manifest["files"][graph]["sha256"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
