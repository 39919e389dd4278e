"""A small training loop: Adam on the objective's loss (squared or BPR), validation each
epoch, early stopping with patience, the best weights kept. It knows nothing of any
particular model."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Literal

import torch
from tqdm.auto import tqdm

from training.data.protocols import Split
from training.loop.device import model_device, on_device
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
        progress: bool = True, stop: StopRequest | None = None) -> FitResult:
    """Train in place; on return the model holds the weights of its best validation epoch.
    `seed` orders the batches and, with resampling, draws the negatives. Once `stop` is
    requested the loop ends after the current batch and drops that unfinished epoch; stopped
    before any epoch finished, there is nothing to keep and KeyboardInterrupt propagates."""
    stop = stop or StopRequest()
    generator = torch.Generator().manual_seed(seed)
    optimizer = make_optimizer(model, options)
    objective = make_objective(split, options.loss, options.batch_size,
                               seed if options.resample_negatives else None)
    validate = Evaluator(split.valid) if split.valid is not None else None
    history: list[EpochRecord] = []
    scores: list[float] = []
    best_state, best_epoch, started = None, 0, time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        tick = time.perf_counter()
        loss = train_epoch(model, optimizer, objective, generator, epoch, progress, stop)
        if stop.requested:
            break
        record = EpochRecord(epoch, loss, time.perf_counter() - tick)
        if validate is not None:
            record.valid = validate(model)
            scores.append(headline(split.task, record.valid)[1])
        history.append(record)
        if validate is None or scores[-1] >= max(scores):
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        if progress:
            tqdm.write(_summary(record, best_epoch == epoch))
        if validate is not None and patience_exhausted(scores, options.patience):
            break
    if best_state is None:
        raise KeyboardInterrupt  # stopped inside the first epoch: no weights worth keeping
    model.load_state_dict(best_state)
    return FitResult(best_epoch, history, time.perf_counter() - started, stop.requested)


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                objective: Pointwise | BPR, generator: torch.Generator, epoch: int,
                progress: bool, stop: StopRequest) -> float:
    """One pass over the objective's batches (cut short once `stop` is requested); returns
    the mean batch loss."""
    model.train()
    device = model_device(model)
    losses = torch.zeros(len(objective), device=device)
    bar = tqdm(objective.batches(epoch, generator), total=len(objective), desc=f"epoch {epoch}",
               leave=False, disable=not progress, unit="batch", mininterval=0.5)
    for step, batch in enumerate(bar):
        optimizer.zero_grad(set_to_none=True)
        loss = objective.loss(model, on_device(batch, device))
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach()
        if stop.requested:
            break
    return float(losses.mean())


def _summary(record: EpochRecord, is_best: bool) -> str:
    valid = " ".join(f"{k}={v:.4f}" for k, v in record.valid.items() if "optimistic" not in k)
    mark = " *" if is_best else ""
    return (f"epoch {record.epoch:3d}  loss={record.train_loss:.4f}  {valid}  "
            f"({record.seconds:.1f}s){mark}")
