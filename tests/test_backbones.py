"""Spectral memory as a plug-in (recurrent, state-space, MultiresConv backbones) and the MultiresConv layer."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from specmem_cli.cli import app
from specmem_cli.models import MODELS, build_model
from specmem_cli.models.memory_backbone import MemoryBackbone
from specmem_cli.models.multires_conv import MultiresConv, tree_depth

MEMORY_MODELS = sorted(name for name, cls in MODELS.items() if issubclass(cls, MemoryBackbone))
SMALL_MEMORY = {"memory": "spectral", "memory_depth": 16, "n_components": 4, "memory_tokens": 1, "d_model": 16}


@pytest.mark.parametrize("name", [m for m in MEMORY_MODELS if m != "klmemory"])
def test_backbone_reads_and_writes_memory(name):
    torch.manual_seed(0)
    model = build_model(name, 32, 8, 2, {**SMALL_MEMORY, "dropout": 0.0})
    inputs = torch.randn(4, 32, 2)
    model.eval()
    empty = model(inputs)
    model.train()
    for _ in range(6):
        model(inputs)
    assert model.memory.n_rows == 6 and model.memory.ready
    model.eval()
    filled = model(inputs)
    assert model.memory.n_rows == 6, "evaluation never writes"
    assert not torch.allclose(empty, filled), "the memory must change the forecast once filled"
    restored = build_model(name, 32, 8, 2, {**SMALL_MEMORY, "dropout": 0.0})
    restored.load_state_dict(model.state_dict())
    restored.eval()
    torch.testing.assert_close(restored(inputs), filled)


@pytest.mark.parametrize("selection", ["fading", "uniform"])
@pytest.mark.parametrize("kernel_size", [2, 3])
def test_multires_conv_is_causal(selection, kernel_size):
    torch.manual_seed(0)
    layer = MultiresConv(3, 40, kernel_size=kernel_size, selection=selection)
    x = torch.randn(2, 3, 40)
    changed = x.clone()
    changed[..., 25:] += torch.randn(2, 3, 15)
    before, after = layer(x), layer(changed)
    torch.testing.assert_close(before[..., :25], after[..., :25])
    assert not torch.allclose(before[..., 25:], after[..., 25:])


@pytest.mark.parametrize("selection", ["fading", "uniform"])
@pytest.mark.parametrize("filters", [{"kernel_size": 3}, {"wavelet": "db2"}])
def test_multires_conv_product_equals_the_tree_step_by_step(selection, filters):
    """The one-product forward is the tree (:meth:`transform`) exactly: outputs and every gradient."""
    torch.manual_seed(0)
    layer = MultiresConv(3, 40, selection=selection, **filters).double()
    with torch.no_grad():  # filters and weights off their initial values, so nothing cancels by symmetry
        for parameter in layer.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    x = torch.randn(4, 3, 40, dtype=torch.float64, requires_grad=True)
    target = torch.randn(4, 3, 40, dtype=torch.float64)
    product, tree = layer(x), layer.transform(x)
    torch.testing.assert_close(product, tree)
    for output_of_product, output_of_tree in zip(
        torch.autograd.grad((product * target).sum(), [x, *layer.parameters()]),
        torch.autograd.grad((tree * target).sum(), [x, *layer.parameters()]),
        strict=True,
    ):
        torch.testing.assert_close(output_of_product, output_of_tree)


def test_tree_depth_follows_length_and_kernel():
    assert [tree_depth(96, 2), tree_depth(96, 3), tree_depth(96, 4), tree_depth(16, 2)] == [7, 6, 6, 4]
    for length, kernel in [(96, 2), (96, 4), (336, 3)]:
        depth = tree_depth(length, kernel)
        assert 1 + (kernel - 1) * (2**depth - 1) >= length > 1 + (kernel - 1) * (2 ** (depth - 1) - 1)
    assert MultiresConv(4, 96, kernel_size=3).depth == 6


def haar_dwt(signal: torch.Tensor) -> list[torch.Tensor]:
    """Textbook decimated Haar detail coefficients, level 1 first (pywavelets' convention)."""
    details, approximation = [], signal
    while approximation.numel() > 1:
        even, odd = approximation[0::2], approximation[1::2]
        details.append((even - odd) / math.sqrt(2))
        approximation = (even + odd) / math.sqrt(2)
    return details


def test_haar_initialised_layer_reproduces_haar_wavelet_coefficients():
    layer = MultiresConv(1, 32, wavelet="haar").double()
    signal = torch.sin(torch.arange(32, dtype=torch.float64) / 3) + torch.arange(32, dtype=torch.float64) / 10
    details, approximation = layer.decompose(signal[None, None])
    for level, expected in enumerate(haar_dwt(signal), start=1):
        # the undecimated tree holds the decimated coefficients at every 2^level-th step
        positions = torch.arange(2**level - 1, 32, 2**level)
        torch.testing.assert_close(details[level - 1][0, 0, positions], expected)
    torch.testing.assert_close(approximation[0, 0, -1], signal.sum() / math.sqrt(32))


def test_db2_filters_are_orthonormal_wavelet_filters():
    layer = MultiresConv(1, 16, wavelet="db2")
    low, high = layer.low_pass[0, 0].detach().double(), layer.high_pass[0, 0].detach().double()
    assert layer.kernel_size == 4
    assert torch.isclose(low.sum(), torch.tensor(math.sqrt(2), dtype=torch.float64), atol=1e-6)
    assert torch.isclose(low.norm(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6)
    assert abs(float(high.sum())) < 1e-6 and abs(float(low @ high)) < 1e-6


@pytest.mark.parametrize("name", ["gru", "multires"])
def test_backbone_trains_checkpoints_and_forecasts_through_the_cli(tmp_path, name):
    import yaml

    from tests.conftest import tiny_config

    config = tmp_path / "tiny.yaml"
    raw = tiny_config().to_dict()
    raw["model"] = {"name": name, "d_model": 8, "memory": "spectral", "memory_depth": 16, "n_components": 4}
    raw["train"]["memory_at_eval"] = "frozen"
    config.write_text(yaml.safe_dump(raw))
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "runs"), "-q"])
    assert trained.exit_code == 0, trained.output
    (run_dir,) = (tmp_path / "runs").glob("[!.]*")
    from specmem_cli.data import synthetic_table

    csv = tmp_path / "synthetic.csv"
    synthetic_table().to_frame().to_csv(csv, index=False)
    forecast = runner.invoke(app, ["forecast", str(run_dir), "--input", str(csv), "--output", str(tmp_path / "f.csv")])
    assert forecast.exit_code == 0, forecast.output
    assert "memory: frozen" in forecast.stderr
