"""A small training loop: Adam on squared loss, validation each epoch, early stopping with
patience, the best weights kept. It knows nothing of any particular model."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from training.config import FitConfig
from training.device import model_device, on_device
from training.evaluation import Evaluator, headline
from training.objectives import BPR, Pointwise, make_objective
from training.protocols import Split


@dataclass
class EpochRecord:
    epoch: int
    train_loss: float
    seconds: float
    valid: dict[str, float] = field(default_factory=dict)


@dataclass
class FitResult:
    best_epoch: int
    history: list[EpochRecord]
    train_seconds: float


def patience_exhausted(scores: list[float], patience: int) -> bool:
    """True once the last `patience` scores are all below the best before them."""
    if len(scores) <= patience:
        return False
    return max(scores[-patience:]) <= max(scores[:-patience])


def make_optimizer(model: torch.nn.Module, config: FitConfig) -> torch.optim.Optimizer:
    """Adam; the fused kernel updates every parameter in one pass (faster on CPU and GPU)."""
    return torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.l2, fused=True)


def fit(model: torch.nn.Module, split: Split, config: FitConfig, progress: bool = True
        ) -> FitResult:
    """Train in place; on return the model holds the weights of its best validation epoch."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = make_optimizer(model, config)
    objective = make_objective(split, config)
    validate = Evaluator(split.valid) if split.valid is not None else None
    history: list[EpochRecord] = []
    scores: list[float] = []
    best_state, best_epoch, started = None, 0, time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        tick = time.perf_counter()
        loss = train_epoch(model, optimizer, objective, generator, epoch, progress)
        record = EpochRecord(epoch, loss, time.perf_counter() - tick)
        if validate is not None:
            record.valid = validate(model)
            scores.append(headline(split.task, record.valid)[1])
        history.append(record)
        if validate is None or scores[-1] >= max(scores):
            best_state, best_epoch = copy.deepcopy(model.state_dict()), epoch
        if progress:
            tqdm.write(_summary(record, best_epoch == epoch))
        if validate is not None and patience_exhausted(scores, config.patience):
            break
    model.load_state_dict(best_state)
    return FitResult(best_epoch, history, time.perf_counter() - started)


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                objective: Pointwise | BPR, generator: torch.Generator, epoch: int,
                progress: bool) -> float:
    """One pass over the objective's batches; returns the mean batch loss."""
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
    return float(losses.mean())


def _summary(record: EpochRecord, is_best: bool) -> str:
    valid = " ".join(f"{k}={v:.4f}" for k, v in record.valid.items() if "optimistic" not in k)
    mark = " *" if is_best else ""
    return (f"epoch {record.epoch:3d}  loss={record.train_loss:.4f}  {valid}  "
            f"({record.seconds:.1f}s){mark}")
