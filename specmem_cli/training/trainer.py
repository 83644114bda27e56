"""The TSL training protocol, honestly applied.

Adam on MSE, TSL's ``type1`` learning-rate halving, early stopping on the *validation* loss with
the best weights restored, shuffled training batches, ordered evaluation with no dropped
windows (``train.loss`` and ``train.lr_schedule`` may replace TSL's MSE and ``type1``). The test
split is never touched here: :func:`evaluate_windows` is called on it once, after training, by the
run driver. The memory follows the published loop (reset at the start of every epoch); at
evaluation it is either reset (published: empty) or frozen (kept from training). A memory built
from the training trajectory is built and calibrated once, after training, and only under ``frozen``.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from specmem_cli import memory as memory_contract
from specmem_cli.checkpoint import save_tensors
from specmem_cli.config import TrainConfig
from specmem_cli.data.splits import PreparedData
from specmem_cli.data.windows import WindowSet
from specmem_cli.errors import SpecmemError
from specmem_cli.models import forecast
from specmem_cli.models.analog_blend import AnalogBlend
from specmem_cli.training.allocator import reuse_freed_memory


@dataclass(frozen=True)
class Metrics:
    mse: float
    mae: float


@dataclass(frozen=True)
class FitResult:
    best_epoch: int
    epochs_run: int
    steps: int
    best_val_mse: float
    seconds: float
    seconds_per_step: float
    memory: dict | None = None  # what calibrating a built memory decided (validation figures), if any
    device: str = "cpu"
    batch_size: int | None = None  # windows per optimiser step (train.batch_size unless a small split shrank it)


class Reporter:
    """Progress hooks; the default does nothing (library use), the CLI draws rich bars."""

    def start_epoch(self, epoch: int, n_epochs: int, n_batches: int) -> None: ...

    def step(self, loss: float) -> None: ...

    def end_epoch(self, epoch: int, train_loss: float, val_mse: float, lr: float, improved: bool) -> None: ...


def seed_everything(seed: int) -> torch.Generator:
    """Seed every RNG a run touches; returns the generator that orders the training batches."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def learning_rate(base_lr: float, epoch: int, schedule: str) -> float:
    """LR for 0-based ``epoch``. TSL's ``type1`` keeps the first two epochs at ``base_lr`` then halves each
    epoch; ``type3`` (TSL's gentler decay, as TSL applies it) keeps four, then multiplies by 0.9 each epoch."""
    if schedule == "constant":
        return base_lr
    if schedule == "type3":
        return base_lr * 0.9 ** max(0, epoch - 3)
    return base_lr * 0.5 ** max(0, epoch - 1)


def training_device(name: str) -> torch.device:
    """The device ``train.device`` names, refused in one line where this machine has none (a config
    that names a GPU is valid anywhere: a sweep may be planned on a laptop and run on a GPU node)."""
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SpecmemError(
                f"train.device={name}: this machine has no CUDA GPU that torch {torch.__version__} can use; "
                "train with --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise SpecmemError(
                f"train.device={name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0"
            )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise SpecmemError(f"train.device={name}: Apple's MPS backend is not available here; train with --device cpu")
    return device


