"""Benchmark fits in worker processes, each appended to a JSON-lines record as it ends, so a
killed run loses only the fits still in flight and the next start resumes from the file.

Records live in bench/records/ (committed: they are the results and the resume state); the run
folders of the fits go under runs/bench/<script>/ (not committed)."""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from bench.lib import training_api
from bench.lib.results import BENCH, write_section

RECORDS = BENCH / "records"


def fits_folder(script: str) -> Path:
    """Where a script's fits save their run folders, relative to the repository root."""
    return Path("runs", "bench", script)


def device_arg(name: str) -> str:
    """argparse type for --device: a bad name or a missing GPU stops the script at once, not
    in every worker it would start."""
    problem = training_api.device_problem(name)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return name


FitFunction = Callable[[dict, Path], dict]  # (options, run folder) -> its metrics.json


def train_one(key: str, options: dict, folder: Path, fit: FitFunction | None = None) -> dict:
    """One fit in a worker process (`fit`, by default the pipeline's on one torch thread), its
    run saved in `folder`; what the record keeps of it."""
    metrics = (fit or training_api.fit_in_worker)(options, folder / key.replace("|", "_"))
    keep = ("valid", "test", "epochs", "best_epoch", "epoch_seconds", "train_seconds")
    result = {"key": key, "options": options, **{k: metrics[k] for k in keep}}
    if metrics.get("graph"):  # GEM: which node fields the run used, and why
        result["graph"] = {k: metrics["graph"][k] for k in ("node_fields", "link_shares")}
    device = metrics["config"]["device"]
    if device != "cpu":
        result["device_name"] = training_api.device_name(device)
    return result


def load_records(path: Path) -> dict[str, dict]:
    """Finished fits by key; an absent file is none yet."""
    if not path.exists():
        return {}
    return {r["key"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def device_names(runs: Sequence[dict]) -> list[str]:
    """Where a set of fits ran: 'cpu' or the GPU's name, each once."""
    return sorted({r.get("device_name", "cpu") for r in runs})


def run_and_record(todo: Sequence[tuple[str, dict]], jobs: int, path: Path, folder: Path,
                   device: str = "cpu", fit: FitFunction | None = None) -> None:
    """Fit each (key, options) on `device` with `fit` (see train_one), appending each result
    the moment it ends; the run folders go in `folder`."""
    extra = {} if device == "cpu" else {"device": device}
    with ProcessPoolExecutor(jobs) as pool:
        futures = [pool.submit(train_one, key, {**options, **extra}, folder, fit)
                   for key, options in todo]
        for future in as_completed(futures):
            result = future.result()
            with path.open("a") as out:
                out.write(json.dumps(result) + "\n")
            print(result["key"], result["test"], flush=True)


def rerun_main(argv: Sequence[str] | None, doc: str, rerun: Callable[[str, int], None],
               name: str, section: Callable[[], str], jobs: int) -> None:
    """The command line of a script that fits what its record lacks, then writes its section
    `name` of RESULTS.md."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--device", type=device_arg, default="cpu",
                        help="cpu, cuda or cuda:N for every fit")
    parser.add_argument("--jobs", type=int, default=jobs, help="fits at once")
    parser.add_argument("--report", action="store_true", help="only rewrite the report")
    args = parser.parse_args(argv)
    if not args.report:
        rerun(args.device, args.jobs)
    write_section(name, section())


def paired_change(mine: Sequence[dict], base: Sequence[dict], metric: str) -> str:
    """Test `metric` of `mine` minus `base`, paired by seed (the same split and negatives):
    the mean ± std of the differences, one difference alone, or — with no seed in common."""
    by_seed = {r["options"]["seed"]: r["test"][metric] for r in base}
    diffs = [r["test"][metric] - by_seed[r["options"]["seed"]] for r in mine
             if r["options"]["seed"] in by_seed]
    if not diffs:
        return "—"
    if len(diffs) == 1:
        return f"{diffs[0]:+.4f}"
    return f"{statistics.mean(diffs):+.4f} ± {statistics.stdev(diffs):.4f}"
