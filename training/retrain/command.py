"""One retrain cycle: export the events, fit with the served bundle's own options, judge the
candidate and the served model alike, and publish the candidate only through the gate.

Each cycle has a folder of its own under the work folder, `<UTC time>/`: `events/` (the
export), `run/` (the fit), `candidate/` (its bundle, out of the service's sight) and
`verdict.json`. Nothing in the models folder changes until the gate says publish; then the
candidate's version folder is copied beside the served one under a hidden name and renamed
into place, one atomic step the service's watcher (polling GMLREC_MODELS_DIR) takes up as
any new version. A fit that fails, a candidate refused, or a crash anywhere before that
rename leave the served model as it was.

A cycle publishes nothing, and fits nothing, when no event is newer than those the served
bundle was fitted on (its manifest records them: data.events.last_at), or when the last
cycle already judged these same events against this same served version.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bundle import BundleError, find_bundle
from bundle.versions import VERSION_PATTERN
from training.config import resolve
from training.data.events import EventLog, is_export, read_events
from training.data.instances import Interactions
from training.errors import ConfigError
from training.retrain.gate import decide
from training.retrain.judge import newest_cases

log = logging.getLogger(__name__)
VERDICT = "verdict.json"
EVAL_SEED = 0  # the negatives' draw: fixed, so two cycles over the same events agree
NOT_OPTIONS = ("out",)  # recorded options a cycle sets itself


@dataclass(frozen=True)
class RetrainOptions:
    """What `python -m training retrain` was asked (docs/training.md, Retrain)."""

    source: str  # a Redis URL or an events folder for events.export, or an export folder
    models_dir: Path
    name: str | None  # the served bundle's name (None: the only one)
    work_dir: Path
    overrides: dict[str, Any] = field(default_factory=dict)  # fit options over the bundle's
    negatives: int = 100
    z: float = 1.96
    min_cases: int = 20
    keep_cycles: int = 3
    keep_versions: int = 3
    progress: bool = False


def retrain(opts: RetrainOptions) -> dict[str, Any]:
    """One cycle; returns its record (also written to the cycle's verdict.json and, once a
    candidate is fitted, to its run's metrics.json under "retrain")."""
    started = time.perf_counter()
    served_dir = _served(opts)
    served = json.loads((served_dir / "manifest.json").read_text())
    cycle = _new_cycle(opts.work_dir)
    record: dict[str, Any] = {"cycle": cycle.name, "served": {"version": served["version"]},
                              "published": None}
    try:
        events_dir = _export(opts.source, cycle / "events")
        events = read_events(events_dir)
        trained_through = served.get("data", {}).get("events", {}).get("last_at")
        new = _newer(events, trained_through)
        record |= {"events": events.summary(), "new_events": new}
        previous = _last_verdict(opts.work_dir, cycle)
        if new == 0 or (previous is not None and previous.get("served", {}).get("version")
                        == served["version"] and previous.get("events", {}).get("digest")
                        == events.digest and previous.get("verdict") in ("published",
                                                                         "refused")):
            why = "no event newer than the served model's" if new == 0 else \
                "the last cycle judged these events against this served version"
            return _finish(record, "nothing new", why, cycle, started)
        config = _config(served, opts, events_dir, cycle / "run")
        fit_started = time.perf_counter()
        try:
            from training.pipeline import fit_and_save

            fit_and_save(config, opts.progress, overwrite=False)
        except Exception as err:  # any failure of the fit: the served model stays
            log.exception("retrain: the fit failed")
            return _finish(record, "failed", f"fit failed: {type(err).__name__}: {err}",
                           cycle, started)
        record["fit_seconds"] = round(time.perf_counter() - fit_started, 1)
        from training.export import export_run

        candidate_dir = export_run(cycle / "run", cycle / "candidate", served["name"])
        record["candidate"] = {"version": candidate_dir.name}
        judge_started = time.perf_counter()
        verdict, numbers = _judge(config, events, trained_through, served_dir, candidate_dir,
                                  opts)
        record["judge_seconds"] = round(time.perf_counter() - judge_started, 1)
        record["served"] |= numbers["served"]
        record["candidate"] |= numbers["candidate"]
        record |= {"gate": {"z": opts.z, "min_cases": opts.min_cases,
                            "negatives": opts.negatives, "seed": EVAL_SEED},
                   "differences": verdict.differences}
        if verdict.publish:
            record["published"] = str(publish(candidate_dir, opts.models_dir / served["name"]))
            prune_versions(opts.models_dir / served["name"], opts.keep_versions)
        result = _finish(record, "published" if verdict.publish else "refused",
                         verdict.reason, cycle, started)
        _into_metrics(cycle / "run", result)
        return result
    finally:
        prune_cycles(opts.work_dir, opts.keep_cycles, cycle)


def _served(opts: RetrainOptions) -> Path:
    try:
        return find_bundle(opts.models_dir, opts.name)
    except (BundleError, OSError) as err:
        raise ConfigError(f"--models-dir {opts.models_dir}: no served bundle to retrain "
                          f"({err}); run python -m training bootstrap first") from None


def _new_cycle(work_dir: Path) -> Path:
    work_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    cycle = work_dir / stamp
    cycle.mkdir()
    return cycle


def _export(source: str, out: Path) -> Path:
    """An export folder of the source's events: the source itself when it is one already,
    else what the events package's export writes (a Redis URL or a service's events folder)."""
    if Path(source).is_dir() and is_export(Path(source)):
        return Path(source)
    try:
        export = importlib.import_module("events.export")
    except ImportError:
        raise ConfigError(f"--from {source}: not an export folder, and the events package "
                          "(python -m training events export) is not installed") from None
    try:
        export.export_events(source, out)
    except export.ExportError as err:
        raise ConfigError(f"--from {source}: {err}") from None
    return out


def _newer(events: EventLog, trained_through: float | None) -> int:
    """Events after the served model's last one, at whole seconds (the fit's unit)."""
    if trained_through is None:
        return len(events.at)
    return int((events.at // 1 > trained_through // 1).sum())


def _last_verdict(work_dir: Path, current: Path) -> dict[str, Any] | None:
    for cycle in sorted(cycles(work_dir), reverse=True):
        if cycle != current and (cycle / VERDICT).is_file():
            with contextlib.suppress(OSError, ValueError):
                return json.loads((cycle / VERDICT).read_text())
    return None


def _config(served: dict[str, Any], opts: RetrainOptions, events_dir: Path, out: Path) -> Any:
    """The served bundle's recorded fit options, with this cycle's events and folder, then the
    command's overrides."""
    recorded = dict(served.get("model", {}).get("options") or {})
    if not recorded:
        raise ConfigError(f"bundle {served.get('name')}/{served.get('version')} records no fit "
                          "options (model.options); fit and export it with this version")
    options = {k: v for k, v in recorded.items() if k not in NOT_OPTIONS}
    if options.get("embedding") == "plain":
        options.pop("embedding")
    options |= {"events": str(events_dir), "out": str(out)}
    return resolve({}, {**options, **opts.overrides})


def _judge(config: Any, events: EventLog, trained_through: float | None, served_dir: Path,
           candidate_dir: Path, opts: RetrainOptions) -> tuple[Any, dict[str, Any]]:
    from training.pipeline import base_data
    from training.retrain.judge import judge

    data = base_data(config.run)
    if not isinstance(data, Interactions):
        raise ConfigError("retrain needs interaction data")
    cases = newest_cases(data, events, trained_through, opts.negatives, EVAL_SEED)
    served = judge(served_dir, cases)
    candidate = judge(candidate_dir, cases)
    verdict = decide(candidate, served, opts.z, opts.min_cases)
    return verdict, {"served": served.summary(), "candidate": candidate.summary()}


def publish(candidate: Path, home: Path) -> Path:
    """Copy a version folder in beside the served ones under a hidden name, then rename it
    into place: the watcher sees no version, or the whole one."""
    target = home / candidate.name
    if target.exists():
        return target
    staging = home / f".publish-{candidate.name}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        shutil.copytree(candidate, staging)
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def prune_versions(home: Path, keep: int) -> None:
    """Remove all but the newest `keep` versions (0: keep all). A worker still on an older
    one keeps its mapped files until it reloads (a removed file lives while mapped)."""
    if keep <= 0:
        return
    versions = sorted(p for p in home.iterdir() if p.is_dir() and
                      VERSION_PATTERN.fullmatch(p.name))
    for old in versions[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def cycles(work_dir: Path) -> list[Path]:
    return sorted(p for p in work_dir.iterdir() if p.is_dir() and p.name[:8].isdigit()) \
        if work_dir.is_dir() else []


def prune_cycles(work_dir: Path, keep: int, current: Path) -> None:
    """Remove all but the newest `keep` cycle folders (0: keep all), never the current one."""
    if keep <= 0:
        return
    for old in cycles(work_dir)[:-keep]:
        if old != current:
            shutil.rmtree(old, ignore_errors=True)


def _finish(record: dict[str, Any], verdict: str, reason: str, cycle: Path,
            started: float) -> dict[str, Any]:
    record |= {"verdict": verdict, "reason": reason,
               "seconds": round(time.perf_counter() - started, 1)}
    tmp = cycle / f".{VERDICT}.part"
    tmp.write_text(json.dumps(record, indent=1) + "\n")
    os.replace(tmp, cycle / VERDICT)
    return record


def _into_metrics(run: Path, record: dict[str, Any]) -> None:
    """The verdict, with both models' numbers, into the candidate run's metrics.json."""
    path = run / "metrics.json"
    metrics = json.loads(path.read_text())
    metrics["retrain"] = record
    tmp = path.with_name(".metrics.json.part")
    tmp.write_text(json.dumps(metrics, indent=2) + "\n")
    os.replace(tmp, path)