def model_device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def on_device(device: torch.device, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """``tensors`` moved to ``device`` (batches are assembled on the CPU, next to the data)."""
    return tuple(t.to(device) for t in tensors)


def training_loss(prediction: torch.Tensor, target: torch.Tensor, loss: str) -> torch.Tensor:
    """``mse`` (TSL's), or ``huber`` (squared below one standard deviation, absolute above: large errors
    in a shifting series pull the fit less). Evaluation is MSE/MAE either way."""
    if loss == "huber":
        return nn.functional.smooth_l1_loss(prediction, target, beta=1.0)
    return nn.functional.mse_loss(prediction, target)


log = logging.getLogger("specmem_cli.training")

EVALUATION_ROWS = 65_536  # window-series rows scored together: bounds evaluation's memory on wide data


def evaluation_batch(batch_size: int, windows: WindowSet) -> int:
    """Windows scored together: the training batch, fewer where the data is wide (862 series x 256
    windows is 220k rows, and every temporary of a forward pass would be that tall). Each window's
    forecast is the same either way; only the peak memory changes."""
    return min(batch_size, max(1, EVALUATION_ROWS // windows.series.shape[1]))


MIN_TRAINING_BATCH = 8  # below this a step's gradient is mostly one window's noise


def training_batch(config: TrainConfig, windows: int) -> int:
    """The windows one optimiser step sees: ``train.batch_size``, or fewer where an epoch of ``windows`` would
    take fewer than ``train.min_steps_per_epoch`` steps (but never fewer than :data:`MIN_TRAINING_BATCH`).

    Why: epochs, the learning-rate schedule and early stopping all count passes over the data, so the same
    recipe on a small training split (national_illness: about 600 windows, 3 batches of 256) takes 90 steps
    in 30 epochs, and its maps stop while still improving. A smaller batch there gives the steps back
    without changing the recipe on larger files.
    """
    if config.min_steps_per_epoch is None:
        return config.batch_size
    return min(config.batch_size, max(MIN_TRAINING_BATCH, windows // config.min_steps_per_epoch))


def horizon_of(prediction: torch.Tensor, pred_len: int, n_outputs: int) -> torch.Tensor:
    """The last ``pred_len`` steps of the last ``n_outputs`` channels: what is scored. The forecast itself
    where it is exactly that, as it is for most models: even a whole-tensor slice makes the backward pass
    allocate a zero-filled gradient and copy into it (a sixth of a klcycle step on weather h720)."""
    if prediction.shape[1:] == (pred_len, n_outputs):
        return prediction
    return prediction[:, -pred_len:, -n_outputs:]


@torch.no_grad()
def predict_windows(model: nn.Module, windows: WindowSet, batch_size: int, n_outputs: int, transform=None):
    """Yield ``(prediction, target, inputs)`` batches (``[B, pred_len, n_outputs]`` twice, then the
    ``[B, seq_len, C]`` inputs the model read) in window order, in eval mode.

    ``transform(x, batch_index)`` may replace the inputs (the sanity checks use it).
    """
    model.eval()
    device = model_device(model)
    for index, batch in enumerate(windows.batches(evaluation_batch(batch_size, windows))):
        inputs, targets, positions = on_device(device, *batch)
        if transform is not None:
            inputs = transform(inputs, index)
        prediction = horizon_of(forecast(model, inputs, positions), windows.pred_len, n_outputs)
        yield prediction, targets[:, -windows.pred_len :, :], inputs


def evaluate_windows(
    model: nn.Module, windows: WindowSet, batch_size: int, n_outputs: int, transform=None, each_batch=None
) -> Metrics:
    """MSE and MAE over every window, step and output channel (scaled units), summed in float64.

    ``each_batch(prediction, target, inputs)`` also sees every batch (interval calibration and scoring
    ride on the same pass)."""
    squared = absolute = 0.0
    count = 0
    for prediction, target, inputs in predict_windows(model, windows, batch_size, n_outputs, transform):
        if each_batch is not None:
            each_batch(prediction, target, inputs)
        error = (prediction - target).double()
        squared += float((error**2).sum())
        absolute += float(error.abs().sum())
        count += error.numel()
    return Metrics(squared / count, absolute / count)


TRAINING_STATE = "training_state.pt"


@dataclass(frozen=True)
class Resume:
    """Where :func:`fit` saves its whole state at the end of every epoch, and the identity of the run's
    settings: a state saved under other settings is never continued."""

    path: Path
    identity: str


def fit(
    model: nn.Module,
    data: PreparedData,
    config: TrainConfig,
    seed: int,
    reporter: Reporter | None = None,
    resume: Resume | None = None,
    with_memory: bool = True,
) -> FitResult:
    """Train with early stopping on validation; leaves ``model`` holding the best epoch's state.

    An analog memory is then built and gated (:func:`fit_memory`) unless ``with_memory`` is false: a run
    comparing several networks builds it once, for the one it keeps.

    With ``resume``, the model, optimiser, schedule position, early-stopping state and every RNG are
    saved (atomically) after each epoch, and a run interrupted between epochs continues from the last
    saved one: its metrics equal an uninterrupted run's.
    """
    reporter = reporter or Reporter()
    if config.reuse_freed_memory:
        reuse_freed_memory()
    generator = seed_everything(seed)
    device = training_device(config.device)
    model.to(device)
    # fused=True: one kernel over all parameters instead of a Python loop (0.9 s -> 0.07 s per
    # step on the 157M-parameter paper model); same update rule.
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, fused=True)
    pred_len, n_outputs = data.train.pred_len, data.n_outputs
    progress = _Progress()
    saved = _saved_state(resume) if resume is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        progress = _Progress(**saved["progress"])
        _restore_rngs(saved["rng"], generator)
        log.info("note: resuming %s after epoch %d", resume.path.parent.name, progress.next_epoch)
    best_state = saved["best_state"] if saved is not None else None
    start = time.perf_counter() - progress.seconds
    windows_per_epoch = data.train.windows_for(config.epoch_samples)
    batch_size = training_batch(config, windows_per_epoch or len(data.train))
    for epoch in range(progress.next_epoch, config.epochs if not progress.done else progress.next_epoch):
        lr = learning_rate(config.lr, epoch, config.lr_schedule)
        for group in optimizer.param_groups:
            group["lr"] = lr
        memory_contract.start_epoch(model)
        model.train()
        reporter.start_epoch(epoch, config.epochs, data.train.n_batches(batch_size, windows_per_epoch))
        epoch_start, losses = time.perf_counter(), []
        for batch in data.train.batches(batch_size, shuffle=True, generator=generator, limit=windows_per_epoch):
            inputs, targets, positions = on_device(device, *batch)
            optimizer.zero_grad(set_to_none=True)
            prediction = horizon_of(forecast(model, inputs, positions), pred_len, n_outputs)
            loss = training_loss(prediction, targets[:, -pred_len:, :], config.loss)
            loss.backward()
            optimizer.step()
            progress.steps += 1
            losses.append(float(loss.detach()))
            reporter.step(losses[-1])
            if config.max_steps is not None and progress.steps >= config.max_steps:
                break
        progress.train_seconds += time.perf_counter() - epoch_start
        progress.epochs_run += 1
        memory_contract.prepare_for_evaluation(model, config.memory_at_eval)
        val = evaluate_windows(model, data.val, config.batch_size, n_outputs).mse
        improved = val < progress.best_val
        if improved:
            progress.best_val, progress.best_epoch, progress.stale = val, epoch, 0
            best_state = {key: value.detach().clone() for key, value in model.state_dict().items()}
        else:
            progress.stale += 1
        memory_contract.resume_training(model)
        progress.next_epoch = epoch + 1
        progress.done = (
            progress.stale >= config.patience
            or (config.max_steps is not None and progress.steps >= config.max_steps)
            or progress.next_epoch == config.epochs
        )
        if resume is not None:
            progress.seconds = time.perf_counter() - start
            _save_state(resume, model, optimizer, best_state, progress, generator)
        reporter.end_epoch(epoch, float(np.mean(losses)), val, lr, improved)
        if progress.done:
            break
    if best_state is None:
        raise SpecmemError("training diverged: the validation loss is not a number; lower train.lr")
    model.load_state_dict(best_state)
    memory = fit_memory(model, data, config) if with_memory else None
    return FitResult(
        progress.best_epoch,
        progress.epochs_run,
        progress.steps,
        progress.best_val,
        time.perf_counter() - start,
        progress.train_seconds / max(progress.steps, 1),
        memory,
        str(device),
        batch_size,
    )


def fit_memory(model: nn.Module, data: PreparedData, config: TrainConfig) -> dict | None:
    """Build a trained network's analog memory and decide on validation whether to read it (what that
    calibration decided; None for a model without one, or one whose memory is not read frozen)."""
    if config.memory_at_eval != "frozen" or not isinstance(model, AnalogBlend):
        return None
    return model.calibrate_memory(data.train, data.val, data.n_outputs, evaluation_batch(config.batch_size, data.train))


@dataclass
class _Progress:
    """Where a fit stands after an epoch: the schedule's position and the early-stopping state."""

    next_epoch: int = 0
    done: bool = False
    steps: int = 0
    epochs_run: int = 0
    train_seconds: float = 0.0
    seconds: float = 0.0
    best_val: float = float("inf")
    best_epoch: int = 0
    stale: int = 0


def _save_state(resume: Resume, model, optimizer, best_state, progress: _Progress, generator) -> None:
    numpy_state = np.random.get_state()
    state = {
        "identity": resume.identity,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "best_state": best_state,
        "progress": dataclasses.asdict(progress),
        "rng": {
            "batches": generator.get_state(),
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": (numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]),
            "python": random.getstate(),
        },
    }
    save_tensors(resume.path, state, "the training state")


def _saved_state(resume: Resume) -> dict | None:
    """The state saved after the last finished epoch, or None (no file, an unreadable one, other settings)."""
    if not resume.path.is_file():
        return None
    try:
        state = torch.load(resume.path, map_location="cpu", weights_only=True)
    except Exception:  # a damaged file is a fresh start, not an error: nothing finished is lost
        log.info("note: %s is unreadable; training %s from the start", resume.path, resume.path.parent.name)
        return None
    if not isinstance(state, dict) or state.get("identity") != resume.identity:
        log.info("note: %s was saved under other settings; training from the start", resume.path)
        return None
    return state


def _restore_rngs(rng: dict, generator: torch.Generator) -> None:
    generator.set_state(rng["batches"])
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    name, keys, *rest = rng["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    random.setstate(rng["python"])
