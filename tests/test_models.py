"""One contract for every registered model: a new model gets these tests by being registered."""

from __future__ import annotations

import inspect

import pandas as pd
import pytest
import torch

from specmem_cli.config import model_preset
from specmem_cli.models import MODELS, build_model, forecast, hyper_parameters, resolve_step_parameters
from specmem_cli.training.trainer import seed_everything

SMALL = {
    "d_model": 16,
    "d_ff": 32,
    "n_heads": 2,
    "e_layers": 1,
    "d_layers": 1,
    "dropout": 0.0,
    "memory_depth": 32,
    "n_components": 4,
    "memory_tokens": 1,
    "projection": "bottleneck",
}
SEQ_LEN, PRED_LEN, CHANNELS = 48, 12, 3


def small_model(name: str) -> torch.nn.Module:
    known = hyper_parameters(name)
    params = {k: v for k, v in model_preset(name).items() if k in known}
    params.update({k: v for k, v in SMALL.items() if k in known})
    return build_model(name, SEQ_LEN, PRED_LEN, CHANNELS, resolve_step_parameters(name, params, pd.Timedelta(hours=1)))


def batch(seed: int):
    generator = torch.Generator().manual_seed(seed)
    steps = torch.arange(SEQ_LEN + PRED_LEN, dtype=torch.float32)
    phase = torch.rand(16, 1, CHANNELS, generator=generator) * 6.28
    series = torch.sin(steps[None, :, None] / 4 + phase) + 0.1 * torch.randn(
        16, SEQ_LEN + PRED_LEN, CHANNELS, generator=generator
    )
    return series[:, :SEQ_LEN], series[:, SEQ_LEN:]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_contract(name):
    inputs, targets = batch(0)
    positions = torch.arange(16)  # clock positions; only phase-aware models read them

    def run(model):
        return forecast(model, inputs, positions)

    losses = []
    for _ in range(2):  # twice, to prove determinism under a seed
        seed_everything(11)
        model = small_model(name)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.eval()
        with torch.no_grad():
            before = torch.nn.functional.mse_loss(run(model), targets)
        assert run(model).shape == (16, PRED_LEN, CHANNELS)
        model.train()
        for _ in range(5):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(run(model), targets).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            after = torch.nn.functional.mse_loss(run(model), targets)
        assert after < before, f"{name}: training did not reduce the loss ({before:.4f} -> {after:.4f})"
        losses.append(float(after))
    assert losses[0] == losses[1]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_hyper_parameter_has_a_default_and_the_preset_is_valid(name):
    known = hyper_parameters(name)
    assert all(value is not inspect.Parameter.empty for value in known.values())
    preset = {k: v for k, v in model_preset(name).items() if k not in ("name", "train")}
    assert set(preset) <= set(known), f"configs/models/{name}.yaml has unknown keys {set(preset) - set(known)}"
