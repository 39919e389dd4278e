"""One fit over several processes started by torchrun: DistributedDataParallel, gloo on CPUs,
NCCL on GPUs.

Every process holds the same data, split and starting weights (same seed, same deterministic
code). Each epoch they draw the same permutation and cut it into the same global batches of
`--batch-size` that a single process cuts; rank r trains on every N-th instance of each batch,
its loss weighted by its share of the batch, so DDP's averaged gradient is the batch's mean
gradient: N processes take the optimisation steps of one, each computing 1/N of every step.
Only rank 0 validates, tests and writes the run folder; its early-stopping verdict is sent to
the others so that every rank stops at the same epoch.

Without torchrun's variables a fit is one process (`SINGLE`): no process group, no wrapper,
every function here the identity, so a single-process fit runs the same code with the same
numbers as before this module existed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from training.errors import ConfigError
from training.loop.device import model_device, training_device

# Ranks agree on a stop request every this many batches (and at an epoch's last batch): an
# agreement is a collective call, ~150 µs with gloo on loopback, so checking at every one of an
# epoch's ~1,000 batches would cost more than a Ctrl-C needs.
STOP_CHECK_BATCHES = 16


@dataclass(frozen=True)
class World:
    """This process's place among the fit's processes, as torchrun numbers them."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0  # among the processes on this machine: which GPU it takes
    local_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that validates, tests, prints and writes the run folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


SINGLE = World()
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


def world_from_env(environ: Mapping[str, str] = os.environ) -> World:
    """The World torchrun's variables describe; SINGLE without them (or with one process)."""
    if "WORLD_SIZE" not in environ:
        return SINGLE
    try:
        world = World(*(int(environ[name]) for name in TORCHRUN_VARIABLES))
    except (KeyError, ValueError):
        raise ConfigError(f"WORLD_SIZE is set but {', '.join(TORCHRUN_VARIABLES)} are not all "
                          "whole numbers: start distributed fits with torchrun") from None
    return world if world.distributed else SINGLE


def speaks_for_the_fit(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this process prints the fit's result and its errors: rank 0, or a process that
    torchrun did not start. Every rank meets the same user errors (same options, same data),
    so one report is enough, not one per process."""
    return environ.get("RANK", "0") == "0"


def draw_seed(seed: int, world: World) -> int:
    """The seed of this rank's training draws (dropout, GEM's edge sampling): the run's seed on
    rank 0, as for a single process, and a distinct one on every other rank, so that the
    ranks' parts of a batch drop independently, as one process's rows do."""
    return seed + world.rank * 2**32


def process_device(name: str, world: World) -> torch.device:
    """Where this process trains: the device `--device` names; under torchrun with `cuda`,
    the GPU of the process's local rank (one GPU per process), or a clear error."""
    if not world.distributed or name == "cpu":
        return training_device(name)
    if name != "cuda":
        raise ConfigError(f"--device {name}: under torchrun each process takes the GPU of its "
                          "local rank; give --device cuda")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count < world.local_size:
        raise ConfigError(f"--device cuda: torchrun started {world.local_size} processes here, "
                          f"one GPU each, but torch {torch.__version__} sees {count} CUDA "
                          "device(s); start fewer processes or use --device cpu")
    if not dist.is_nccl_available():
        raise ConfigError("--device cuda under torchrun needs NCCL, which this torch build "
                          "lacks; use --device cpu")
    return torch.device("cuda", world.local_rank)


@contextmanager
def process_group(world: World, device: torch.device) -> Iterator[None]:
    """torch.distributed's group for the fit (NCCL for GPUs, gloo for CPUs), destroyed however
    the fit ends, error and Ctrl-C included; nothing at all for a single process."""
    if not world.distributed:
        yield
        return
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=world.rank,
                            world_size=world.size)
    try:
        yield
    finally:
        dist.destroy_process_group()


