"""`python -m training fit|evaluate|export|bootstrap|events export`: the training command line.

docs/training.md says what each command does and writes; docs/configuration.md lists every
option. Every user error (bad data, bad option) ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from bundle import format as fmt
from events.export import ExportError, ExportSummary, export_events
from events.retention import BadRetention, parse_retention
from training.config import FitConfig, all_specs, models_taking, read_toml, resolve
from training.errors import ConfigError, GmlrecError
from training.loop.distributed import speaks_for_the_fit
from training.models import MODELS
from training.options import Spec, specs


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one line and exit status 2, with no usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m training", description="Train and evaluate gmlrec models.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    fit = commands.add_parser("fit", help="train a model and write a run folder")
    fit.add_argument("--config", type=Path, help="TOML file of options; flags override it")
    fit.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    fit.add_argument("--overwrite", action="store_true",
                     help="replace the finished run at --out (refused otherwise)")
    for spec in all_specs():
        _add_option(fit, spec)
    evaluate = commands.add_parser("evaluate", help="recompute a finished run's test metrics")
    evaluate.add_argument("--run", type=Path, required=True, help="run folder written by fit")
    evaluate.add_argument("--data", help="evaluate on this data spec instead of the run's")
    export = commands.add_parser("export", help="write a finished run as a servable bundle")
    export.add_argument("--run", type=Path, required=True, help="run folder written by fit")
    export.add_argument("--models-dir", type=Path, default=Path("models"),
                        help="where bundles go: MODELS_DIR/NAME/VERSION (default models)")
    export.add_argument("--name", help="bundle name (default: the model, e.g. gmlfm)")
    export.add_argument("--pair-form", choices=fmt.PAIR_FORMS,
                        help="GML-FM with its weight: the form of the pair term (default: the "
                        "cheaper for the user width; only rows has the two-phase graph)")
    boot = commands.add_parser("bootstrap", help="fit and export the default model unless a "
                               "bundle is already there")
    boot.add_argument("--models-dir", type=Path, default=Path("models"),
                      help="where bundles live (default models)")
    boot.add_argument("--runs-dir", type=Path, default=Path("runs"),
                      help="where the default model's run folder goes (default runs)")
    boot.add_argument("--force", action="store_true",
                      help="fit and export afresh even if a bundle exists (or GMLREC_RETRAIN=1)")
    boot.add_argument("--config", type=Path, help="TOML file of fit options to use instead of "
                      "the default model (or GMLREC_TRAIN_CONFIG); the bundle takes its name")
    boot.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    _add_retrain(commands)
    events = commands.add_parser("events", help="the service's event log")
    actions = events.add_subparsers(dest="action", required=True, parser_class=_Parser)
    export_log = actions.add_parser("export", help="write the event log, and the profiles and "
                                    "added items it names, as a dataset")
    export_log.add_argument("--from", dest="source", required=True, metavar="URL_OR_DIR",
                            help="redis://, rediss://, redis+cluster:// URL of the service's "
                            "store (its password from GMLREC_REDIS_PASSWORD_FILE), or the "
                            "file log's directory (GMLREC_EVENTS_DIR)")
    export_log.add_argument("--out", type=Path, required=True,
                            help="the dataset's folder (created; its files replaced)")
    export_log.add_argument("--prefix", help="the store's key prefix (default "
                            "GMLREC_REDIS_PREFIX, else gmlrec)")
    export_log.add_argument("--retain", help="trim the log after the export to this age or "
                            "count (default GMLREC_EVENTS_RETAIN; unset: keep everything)")
    export_log.add_argument("--quiet", action="store_true", help="no progress lines")
    return parser


def _add_retrain(commands: Any) -> None:
    """`retrain`: its own flags, then every fit option as an override of the bundle's."""
    retrain = commands.add_parser("retrain", help="fit on the recorded events and publish the "
                                  "candidate only if the gate passes it")
    retrain.add_argument("--from", dest="source", required=True,
                         help="the events: a Redis URL or events folder (exported first), or "
                         "a folder python -m training events export wrote")
    retrain.add_argument("--models-dir", type=Path, default=Path("models"),
                         help="the served bundles (default models)")
    retrain.add_argument("--name", help="the served bundle's name (default: the only one)")
    retrain.add_argument("--work-dir", type=Path, default=Path("runs/retrain"),
                         help="each cycle's events, run, candidate and verdict (default "
                         "runs/retrain)")
    retrain.add_argument("--negatives", type=int, default=100,
                         help="sampled negatives each judged case ranks against (default 100)")
    retrain.add_argument("--z", type=float, default=1.96, help="the gate refuses a candidate "
                         "worse by more than z standard errors (default 1.96)")
    retrain.add_argument("--min-cases", type=int, default=20,
                         help="fewer judged cases than this: refused (default 20)")
    retrain.add_argument("--keep-cycles", type=int, default=3,
                         help="cycle folders kept in --work-dir (default 3; 0: all)")
    retrain.add_argument("--keep-versions", type=int, default=3,
                         help="bundle versions kept after a publish (default 3; 0: all)")
    retrain.add_argument("--every", nargs="?", const="", metavar="DURATION",
                         help="cycle for ever, one every DURATION (90s, 30m, 6h, 1d; bare: "
                         "GMLREC_RETRAIN_EVERY, else 1d)")
    retrain.add_argument("--cycles", type=int, default=0,
                         help="with --every: stop after this many cycles (default 0: never)")
    retrain.add_argument("--quiet", action="store_true", help="no progress bar or epoch lines")
    for spec in all_specs():
        if spec.name != "out":
            _add_option(retrain, spec)


