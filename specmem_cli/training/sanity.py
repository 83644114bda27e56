"""Destructive evaluation checks (the published ones): if a model scores as well on shuffled or
noise inputs, or with its memory wiped, that part is not doing what the paper says it does."""

from __future__ import annotations

from pathlib import Path

import torch

from specmem_cli.checkpoint import load_run
from specmem_cli.memory import memory_of, prepare_for_evaluation
from specmem_cli.training.trainer import evaluate_windows


def sanity_checks(
    path: Path, split: str = "test", seed: int = 0, source: Path | None = None
) -> dict[str, dict[str, float] | None]:
    """MSE/MAE under each check; memory checks are None for models without memory, and freezing or
    resetting per batch are None for a memory that reading cannot change (a built analog memory).
    ``source``: the training file where it has moved."""
    run = load_run(path)
    data = run.data(source)
    windows, batch_size, n_outputs = data.split(split), run.config.train.batch_size, data.n_outputs
    model, memory = run.model, memory_of(run.model)
    state = {key: value.clone() for key, value in model.state_dict().items()}
    generator = torch.Generator().manual_seed(seed)

    def score(transform=None):
        model.load_state_dict(state)
        metrics = evaluate_windows(model, windows, batch_size, n_outputs, transform)
        return {"mse": metrics.mse, "mae": metrics.mae}

    def shuffled(inputs, _):
        return inputs[torch.randperm(inputs.shape[0], generator=generator)]

    def noise(inputs, _):
        return torch.randn(inputs.shape, generator=generator)

    results = {"normal": score(), "inputs shuffled in batch": score(shuffled), "inputs replaced by noise": score(noise)}
    if memory is None:
        results.update({"memory zeroed": None, "memory frozen": None, "memory reset per batch": None})
        return results

    def zeroed(inputs, index):
        if index == 0:
            prepare_for_evaluation(model, "reset")
        return inputs

    def frozen(inputs, index):
        if index == 0:
            prepare_for_evaluation(model, "frozen")
        return inputs

    def reset_each(inputs, _):
        memory.reset()
        return inputs

    # a memory that reading cannot change has nothing for freezing or resetting per batch to test
    changes = memory.changes_while_read
    results.update(
        {
            "memory zeroed": score(zeroed),
            "memory frozen": score(frozen) if changes else None,
            "memory reset per batch": score(reset_each) if changes else None,
        }
    )
    model.load_state_dict(state)
    return results