def data_parallel(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """The model as the training steps call it: wrapped in DDP, whose backward averages the
    gradients over the ranks, or the model itself for one process. Buffers are not re-sent at
    every step: each model's are constants built from the same arguments on every rank."""
    if not world.distributed:
        return model
    device = model_device(model)
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None,
                                   forward_sync_buffers=False)


def batch_bounds(n: int, batch_size: int, world: World) -> list[tuple[int, int]]:
    """(start, end) of each global batch of an epoch over n instances: consecutive runs of
    `batch_size`, as one process cuts them, except that a last batch smaller than the world
    joins the one before it, so that no rank is ever left without an instance."""
    if world.distributed and min(n, batch_size) < world.size:
        raise ConfigError(f"{n} training instances in batches of --batch-size {batch_size} "
                          f"cannot be shared by {world.size} processes: both must be at least "
                          f"{world.size}")
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] < world.size:
        starts.pop()
    return list(zip(starts, [*starts[1:], n]))


def shard_batches(n: int, batch_size: int, generator: torch.Generator, world: World
                  ) -> Iterator[tuple[torch.Tensor, float]]:
    """This rank's part of each of an epoch's batches over instances 0..n-1, with its share.

    The epoch's permutation comes from `generator`, seeded alike on every rank, so all ranks
    cut the same batches; rank r takes every N-th position of each from its r-th. The parts of
    an epoch are disjoint and together cover 0..n-1. The share N |part| / |batch| weights the
    part's mean loss so that DDP's average over ranks is the batch's own mean; it is 1 for a
    single process, whose parts are the whole batches."""
    order = torch.randperm(n, generator=generator)
    for start, end in batch_bounds(n, batch_size, world):
        part = order[start + world.rank:end:world.size]
        yield part, world.size * len(part) / (end - start)


def stop_agreed(world: World, requested: bool, batch: int, last: bool) -> bool:
    """Whether the fit stops after this batch: its own stop request for one process; under
    torchrun, any rank's, checked every STOP_CHECK_BATCHES batches and at the epoch's last one
    (every rank checks at the same batches), so all ranks stop after the same batch."""
    if not world.distributed:
        return requested
    if not last and (batch + 1) % STOP_CHECK_BATCHES:
        return False
    flag = _tensor([float(requested)])
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def from_main(world: World, *flags: bool) -> tuple[bool, ...]:
    """Rank 0's flags on every rank (decisions only rank 0 can make, such as early stopping)."""
    if not world.distributed:
        return flags
    values = _tensor([float(f) for f in flags])
    dist.broadcast(values, src=0)
    return tuple(bool(v) for v in values.tolist())


def mean_over_ranks(world: World, value: float) -> float:
    """The mean of one number over the ranks, e.g. each rank's mean training loss."""
    if not world.distributed:
        return value
    total = _tensor([value], torch.float64)
    dist.all_reduce(total)
    return total.item() / world.size


def require_same(world: World, what: str, arrays: Sequence[np.ndarray | torch.Tensor]) -> None:
    """Stop the fit if the ranks hold different `arrays`: sharding assumes every rank built the
    same training set (and GEM the same graph), which a nondeterministic step would break."""
    if not world.distributed:
        return
    digest = hashlib.sha256()
    for array in arrays:
        digest.update(np.ascontiguousarray(np.asarray(array)).tobytes())
    code = int.from_bytes(digest.digest()[:7], "little")
    extremes = _tensor([code, -code], torch.int64)
    dist.all_reduce(extremes, op=dist.ReduceOp.MAX)
    if extremes[0].item() != -extremes[1].item():
        raise RuntimeError(f"rank {world.rank}: the {what} differs between the ranks")


def barrier(world: World) -> None:
    """Wait for every rank (a no-op for one process)."""
    if world.distributed:
        dist.barrier()


def _tensor(values: list[float] | list[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A small tensor where the group's backend wants it: NCCL on this rank's GPU."""
    cuda = dist.get_backend() == "nccl"
    return torch.tensor(values, dtype=dtype,
                        device=torch.device("cuda", torch.cuda.current_device()) if cuda else None)
