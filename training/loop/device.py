"""Where a run computes: the CPU by default, a CUDA GPU on request. Batches are built on the
CPU and moved per step; weights are saved from the CPU so a run folder loads anywhere."""

from __future__ import annotations

import torch

from training.errors import ConfigError


def training_device(name: str) -> torch.device:
    """The torch device a config names, or a clear error where this machine has none."""
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            raise ConfigError(f"--device {name}: torch {torch.__version__} sees "
                              f"{count} CUDA device(s) here; use --device cpu")
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """The device a model's parameters live on (the CPU for a model without any)."""
    return next(model.parameters(), torch.empty(0)).device


def on_device(tensors: tuple[torch.Tensor, ...], device: torch.device
              ) -> tuple[torch.Tensor, ...]:
    """The same tensors on `device`; no copy where they are already there."""
    return tuple(t.to(device, non_blocking=True) for t in tensors)
