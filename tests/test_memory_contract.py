"""The memory contract (specmem_cli.memory.contract): each policy does what it says, for both memories."""

from __future__ import annotations

import pytest
import torch

from specmem_cli.memory import ForecastMemory, SpectralMemory, prepare_for_evaluation, resume_training, start_epoch
from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.models import build_model

ROWS = torch.randn(40, 16, generator=torch.Generator().manual_seed(0))


def written_spectral() -> SpectralMemory:
    memory = SpectralMemory(16, memory_depth=32, n_components=3, memory_tokens=2)
    memory.write(ROWS[:20])
    return memory


def built_analog() -> AnalogMemory:
    memory = AnalogMemory(12, 4, key_modes=3, value_modes=2)
    series = torch.randn(200, generator=torch.Generator().manual_seed(1))
    windows = series.unfold(0, 16, 1)
    memory.build(windows[:, :12], windows[:, 12:], torch.arange(len(windows)))
    return memory


@pytest.mark.parametrize("make", [written_spectral, built_analog])
def test_reset_policy_empties_the_memory(make):
    memory = make()
    assert isinstance(memory, ForecastMemory) and memory.ready
    memory.prepare_for_evaluation("reset")
    assert not memory.ready


def test_frozen_policy_fixes_a_written_memory_until_training_resumes():
    memory = written_spectral()
    memory.prepare_for_evaluation("frozen")
    fixed = memory().clone()
    memory.write(ROWS[20:])  # writes during evaluation change nothing read
    torch.testing.assert_close(memory(), fixed)
    memory.resume_training()
    assert not torch.allclose(memory(), fixed)


def test_a_built_memory_cannot_change_while_read_so_frozen_keeps_it_as_built():
    memory = built_analog()
    assert not memory.changes_while_read and written_spectral().changes_while_read
    before = {key: value.clone() for key, value in memory.state_dict().items()}
    memory.prepare_for_evaluation("frozen")
    memory.read(torch.randn(5, 12))
    after = memory.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_start_of_epoch_follows_the_published_loop_for_a_written_memory():
    spectral, analog = written_spectral(), built_analog()
    spectral.start_epoch()
    analog.start_epoch()  # built after training: an epoch never touches it
    assert not spectral.ready and analog.ready


def test_model_level_calls_reach_the_memory_and_skip_models_without_one():
    model = build_model("gru", 24, 6, 2, {"d_model": 16, "memory": "spectral", "memory_depth": 32, "n_components": 2})
    model.memory.write(ROWS[:20, :16])
    prepare_for_evaluation(model, "frozen")
    assert bool(model.memory.is_frozen)
    resume_training(model)
    assert not bool(model.memory.is_frozen)
    start_epoch(model)
    assert not model.memory.ready
    without = build_model("dlinear", 24, 6, 2, {})
    prepare_for_evaluation(without, "reset")  # nothing to do, and no error
    with pytest.raises(ValueError, match="unknown memory policy"):
        prepare_for_evaluation(model, "forget")
