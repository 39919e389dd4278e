"""Distributed training: every rank's share of an epoch, the torchrun environment, and a real
two-process gloo fit on loopback that must land where one process lands."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.factories import tiny_interactions
from tests.support.servers import free_port
from tests.training.test_runs import EPOCH_LINE
from training.data.protocols import topn_split
from training.errors import ConfigError
from training.loop.distributed import (
    SINGLE,
    World,
    batch_bounds,
    process_device,
    shard_batches,
    world_from_env,
)
from training.loop.objectives import make_objective
from training.pipeline import _run_folder

SMALL = "synthetic:users=80,items=300,interactions=2400,seed=1"


def epoch_parts(n: int, batch_size: int, world_size: int, epochs: int, seed: int = 0
                ) -> list[list[list[tuple[torch.Tensor, float]]]]:
    """parts[epoch][rank]: each rank's (part, share) per batch, each rank with its own
    generator seeded alike, as the ranks of a fit are."""
    generators = [torch.Generator().manual_seed(seed) for _ in range(world_size)]
    return [[list(shard_batches(n, batch_size, generators[rank], World(rank, world_size)))
             for rank in range(world_size)] for _ in range(epochs)]


@pytest.mark.parametrize("world_size", [2, 3])
@pytest.mark.parametrize("n,batch_size", [(1000, 64), (1001, 64), (97, 10), (65, 32)])
def test_ranks_see_disjoint_shards_that_cover_the_training_set(n, batch_size, world_size):
    seen_orders = set()
    for ranks in epoch_parts(n, batch_size, world_size, epochs=4):
        shards = [torch.cat([part for part, _ in batches]) for batches in ranks]
        everything = torch.cat(shards)
        assert len(everything) == n and torch.equal(everything.sort().values, torch.arange(n))
        assert len({len(batches) for batches in ranks}) == 1  # the same steps on every rank
        for step in zip(*ranks):
            assert all(len(part) > 0 for part, _ in step)
            assert sum(share for _, share in step) == pytest.approx(world_size)
        seen_orders.add(tuple(shards[0].tolist()))
    assert len(seen_orders) == 4  # reshuffled every epoch


def test_the_ranks_parts_of_a_batch_are_the_batch_one_process_trains_on():
    one = epoch_parts(1001, 64, 1, epochs=2)
    two = epoch_parts(1001, 64, 2, epochs=2)
    for single, (first, second) in zip(one, two):
        for (whole, share), (a, _), (b, _) in zip(single[0], first, second):
            assert share == 1.0
            assert torch.equal(torch.cat([a, b]).sort().values, whole.sort().values)


@pytest.mark.parametrize("loss", ["squared", "bpr"])
def test_each_objective_hands_the_ranks_disjoint_parts_of_the_training_set(loss):
    split = topn_split(tiny_interactions(n_users=30, n_items=150, per_user=8), seed=0)
    objectives = [make_objective(split, loss, 16, None, World(rank, 2)) for rank in (0, 1)]
    seen = [[pair for (idx, _, _), _ in o.batches(1, torch.Generator().manual_seed(3))
             for pair in map(tuple, idx[:, [0, 2]].tolist())] for o in objectives]
    whole = make_objective(split, loss, 16, None, SINGLE)
    every = [pair for (idx, _, _), _ in whole.batches(1, torch.Generator().manual_seed(3))
             for pair in map(tuple, idx[:, [0, 2]].tolist())]  # (user, item) of each instance
    assert len(objectives[0]) == len(objectives[1]) == len(whole)
    assert sorted(seen[0] + seen[1]) == sorted(every)  # each instance once, on one rank


def test_a_single_process_cuts_the_permutation_as_before():
    order = torch.randperm(1001, generator=torch.Generator().manual_seed(5))
    parts = list(shard_batches(1001, 256, torch.Generator().manual_seed(5), SINGLE))
    assert [p.tolist() for p, _ in parts] == [order[s:s + 256].tolist()
                                              for s in range(0, 1001, 256)]


def test_a_tail_too_small_to_share_joins_the_batch_before_it():
    assert batch_bounds(65, 32, World(0, 3)) == [(0, 32), (32, 65)]
    assert batch_bounds(65, 32, SINGLE) == [(0, 32), (32, 64), (64, 65)]


@pytest.mark.parametrize("n,batch_size", [(1, 64), (100, 1)])
def test_too_little_to_share_is_a_config_error(n, batch_size):
    with pytest.raises(ConfigError, match="cannot be shared by 2 processes"):
        batch_bounds(n, batch_size, World(0, 2))


def test_the_world_comes_from_torchruns_variables():
    assert world_from_env({}) is SINGLE
    one = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1"}
    assert world_from_env(one) is SINGLE
    two = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    assert world_from_env(two) == World(1, 2, 1, 2)
    with pytest.raises(ConfigError, match="torchrun"):
        world_from_env({"WORLD_SIZE": "2"})


@pytest.mark.parametrize("name,needle", [("cuda:1", "the GPU of its local rank"),
                                         ("cuda", "one GPU each")])
def test_gpus_under_torchrun_are_one_per_process(name, needle):
    if name == "cuda" and torch.cuda.device_count() >= 2:
        pytest.skip("this machine has 2+ GPUs, so `cuda` under 2 processes is valid: "
                    "no error to check")
    with pytest.raises(ConfigError, match=needle):
        process_device(name, World(0, 2, 0, 2))
    assert process_device("cpu", World(1, 2, 1, 2)) == torch.device("cpu")


def test_only_rank_0_makes_a_run_folder(tmp_path):
    with _run_folder(tmp_path / "run", False, World(1, 2, 1, 2)) as folder:
        assert folder is None and list(tmp_path.iterdir()) == []
    with _run_folder(tmp_path / "run", False, World(0, 2, 0, 2)) as folder:
        assert folder.staging.parent == tmp_path


@pytest.mark.parametrize("rank,lines", [("0", 1), ("1", 0)])
def test_a_user_error_under_torchrun_is_one_line_from_rank_0(tmp_path, rank, lines):
    """Each process torchrun starts meets the error before any collective call: exit 2, and
    one line in all (rank 0's), not one per process."""
    env = {**os.environ, "RANK": rank, "WORLD_SIZE": "2", "LOCAL_RANK": rank,
           "LOCAL_WORLD_SIZE": "2"}
    done = subprocess.run([sys.executable, "-m", "training", "fit", "--data", SMALL,
                           "--device", "cuda", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == lines and "Traceback" not in done.stderr
    if lines:
        assert "--device cuda" in done.stderr


def fit_args(out, *extra: str) -> list[str]:
    return ["-m", "training", "fit", "--data", SMALL, "--dim", "8", "--epochs", "2",
            "--batch-size", "63", "--out", str(out), "--quiet", *extra]


def test_two_gloo_processes_train_as_one_and_rank_0_writes_the_run(tmp_path):
    """torchrun, 2 processes on loopback, GML-FM on GEM's graph (built by each rank): one run
    folder, world_size 2, and the steps of one process (no dropout, so only the order of the
    sums differs)."""
    torchrun = shutil.which("torchrun")
    assert torchrun, "torchrun comes with torch"
    runs, extra = tmp_path / "runs", ("--model", "gmlfm", "--embedding", "gcn")
    done = subprocess.run([torchrun, "--nproc-per-node", "2", "--master-port",
                           str(free_port()), *fit_args(runs / "two", *extra)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in runs.iterdir()) == ["two"]  # no other rank's folder
    two = json.loads((runs / "two" / "metrics.json").read_text())
    assert json.loads(done.stdout) == two["test"]  # printed once, by rank 0
    assert two["world_size"] == 2 and two["epochs"] == 2 and not two["interrupted"]
    assert 0 < two["test"]["hr@10"] <= 1 and (runs / "two" / "COMPLETE").is_file()
    one_done = subprocess.run([sys.executable, *fit_args(runs / "one", *extra)],
                              capture_output=True, text=True, timeout=300)
    assert one_done.returncode == 0, one_done.stderr
    one = json.loads((runs / "one" / "metrics.json").read_text())
    assert one["world_size"] == 1
    assert two["test"] == pytest.approx(one["test"], abs=1e-6)
    losses = [[r["train_loss"] for r in json.loads((runs / run / "history.json").read_text())]
              for run in ("one", "two")]
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    weights = [torch.load(runs / run / "model.pt") for run in ("one", "two")]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("to", ["torchrun", "one rank"])
def test_ctrl_c_under_torchrun_stops_every_rank_and_rank_0_saves_the_best_epoch(tmp_path, to):
    """SIGINT to torchrun (which passes it to each process), or to one process alone: the
    ranks agree to stop after the same batch (none left waiting in a collective) and rank 0
    saves the best epoch so far, as one process does."""
    out = tmp_path / "run"
    args = [shutil.which("torchrun"), "--nproc-per-node", "2", "--master-port", str(free_port()),
            "--shutdown-timeout", "120", "-m", "training", "fit", "--out", str(out), "--data",
            SMALL, "--dim", "4", "--epochs", "100000", "--patience", "100000", "--task",
            "rating"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    seen = 0
    for line in proc.stderr:  # rank 0's epoch lines, among its progress bar's updates
        seen += bool(EPOCH_LINE.search(line))
        if seen >= 2:
            break
    workers = [int(pid) for pid in
               Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()]
    os.kill(proc.pid if to == "torchrun" else workers[-1], signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:  # hung: end it (torchrun starts its workers apart)
        for pid in [*workers, proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise
    assert seen >= 2 and len(workers) == 2, stderr
    assert to == "torchrun" or proc.returncode == 0, stderr  # torchrun reports its own signal
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["world_size"] == 2
    assert metrics["epochs"] >= 2 and 1 <= metrics["best_epoch"] <= metrics["epochs"]
    assert (out / "COMPLETE").is_file() and "rmse" in metrics["test"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