def _add_option(parser: argparse.ArgumentParser, spec: Spec) -> None:
    """One flag per option, its help from the declaration; values are checked by the option
    groups, so a TOML file and a flag meet the same checks and messages."""
    takers = models_taking(spec.name)
    only = f" [{', '.join(takers)}]" if takers and len(takers) < len(MODELS) else ""
    spec = replace(spec, help=spec.help.replace("%", "%%"))  # argparse formats help with %
    if spec.kind is bool:  # a switch that flips the default
        switch = f"--no-{spec.name}" if spec.default else spec.flag
        parser.add_argument(switch.replace("_", "-"), dest=spec.name, action="store_const",
                            const=not spec.default, default=None, help=spec.help + only)
        return
    default = f"{spec.default!r}" if spec.default == "" else spec.default
    by_model = {m: s.choices for m in takers for s in specs(MODELS[m].options)
                if s.name == spec.name}
    choices = f"; {' | '.join(spec.choices)}" if spec.choices else ""
    if len(set(by_model.values())) > 1:  # one flag, choices of its own per model
        choices = "".join(f"; {m}: {' | '.join(c)}" for m, c in by_model.items())
    parser.add_argument(spec.flag, dest=spec.name, default=None, metavar=spec.name.upper(),
                        help=f"{spec.help}{only} (default {default}{choices})")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        parser.print_usage(sys.stderr)
        return 2
    try:
        args = parser.parse_args(argv)
        if args.command == "fit":
            options = {k: v for k, v in vars(args).items()
                       if k not in ("command", "config", "quiet", "overwrite")}
            config = resolve(read_toml(args.config) if args.config else {}, options)
            metrics = run_fit(config, progress=not args.quiet, overwrite=args.overwrite)
        elif args.command == "export":
            print(run_export(args.run, args.models_dir, args.name, args.pair_form))
            return 0
        elif args.command == "retrain":
            return run_retrain(args)
        elif args.command == "bootstrap":
            print(run_bootstrap(args.models_dir, args.runs_dir, args.force, not args.quiet,
                                args.config))
            return 0
        elif args.command == "events":
            print(run_events_export(args.source, args.out, args.prefix, args.retain,
                                    not args.quiet))
            return 0
        else:
            metrics = run_evaluate(args.run, args.data)
    except (GmlrecError, ExportError, BadRetention) as err:
        if speaks_for_the_fit():
            print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    if speaks_for_the_fit():
        print(json.dumps(metrics.get("test", metrics), indent=2))
    return 0


def run_fit(config: FitConfig, progress: bool = True, overwrite: bool = False
            ) -> dict[str, Any]:
    from training.pipeline import fit_and_save

    return fit_and_save(config, progress, overwrite)


def run_export(run: Path, models_dir: Path, name: str | None,
               pair_form: str | None = None) -> Path:
    from training.export import export_run

    return export_run(run, models_dir, name, pair_form)


def run_bootstrap(models_dir: Path, runs_dir: Path, force: bool, progress: bool,
                  config: Path | None) -> Path:
    from training.bootstrap import bootstrap

    return bootstrap(models_dir, runs_dir, force, progress, config)


def run_evaluate(run: Path, data: str | None) -> dict[str, Any]:
    from training.pipeline import evaluate_run

    return evaluate_run(run, data)


RETRAIN_FLAGS = ("command", "source", "models_dir", "name", "work_dir", "negatives", "z",
                 "min_cases", "keep_cycles", "keep_versions", "every", "cycles", "quiet")


def run_retrain(args: argparse.Namespace) -> int:
    """One cycle (its record printed as JSON; exit 1 if its fit failed), or with --every a
    cycle every DURATION, none fatal."""
    from training.retrain.command import RetrainOptions, retrain
    from training.retrain.schedule import every_from_env, parse_every, run_every

    overrides = {k: v for k, v in vars(args).items()
                 if k not in RETRAIN_FLAGS and v is not None}
    for flag, value in (("--negatives", args.negatives), ("--min-cases", args.min_cases)):
        if value < 1:
            raise ConfigError(f"invalid value for {flag}: {value} (expects ≥ 1)")
    opts = RetrainOptions(args.source, args.models_dir, args.name, args.work_dir, overrides,
                          args.negatives, args.z, args.min_cases, max(args.keep_cycles, 0),
                          max(args.keep_versions, 0), not args.quiet)
    if args.every is None:
        record = retrain(opts)
        print(json.dumps(record, indent=2))
        return 1 if record["verdict"] == "failed" else 0
    seconds = parse_every(args.every or every_from_env())
    run_every(seconds, max(args.cycles, 0), lambda: retrain(opts))
    return 0
PROGRESS_EVERY = 100_000  # events read between progress lines


def run_events_export(source: str, out: Path, prefix: str | None, retain: str | None,
                      progress: bool) -> ExportSummary:
    """Export the event log at `source` into `out` (docs/training.md, Events)."""
    shown = [0]

    def report(read: int) -> None:
        if read - shown[0] >= PROGRESS_EVERY:
            shown[0] = read
            print(f"read {read} events", file=sys.stderr, flush=True)

    retention = None if retain is None else parse_retention(retain, "--retain")
    return export_events(source, out, prefix=prefix, retention=retention,
                         progress=report if progress else None)
