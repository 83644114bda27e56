"""``train.device``: validated when the config is read, refused in one line where the machine lacks it,
and, where a GPU exists, every model trains there and its checkpoint scores the same on the CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from typer.testing import CliRunner

from specmem_cli.checkpoint import load_checkpoint
from specmem_cli.cli import app
from specmem_cli.config import apply_overrides, model_preset
from specmem_cli.errors import ConfigError
from specmem_cli.models import MODELS, hyper_parameters
from specmem_cli.training.run import evaluate_run
from specmem_cli.training.sweep import run_sweep
from tests.conftest import tiny_config
from tests.test_memory_variants import BACKBONES
from tests.test_models import SMALL

runner = CliRunner()
HAS_CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("name", ["tpu", "gpu", "cuda:x", ""])
def test_an_unknown_device_is_refused_when_the_config_is_read(name):
    with pytest.raises(ConfigError, match=r"train\.device must be one of cpu, cuda, mps"):
        tiny_config(train={"device": name})


def test_a_valid_device_name_is_accepted_on_any_machine():
    """A sweep may be planned on a laptop and trained on a GPU node: naming a GPU is not an error yet."""
    assert tiny_config(train={"device": "cuda:1"}).train.device == "cuda:1"


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a CUDA GPU")
def test_training_on_a_missing_gpu_fails_in_one_line_before_any_run(tmp_path):
    out = tmp_path / "runs"
    result = runner.invoke(
        app, ["train", "--device", "cuda", "--out", str(out), "-q", "--set", "train.max_steps=2", "train.epochs=1"]
    )
    assert result.exit_code == 1
    message = result.output.strip()
    assert message.startswith("error: train.device=cuda: this machine has no CUDA GPU") and "--device cpu" in message
    assert "Traceback" not in result.output
    assert not list(out.glob("*/metrics.json")) and not list(out.glob("*/checkpoint.pt"))


def small_run_config(name: str, device: str):
    """``name`` at test size on the tiny synthetic data set, a few steps on ``device``."""
    known = hyper_parameters(name)
    params = {k: v for k, v in model_preset(name).items() if k in known}
    params.update({k: v for k, v in SMALL.items() if k in known})
    config = tiny_config(train={"device": device, "max_steps": 4, "epochs": 2})
    config = dataclasses.replace(config, model={"name": name, **params})
    return apply_overrides(config, ["train.memory_at_eval=frozen"]) if name == "klcycle" else config


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_trains_on_the_gpu_and_scores_the_same_on_the_cpu(name, tmp_path):
    record = run_sweep(small_run_config(name, "cuda"), tmp_path)[0]
    checkpoint = load_checkpoint(record.run_dir)
    assert all(tensor.device.type == "cpu" for tensor in checkpoint.state_dict.values())
    on_cpu = evaluate_run(record.run_dir)
    assert on_cpu.mse == pytest.approx(record.mse, rel=2e-3)
    assert on_cpu.mae == pytest.approx(record.mae, rel=2e-3)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("memory", ["spectral", "analog"])
@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_trains_with_each_memory_on_the_gpu_and_scores_the_same_on_the_cpu(name, memory, tmp_path):
    """The memory ablation trains its grid on a GPU where one is lent: each memory must build, blend and
    gate there, and its checkpoint must read back on a CPU."""
    config = apply_overrides(small_run_config(name, "cuda"), [f"model.memory={memory}"])
    record = run_sweep(config, tmp_path)[0]
    on_cpu = evaluate_run(record.run_dir)
    assert on_cpu.mse == pytest.approx(record.mse, rel=2e-3)


@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_the_default_head_choice_and_its_mix_run_on_the_gpu_and_score_the_same_on_the_cpu(tmp_path):
    """``head: auto`` trains both maps and weighs their forecasts on validation: all of it on the GPU."""
    config = apply_overrides(small_run_config("klcycle", "cuda"), ["model.head=auto"])
    record = run_sweep(config, tmp_path)[0]
    on_cpu = evaluate_run(record.run_dir)
    assert on_cpu.mse == pytest.approx(record.mse, rel=2e-3)
