"""`python -m training fit|evaluate|export`: the contract of CONTRACT.md.

Every user error (bad data, bad option) ends as one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from training.config import FitConfig, read_toml, resolve
from training.errors import ConfigError, GmlrecError

_HELP = {
    "data": "movielens-100k | movielens-1m:PATH | libfm:PATH | synthetic:k=v,...",
    "task": "topn (leave-one-out ranking) or rating (±1 regression)",
    "model": "fm, gmlfm, nfm, transfm, deepfm, xdeepfm or afm",
    "out": "run folder for metrics.json, weights, config and plots",
    "group_size": "libFM top-n: lines per test group, the positive first",
    "dim": "embedding size k", "dropout": "dropout rate", "init_std": "std of N(0, s) init",
    "loss": "squared (pointwise on ±1 labels) or bpr (pairwise, top-n)",
    "resample_negatives": "draw fresh training negatives every epoch",
    "lr": "Adam learning rate", "batch_size": "mini-batch size",
    "l2": "L2 weight decay", "epochs": "maximum epochs", "seed": "seed of split and training",
    "patience": "epochs without validation improvement before stopping",
    "distance": "GML-FM metric: euclidean, mahalanobis, dnn, manhattan, chebyshev, cosine",
    "layers": "GML-FM DNN transform depth (0 = Euclidean)",
    "weight": "drop GML-FM's transformation weight h",
    "embedding": "plain (lookup) or gcn (GEM: graph-convolved embeddings)",
    "graph": "GEM graph: a (every co-occurring pair) or b (user-item edges only)",
    "graph_fields": "GEM node fields, comma-separated (default: fields with >= 3 values)",
    "gcn_layers": "GEM GCN layers", "gcn_dropout": "dropout on the GCN output",
    "sampling": "GEM neighbour-sampling ratio: share of neighbour edges used (0-1)",
    "gcn_activation": "GEM activation: none, tanh or relu",
    "form": "exact GML-FM form: auto (cheapest for the width), pairwise, gram, additive",
    "transform_init": "GML-FM transform start: identity (Euclidean) or paper (N(0, init-std))",
    "device": "where to train and evaluate: cpu, cuda or cuda:N (results come back to the CPU)",
}


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
    for name, default in FitConfig().to_dict().items():
        flag = "--" + name.replace("_", "-")
        if isinstance(default, bool):  # a switch that flips the default
            switch = f"--no-{name}" if default else flag
            fit.add_argument(switch.replace("_", "-"), dest=name, action="store_const",
                             const=not default, default=None, help=_HELP[name])
            continue
        fit.add_argument(flag, dest=name, type=type(default), default=None,
                         help=f"{_HELP[name]} (default {default})")
    evaluate = commands.add_parser("evaluate", help="recompute a finished run's test metrics")
    evaluate.add_argument("--run", type=Path, required=True, help="run folder written by fit")
    evaluate.add_argument("--data", help="evaluate on this data spec instead of the run's")
    export = commands.add_parser("export", help="write a finished run as a servable bundle")
    export.add_argument("--run", type=Path, required=True, help="run folder written by fit")
    export.add_argument("--models-dir", type=Path, default=Path("models"),
                        help="where bundles go: MODELS_DIR/NAME/VERSION (default models)")
    export.add_argument("--name", help="bundle name (default: the model, e.g. gmlfm)")
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "fit":
            options = {k: v for k, v in vars(args).items() if k not in ("command", "config",
                                                                       "quiet")}
            config = resolve(read_toml(args.config) if args.config else {}, options)
            metrics = run_fit(config, progress=not args.quiet)
        elif args.command == "export":
            print(run_export(args.run, args.models_dir, args.name))
            return 0
        else:
            metrics = run_evaluate(args.run, args.data)
    except GmlrecError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(json.dumps(metrics.get("test", metrics), indent=2))
    return 0


def run_fit(config: FitConfig, progress: bool = True) -> dict[str, Any]:
    from training.pipeline import fit_and_save

    return fit_and_save(config, progress)


def run_export(run: Path, models_dir: Path, name: str | None) -> Path:
    from training.export import export_run

    return export_run(run, models_dir, name)


def run_evaluate(run: Path, data: str | None) -> dict[str, Any]:
    from training.pipeline import evaluate_run

    return evaluate_run(run, data)
