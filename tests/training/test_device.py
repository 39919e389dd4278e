"""--device: a missing GPU is a clear error before any work; a GPU run's saved weights score
on the CPU exactly as the GPU scored them (the GPU half runs only where torch sees CUDA)."""

from __future__ import annotations

import pytest
import torch

from training.config import resolve
from training.errors import ConfigError
from training.loop.device import training_device
from training.pipeline import evaluate_run, fit_and_save

SMALL = "synthetic:users=80,items=300,interactions=2400,seed=1"
HAS_CUDA = torch.cuda.is_available()


def test_cpu_is_the_default_and_always_there():
    assert resolve({}, {}).run.device == "cpu"
    assert training_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["gpu", "cuda:", "cuda:x", "CPU"])
def test_malformed_device_names_are_refused(name):
    with pytest.raises(ConfigError, match="--device"):
        resolve({}, {"device": name})


def test_gem_refuses_a_gpu_it_cannot_use():
    with pytest.raises(ConfigError, match="--embedding gcn"):
        resolve({}, {"device": "cuda", "embedding": "gcn"})


def test_a_device_index_past_the_last_gpu_is_named():
    past = torch.cuda.device_count() if HAS_CUDA else 0
    with pytest.raises(ConfigError, match=f"cuda:{past}.*use --device cpu"):
        training_device(f"cuda:{past}")


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA device")
@pytest.mark.parametrize("model", ["fm", "gmlfm", "xdeepfm"])
def test_gpu_run_reloads_on_the_cpu_with_the_same_scores(tmp_path, model):
    config = resolve({}, {"data": SMALL, "task": "rating", "model": model, "epochs": 2,
                          "dim": 8, "device": "cuda", "out": str(tmp_path / model)})
    trained = fit_and_save(config, progress=False)
    again = evaluate_run(tmp_path / model)  # rebuilt on the CPU from model.pt
    assert again["test"]["rmse"] == pytest.approx(trained["test"]["rmse"], rel=1e-5)
    assert again["valid"]["rmse"] == pytest.approx(trained["valid"]["rmse"], rel=1e-5)
