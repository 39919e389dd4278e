"""A small training loop: Adam on the objective's loss (squared or BPR), validation each
epoch, early stopping with patience, the best weights kept. It knows nothing of any
particular model. Under torchrun every process runs it alike (`training.loop.distributed`)."""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm

from training.data.protocols import Split
from training.loop.device import model_device, on_device
from training.loop.distributed import (
    SINGLE,
    World,
    data_parallel,
    from_main,
    mean_over_ranks,
    stop_agreed,
)
from training.loop.evaluation import Evaluator, headline
from training.loop.interrupt import StopRequest
from training.loop.objectives import BPR, Pointwise, make_objective
from training.options import Bounds, Options, option


@dataclass(frozen=True)
class TrainOptions(Options):
    """How the loop optimises: the GML-FM paper's Adam, squared loss, batch 256."""

    loss: Literal["squared", "bpr"] = option(
        "squared", "squared (pointwise on ±1 labels, the papers') or bpr (pairwise, top-n)")
    resample_negatives: bool = option(
        False, "draw fresh training negatives every epoch instead of the protocol's one draw")
    lr: float = option(1e-3, "Adam learning rate", Bounds(0, above=True))
    batch_size: int = option(256, "mini-batch size", Bounds(1))
    l2: float = option(0.0, "Adam weight decay", Bounds(0))
    epochs: int = option(50, "maximum epochs", Bounds(1))
    patience: int = option(5, "epochs without a better validation metric before stopping",
                           Bounds(1))


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    seconds: float
    valid: dict[str, float] = field(default_factory=dict)


@dataclass
class FitResult:
    best_epoch: int
    history: list[EpochRecord]  # finished epochs only
    train_seconds: float
    interrupted: bool = False  # stopped by Ctrl-C: the weights are the best finished epoch's


def patience_exhausted(scores: list[float], patience: int) -> bool:
    """True once none of the last `patience` scores beats the best before them."""
    if len(scores) <= patience:
        return False
    return max(scores[-patience:]) <= max(scores[:-patience])


def make_optimizer(model: torch.nn.Module, options: TrainOptions) -> torch.optim.Optimizer:
    """Adam; the fused kernel updates every parameter in one pass (faster on CPU and GPU)."""
    return torch.optim.Adam(model.parameters(), lr=options.lr, weight_decay=options.l2,
                            fused=True)


def fit(model: torch.nn.Module, split: Split, options: TrainOptions, seed: int,
        progress: bool = True, stop: StopRequest | None = None, world: World = SINGLE
        ) -> FitResult:
    """Train in place; on return the model holds the weights of its best validation epoch.
    `seed` orders the batches and, with resampling, draws the negatives. Once `stop` is
    requested the loop ends after the current batch and drops that unfinished epoch; stopped
    before any epoch finished, there is nothing to keep and KeyboardInterrupt propagates.

    Under torchrun every rank of `world` calls it with the same arguments: each trains on its
    part of every batch, rank 0 alone validates and decides which epoch is best and when to
    stop, and every rank follows, so all end with the same best weights."""
    stop = stop or StopRequest()
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, options)
    objective = make_objective(split, options.loss, options.batch_size,
                               seed if options.resample_negatives else None, world)
    validate = Evaluator(split.valid) if split.valid is not None and world.is_main else None
    trained = data_parallel(model, world)  # what the steps call; `model` is what is judged
    history: list[EpochRecord] = []
    scores: list[float] = []
    best_state, best_epoch, started = None, 0, time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        tick = time.perf_counter()
        loss, stopped = train_epoch(trained, optimizer, objective, generator, epoch,
                                    progress and world.is_main, stop, world)
        if stopped:
            break
        seconds = time.perf_counter() - tick
        record = EpochRecord(epoch, mean_over_ranks(world, loss), seconds)
        if validate is not None:
            record.valid = validate(model)
            scores.append(headline(split.task, record.valid)[1])
        history.append(record)
        improved, exhausted = from_main(world, not scores or scores[-1] >= max(scores),
                                        patience_exhausted(scores, options.patience))
        if improved:  # always, without a validation set: the last epoch is kept
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        if progress and world.is_main:
            tqdm.write(_summary(record, improved), file=sys.stderr)  # stdout: the result
        if exhausted:
            break
    if best_state is None:
        raise KeyboardInterrupt  # stopped inside the first epoch: no weights worth keeping
    model.load_state_dict(best_state)
    return FitResult(best_epoch, history, time.perf_counter() - started, stopped)


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                objective: Pointwise | BPR, generator: torch.Generator, epoch: int,
                progress: bool, stop: StopRequest, world: World = SINGLE
                ) -> tuple[float, bool]:
    """One pass over the objective's batches (under torchrun, this rank's parts of them), cut
    short once `stop` is requested (on any rank: every rank stops after the same batch);
    returns the mean batch loss and whether the epoch was cut short."""
    model.train()
    device = model_device(model)
    losses = torch.zeros(len(objective), device=device)
    bar = tqdm(objective.batches(epoch, generator), total=len(objective), desc=f"epoch {epoch}",
               leave=False, disable=not progress, unit="batch", mininterval=0.5)
    stopped = False
    for step, (batch, share) in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        # weighted by the part's share of its batch, so that the mean over the ranks, of the
        # gradient (DDP's) and of the loss, is the batch's; share 1 for a single process
        loss = objective.loss(model, on_device(batch, device)) * share
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach()
        stopped = stop_agreed(world, stop.requested, step, step == len(objective) - 1)
        if stopped:
            break
    return float(losses.mean()), stopped


def _summary(record: EpochRecord, is_best: bool) -> str:
    valid = " ".join(f"{k}={v:.4f}" for k, v in record.valid.items() if "optimistic" not in k)
    mark = " *" if is_best else ""
    return (f"epoch {record.epoch:3d}  loss={record.train_loss:.4f}  {valid}  "
            f"({record.seconds:.1f}s){mark}")
