"""Replay a run's top-n test protocol through an exported bundle instead of the torch model.

Each test group (the held-out positive and its sampled candidates) is scored by the bundle's
scorer from the user's stored feature row, and ranked exactly as the trainer's evaluation
ranks it; equal metrics say the bundle serves the model that was measured. With a history
field the stored row's window is the user's latest (the test item in it); the test positive
was scored with its window before it, so that window replaces the stored one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bundle import Bundle, OnnxScorer, load_bundle
from bundle.history import HistoryField
from training.data.instances import Interactions, RankingGroups
from training.errors import ConfigError
from training.loop.metrics import ranking_report
from training.runs import load_run

GROUPS_PER_CALL = 64


@dataclass(frozen=True)
class HeldOut:
    """A run's top-n test groups by raw id: what any scorer of them (the bundle here, the
    HTTP API in tests/support/replay.py) needs."""

    user_ids: list[str]  # one per group
    item_ids: list[list[str]]  # each group's candidates, the held-out positive first
    windows: list[list[str]] | None = None  # with --history: each group's window, oldest first


def held_out_groups(run: Path) -> HeldOut:
    from training.pipeline import prepare

    data, split = prepare(load_run(run)[0])
    if not isinstance(data, Interactions) or not isinstance(split.test, RankingGroups):
        raise ConfigError(f"{run}: replay needs a top-n run on interaction data")
    groups = split.test
    users = groups.instances.rows[0].reshape(groups.n_groups, -1)[:, 0]
    items = groups.instances.rows[1].reshape(groups.n_groups, -1)
    windows = None
    if data.history is not None:  # the window block comes last (Interactions.pairs)
        table = groups.instances.tables[-1]
        rows = groups.instances.rows[-1].reshape(groups.n_groups, -1)[:, 0]
        offset = data.schema.fields[data.history.position].offset
        windows = [[data.item_ids[i - offset] for i, v in zip(idx, val) if v]
                   for idx, val in zip(table.idx[rows].tolist(), table.val[rows].tolist())]
    return HeldOut([data.user_ids[u] for u in users],
                   [[data.item_ids[i] for i in row] for row in items.tolist()], windows)


def replay_topn(run: Path, bundle_dir: Path, threads: int = 1) -> dict[str, float]:
    """The test ranking metrics of `run`, with every score coming from the bundle's ONNX."""
    held_out = held_out_groups(run)
    bundle = load_bundle(bundle_dir)
    scorer = OnnxScorer(bundle, threads)
    history = HistoryField.of(bundle) if held_out.windows is not None else None
    positions = [bundle.users.position(u) for u in held_out.user_ids]
    candidates, unknown = bundle.catalog.positions([i for row in held_out.item_ids for i in row])
    if unknown or None in positions:
        raise ConfigError(f"{bundle_dir} lacks users or items of the run's test groups")
    candidates = candidates.reshape(len(positions), -1)
    scores = []
    for start in range(0, len(positions), GROUPS_PER_CALL):
        rows = [_test_row(bundle, history, p, held_out, g)
                for g, p in enumerate(positions[start:start + GROUPS_PER_CALL], start)]
        state = scorer.user_state(np.stack([r[0] for r in rows]), np.stack([r[1] for r in rows]))
        scores.append(scorer.score(state, candidates[start:start + GROUPS_PER_CALL]))
    return ranking_report(np.concatenate(scores))


def _test_row(bundle: Bundle, history: HistoryField | None, position: int, held_out: HeldOut,
              group: int) -> tuple[np.ndarray, np.ndarray]:
    """The user's stored row, its history columns (if any) set to the test group's window."""
    idx, val = (np.array(a) for a in bundle.users.row(position))
    if history is not None and held_out.windows is not None:
        idx, val = history.apply(idx, val, held_out.windows[group])
    return idx, val
