"""Every memory backbone x every memory variant (off, spectral, analog): shapes, learning, determinism,
and the analog memory's gate (kept where it lowers validation error, dropped where it raises it)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from specmem_cli.checkpoint import load_run
from specmem_cli.cli import app
from specmem_cli.config import apply_overrides, load_data, with_model
from specmem_cli.data import synthetic_table
from specmem_cli.data.windows import WindowSet
from specmem_cli.errors import CheckpointError, ConfigError
from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.memory.spectral import SpectralMemory
from specmem_cli.models import MODELS, build_model, forecast, hyper_parameters
from specmem_cli.models.analog_blend import MIN_GAIN
from specmem_cli.models.memory_backbone import MEMORIES, MemoryBackbone, MemoryOptions
from specmem_cli.training.run import evaluate_run
from specmem_cli.training.sweep import run_sweep
from tests.conftest import SHARED, tiny_config

BACKBONES = sorted(name for name, cls in MODELS.items() if issubclass(cls, MemoryBackbone))
SMALL = {"d_model": 16, "dropout": 0.0, "memory_depth": 16, "n_components": 4}
SIZES = {
    "klmemory": {"n_heads": 2, "d_ff": 32, "e_layers": 1, "projection": "bottleneck"},
    "patchtst": {"n_heads": 2, "d_ff": 32},
    "itransformer": {"n_heads": 2, "d_ff": 32},
}
SEQ, HORIZON = 48, 12


def small(name: str, memory: str, seed: int = 0) -> MemoryBackbone:
    torch.manual_seed(seed)
    return build_model(name, SEQ, HORIZON, 2, {**SMALL, **SIZES.get(name, {}), "memory": memory})


def periodic(rows: int, noise: float = 0.05, seed: int = 0) -> torch.Tensor:
    """Two series repeating one random 24-step motif each (what analogs predict), with a little noise."""
    generator = torch.Generator().manual_seed(seed)
    motif = torch.randn(24, 2, generator=generator)
    return motif.repeat(rows // 24 + 1, 1)[:rows] + noise * torch.randn(rows, 2, generator=generator)


def windows(series: torch.Tensor, first_row: int = 0) -> WindowSet:
    return WindowSet(series, SEQ, HORIZON, slice(0, 2), torch.arange(first_row, first_row + len(series)))


def train_steps(model: MemoryBackbone, train: WindowSet, steps: int = 60) -> list[float]:
    optimizer = torch.optim.Adam(model.parameters(), lr=0.003)
    generator, losses = torch.Generator().manual_seed(0), []
    model.train()
    while len(losses) < steps:
        for inputs, targets, positions in train.batches(32, shuffle=True, generator=generator):
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(forecast(model, inputs, positions), targets)
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
            if len(losses) == steps:
                break
    return losses


@pytest.mark.parametrize("name", BACKBONES)
def test_memory_settings_are_one_group_written_as_flat_keys(name):
    """Every backbone takes the same memory settings (MemoryOptions), written as flat model keys, each
    reaching the memory; a bad value is a config error naming it."""
    known = hyper_parameters(name)
    assert {field: known[field] for field in MemoryOptions.__dataclass_fields__} == vars(MODELS[name].memory_defaults)
    settings = {"memory": "spectral", "memory_depth": 24, "n_components": 3, "memory_tokens": 2, "tau": 16.0}
    model = build_model(name, SEQ, HORIZON, 2, {**SMALL, **SIZES.get(name, {}), **settings})
    assert isinstance(model.memory, SpectralMemory)
    assert (model.memory.memory_depth, model.memory.n_components, model.memory.memory_tokens) == (24, 3, 2)
    assert model.memory.tau == 16.0
    with pytest.raises(ConfigError, match="strategy must be one of"):
        build_model(name, SEQ, HORIZON, 2, {**SMALL, **SIZES.get(name, {}), "memory": "spectral", "strategy": "x"})


@pytest.mark.parametrize("memory", MEMORIES)
@pytest.mark.parametrize("name", BACKBONES)
def test_every_variant_forecasts_learns_and_repeats(name, memory):
    train = windows(periodic(400))
    inputs, _, positions = train.batch(torch.arange(5))
    assert forecast(small(name, memory).eval(), inputs, positions).shape == (5, HORIZON, 2)
    model = small(name, memory)
    losses = train_steps(model, train)
    assert sum(losses[-4:]) < sum(losses[:4]), f"{name}/{memory}: training did not lower the loss"
    again = small(name, memory)
    train_steps(again, train)
    model.eval(), again.eval()
    torch.testing.assert_close(forecast(model, inputs, positions), forecast(again, inputs, positions), rtol=0, atol=0)


@pytest.mark.parametrize("name", BACKBONES)
def test_analog_trains_the_very_network_memory_off_trains(name):
    """The analog memory is built after training: until then the network is the memory-off one, weight for weight."""
    train = windows(periodic(400))
    analog, off = small(name, "analog"), small(name, "off")
    train_steps(analog, train), train_steps(off, train)
    network = {k: v for k, v in analog.state_dict().items() if not k.startswith("memory.") and k != "blend"}
    assert network.keys() == off.state_dict().keys()
    for key, value in network.items():
        torch.testing.assert_close(value, off.state_dict()[key], rtol=0, atol=0)


def silent(model: MemoryBackbone) -> MemoryBackbone:
    """The backbone with a network that forecasts each window's own mean: the best forecast of noise, and
    a poor one of a repeating motif, so what the analog memory adds is known in both cases."""
    model._network = lambda normalised, write_memory: normalised.new_zeros(len(normalised), HORIZON, 2)
    return model.eval()


@pytest.mark.parametrize("name", BACKBONES)
def test_the_gate_keeps_an_analog_memory_that_helps_and_drops_one_that_hurts(name):
    train = windows(periodic(600))
    helps = windows(periodic(600)[:200], first_row=600)  # the same motif continues: analogs predict it
    generator = torch.Generator().manual_seed(1)
    hurts = windows(torch.randn(200, 2, generator=generator), first_row=600)  # noise: analogs only add error
    model = silent(small(name, "analog"))
    decision = model.calibrate_memory(train, helps, 2, 64)
    assert decision["memory_used"] and decision["val_mse_with_memory"] < 0.5 * decision["val_mse_without_memory"]
    assert isinstance(model.memory, AnalogMemory) and model.reads_memory and float(model.blend.max()) > 0
    inputs, _, positions = hurts.batch(torch.arange(8))
    with torch.no_grad():
        read = forecast(model, inputs, positions)
        decision = model.calibrate_memory(train, hurts, 2, 64)
        assert not decision["memory_used"] and decision["val_mse_with_memory"] is None  # no blend was fitted
        assert decision["val_mse_best_blend"] > (1 - MIN_GAIN) * decision["val_mse_without_memory"]
        assert not model.reads_memory and not model.memory.ready
        network_only = forecast(silent(small(name, "off")), inputs, positions)
        torch.testing.assert_close(forecast(model, inputs, positions), network_only, rtol=0, atol=0)
    assert not torch.allclose(read, network_only)


def test_the_gate_reads_training_windows_only_where_some_blend_could_pass(monkeypatch):
    """Validation is read first; a memory no blend could make 0.5% better there is dropped without the
    training pass, and the best blend's figure bounds every fitted blend's from below."""
    train = windows(periodic(600))
    generator = torch.Generator().manual_seed(1)
    cases = {
        "helps": windows(periodic(600)[:200], first_row=600),
        "hurts": windows(torch.randn(200, 2, generator=generator), first_row=600),
    }
    model = silent(small("gru", "analog"))
    passes = []
    reading = model._correction_sums
    monkeypatch.setattr(model, "_correction_sums", lambda split, *rest: passes.append(split) or reading(split, *rest))
    for name, val in cases.items():
        passes.clear()
        decision = model.calibrate_memory(train, val, 2, 64)
        assert decision["memory_used"] == (name == "helps")
        assert passes == ([val, train] if name == "helps" else [val])
        if name == "helps":
            assert decision["val_mse_best_blend"] <= decision["val_mse_with_memory"]


def test_a_backbone_runs_analog_memory_is_trained_kept_or_dropped_and_inspected(tmp_path):
    settings = ["model.d_model=8", "model.memory=analog", "train.memory_at_eval=frozen", "train.epochs=1"]
    config = apply_overrides(with_model(tiny_config(), "gru"), [*settings, "train.max_steps=10"])
    (record,) = run_sweep(config, tmp_path / "runs")
    decision = json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]["memory"]
    assert set(decision) >= {"memory_used", "val_mse_without_memory", "val_mse_with_memory"}
    csv = tmp_path / "synthetic.csv"
    synthetic_table().to_frame().to_csv(csv, index=False)
    args = ["inspect-modes", record.run_dir, "--output", str(tmp_path / "modes.png"), "--json"]
    result = CliRunner().invoke(app, [*args, "--from-data", str(csv)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["strategy"] == "analog" and report["history_rows"] > 0
    assert len(report["key_modes"]) == 32 and len(report["key_modes"][0]) == 48  # 32 K-L modes of 48-step windows


@pytest.mark.parametrize("name", ["patchtst", "itransformer"])
def test_runs_saved_before_a_model_took_a_memory_still_load(tmp_path, name):
    """PatchTST and iTransformer checkpoints from before the memory contract lack its pooling layer (read
    only by a spectral memory's writes): they load and score exactly as saved."""
    settings = ["model.d_model=8", "model.n_heads=2", "model.d_ff=16", "train.max_steps=5"]
    (record,) = run_sweep(apply_overrides(with_model(tiny_config(), name), settings), tmp_path / "runs")
    path = Path(record.run_dir) / "checkpoint.pt"
    document = torch.load(path, weights_only=True)
    document["state_dict"] = {k: v for k, v in document["state_dict"].items() if not k.startswith("pooling.")}
    torch.save(document, path)
    again = evaluate_run(Path(record.run_dir))
    assert (again.mse, again.mae) == (record.mse, record.mae)
    layer = {"patchtst": "embedding.weight", "itransformer": "projection.weight"}[name]
    torch.save({**document, "state_dict": {**document["state_dict"], layer: torch.zeros(3, 3)}}, path)
    with pytest.raises(CheckpointError, match="weights do not fit"):
        load_run(path)


@pytest.mark.parametrize(("name", "capped"), [("ETTh1", False), ("ETTm1", True)])
def test_the_ablation_recipe_caps_ettm1s_epochs_and_leaves_etth1s_whole(name, capped):
    """benchmarks/memory_ablation.py caps an epoch's (window, series) pairs to cut ETTm1's share of the grid's
    time; its ETTh1 cells stand only if the cap never binds there (every epoch the full split)."""
    path = SHARED / "data" / "ETT-small" / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    try:
        ablation = importlib.import_module("memory_ablation")
    finally:
        sys.path.pop(0)
    for horizon in (96, 336):
        config = ablation.sweep_config("gru", "analog", path, [horizon], [2019])
        data = load_data(config, horizon)
        cap = data.train.windows_for(config.train.epoch_samples)
        assert (cap is not None) == capped
        if capped:  # about ETTh1's count of windows, a quarter of ETTm1's
            assert cap == config.train.epoch_samples // 7 and cap < len(data.train) / 3.9
