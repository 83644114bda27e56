"""One (horizon, seed) run: its directory, training, the checkpoint, the test score, and its record.

A run directory holds ``config.yaml`` (this run's settings), ``checkpoint.pt``, ``metrics.json``
and ``log.txt``. ``metrics.json`` is written last, after the checkpoint, so its presence next to a
complete checkpoint is what "finished" means when a sweep is rerun.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch import nn

from specmem_cli.checkpoint import LoadedRun, RunCheckpoint, atomic_write, load_run, save_checkpoint
from specmem_cli.config import (
    ExperimentConfig,
    RunSpec,
    config_from_dict,
    dataset_label,
    load_data,
    updated,
    with_protocol,
)
from specmem_cli.data import PreparedData
from specmem_cli.data.registry import registry, resolve_data_path
from specmem_cli.errors import CheckpointError, SpecmemError
from specmem_cli.intervals import (
    DEFAULT_LEVELS,
    CalibrationCollector,
    IntervalCalibration,
    IntervalScorer,
    check_levels,
)
from specmem_cli.memory import prepare_for_evaluation
from specmem_cli.models import (
    build_model,
    check_parameters,
    hyper_parameters,
    open_choices,
    resolve_step_parameters,
)
from specmem_cli.models.published import load_published, published_hyper_parameters
from specmem_cli.training.trainer import (
    TRAINING_STATE,
    Reporter,
    Resume,
    evaluate_windows,
    fit,
    fit_memory,
    model_device,
    predict_windows,
    seed_everything,
)

log = logging.getLogger("specmem_cli.training")


@dataclass(frozen=True)
class RunRecord:
    model: str
    dataset: str
    pred_len: int
    seed: int
    mse: float
    mae: float
    run_dir: str
    seconds: float
    reused: bool = False
    intervals: dict | None = None  # IntervalScorer.result() on the same split, if the run is calibrated

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def fingerprint(config: ExperimentConfig) -> str:
    return settings_identity(config.to_dict())


def meaningful_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """A run's settings (a config dict, as stored in its ``config.yaml``) that can change what its numbers
    mean. Thread count, allocator and device change rounding only, so a sweep can resume with other
    parallelism or hardware; a model parameter left out counts as its default (a preset need not repeat
    defaults); keys specmem has removed are dropped, so runs trained before still match."""
    config = config_from_dict(raw, stored=True)
    settings = config.to_dict()
    for key in ("threads", "reuse_freed_memory", "device"):
        settings["train"].pop(key)
    settings["model"] = {**hyper_parameters(config.model_name), **settings["model"]}
    return settings


def settings_identity(raw: dict[str, Any]) -> str:
    """Identity of a run's :func:`meaningful_settings`."""
    text = json.dumps(meaningful_settings(raw), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def settings_changes(stored: dict[str, Any], wanted: dict[str, Any], shown: int = 4) -> str:
    """The meaningful settings two config dicts differ in, as ``data.target None -> 'OT'`` (the first few)."""
    before, after = meaningful_settings(stored), meaningful_settings(wanted)
    changes = []
    for section in sorted(set(before) | set(after)):
        old, new = before.get(section), after.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            changes += [
                f"{section}.{key} {old.get(key)!r} -> {new.get(key)!r}"
                for key in sorted(set(old) | set(new), key=str)
                if json.dumps(old.get(key), default=str) != json.dumps(new.get(key), default=str)
            ]
        elif json.dumps(old, default=str, sort_keys=True) != json.dumps(new, default=str, sort_keys=True):
            changes.append(f"{section} {old!r} -> {new!r}")
    more = f" and {len(changes) - shown} more" if len(changes) > shown else ""
    return ", ".join(changes[:shown]) + more


def train_run(
    run: RunSpec, run_dir: Path, data: PreparedData, reporter: Reporter, state_path: Path | None = None
) -> RunRecord:
    """Train, checkpoint, evaluate the test split once, then write metrics (the 'finished' mark).

    The training state is saved after every epoch (``state_path``, by default in ``run_dir``), so a run
    interrupted between epochs continues from its last finished epoch when it is run again; a run that
    fails before finishing one epoch leaves no directory behind. Only finished runs count as results.
    """
    state_path = state_path or run_dir / TRAINING_STATE
    config = run.config
    _fresh_run_dir(run_dir, config)
    choices = open_choices(config.model_name, config.model_params)
    states = _state_paths(state_path, choices)
    try:
        seed_everything(run.seed)
        params = resolve_step_parameters(
            config.model_name, config.model_params, data.time_axis.step, data.training_rows()
        )
        started = time.perf_counter()
        if choices == [{}]:
            model = _built(config, run, data, params)
            result = fit(model, data, config.train, run.seed, reporter, Resume(states[0], fingerprint(config)))
            fit_log = asdict(result)
        else:
            model, params, fit_log = _fit_choosing(run, data, params, choices, states, reporter)
        record = _finish_run(model, run, params, data, run_dir, fit_log, time.perf_counter() - started)
    except BaseException:
        if not (run_dir / "metrics.json").is_file() and not any((run_dir / path.name).is_file() for path in states):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    for path in states:  # finished: the metrics and checkpoint are the run now
        path.unlink(missing_ok=True)
    return record


def _state_paths(state_path: Path, choices: list[dict]) -> list[Path]:
    """One epoch-state file per network a run trains (``training_state.head-mlp.pt`` for a choice)."""
    if choices == [{}]:
        return [state_path]
    return [
        state_path.with_name(
            f"{state_path.stem}.{'.'.join(f'{key}-{value}' for key, value in choice.items())}{state_path.suffix}"
        )
        for choice in choices
    ]


def _built(config: ExperimentConfig, run: RunSpec, data: PreparedData, params: dict[str, Any]) -> nn.Module:
    model = build_model(config.model_name, config.data.seq_len, run.pred_len, data.n_inputs, params)
    _announce(model, config, data)
    return model


def _fit_choosing(
    run: RunSpec, data: PreparedData, params: dict, choices: list[dict], states: list[Path], reporter: Reporter
) -> tuple[nn.Module, dict, dict]:
    """Train one network per choice a config left ``auto`` (``model.head``), each from the same seed, and keep
    the one with the lowest validation MSE (the first on a tie), or the mix of the two maps and the last value
    where that is lower still (:func:`_mix`); its memory alone is then built and gated. Returns the model,
    its resolved parameters and its fit log, which lists every choice's validation MSE (and the mix's)."""
    config = run.config
    name = f"{config.model_name} pl={run.pred_len} seed={run.seed}"
    tried = []
    for index, (choice, state) in enumerate(zip(choices, states, strict=True), start=1):
        log.info(
            "note: %s: training %s (%d of %d; the lowest validation MSE is kept)",
            name,
            _label(choice),
            index,
            len(choices),
        )
        seed_everything(run.seed)
        model = _built(config, run, data, {**params, **choice})
        identity = f"{fingerprint(config)}:{json.dumps(choice, sort_keys=True)}"
        result = fit(model, data, config.train, run.seed, reporter, Resume(state, identity), with_memory=False)
        tried.append((result.best_val_mse, choice, model, result))
    best_val, choice, model, result = min(tried, key=lambda entry: entry[0])
    scores = ", ".join(f"{_label(tried_choice)} {val:.4f}" for val, tried_choice, _, _ in tried)
    validation = [{**tried_choice, "mse": val} for val, tried_choice, _, _ in tried]
    mix = _mix(run, data, {**params, **choice}, {tried_choice.get("head"): net for _, tried_choice, net, _ in tried})
    if mix is not None:  # recorded either way; kept only where it is lower than both maps
        mixed, shares, mix_val = mix
        validation.append({"head": "mix", **shares, "mse": mix_val})
        scores += (
            f"; the mix (linear {shares['linear_share']:.2f}, MLP {shares['mlp_share']:.2f}, last value "
            f"{shares['last_value_share']:.2f}) {mix_val:.4f}; the last value alone {shares['last_value_mse']:.4f}"
        )
        if mix_val < best_val:
            model, best_val, choice = mixed, mix_val, {**choice, "head": "mix"}
            result = replace(result, best_val_mse=best_val)
    log.info("note: %s: kept %s (validation MSE %s)", name, _label(choice), scores)
    fit_log = asdict(replace(result, memory=fit_memory(model, data, config.train)))
    fit_log["choice"] = {"chosen": choice, "validation_mse": validation}
    return model, {**params, **choice}, fit_log


def _mix(run: RunSpec, data: PreparedData, params: dict, networks: dict) -> tuple[nn.Module, dict, float] | None:
    """For a model that can mix its maps (klcycle: ``head: mix``): the trained linear and MLP networks'
    forecasts and the last value, weighted to the lowest validation MSE, as ``(network, its shares and the
    last value's own validation MSE, the mix's validation MSE)``; None for any other model or choice.

    The MSE of a weighted mean of forecasts is a quadratic form in the weights over the Gram matrix of
    their validation errors, so one pass (a 3 x 3 matrix of sums) gives the best weights on the simplex
    (:func:`simplex_weights`).
    """
    config = run.config
    if set(networks) != {"linear", "mlp"} or not hasattr(networks["linear"], "mix_from"):
        return None
    device = model_device(networks["linear"])
    gram = torch.zeros(3, 3, dtype=torch.float64, device=device)  # linear, MLP, last value
    count = 0
    batch, outputs = config.train.batch_size, data.n_outputs
    for (linear, target, inputs), (mlp, _, _) in zip(
        predict_windows(networks["linear"], data.val, batch, outputs),
        predict_windows(networks["mlp"], data.val, batch, outputs),
        strict=True,
    ):
        last = inputs[:, -1:, -outputs:].expand_as(target)  # each output series' last value, repeated
        errors = torch.stack([linear - target, mlp - target, last - target]).double().flatten(1)
        gram += errors @ errors.T
        count += target.numel()
    gram = gram.cpu().numpy()
    weights = simplex_weights(gram)
    shares = {
        "linear_share": float(weights[0]),
        "mlp_share": float(weights[1]),
        "last_value_share": float(weights[2]),
        "last_value_mse": float(gram[2, 2] / count),
    }
    model = _built(config, run, data, {**params, "head": "mix"}).to(device)
    model.mix_from(networks["linear"], networks["mlp"], shares["linear_share"], shares["last_value_share"])
    return model, shares, float(weights @ gram @ weights / count)


def simplex_weights(gram: np.ndarray) -> np.ndarray:
    """The weights ``w >= 0`` with ``sum(w) = 1`` that minimise ``w' G w``: with ``G`` the Gram matrix of
    some forecasts' errors, the weighted mean of those forecasts with the lowest squared error.

    The problem is convex and small, so every support is tried: on a support ``S`` the minimum over the
    affine hull of its members is ``G_S^-1 1 / (1' G_S^-1 1)``, and the optimum is the lowest such point with
    no negative weight. A single member is tried first and kept on a tie (the first member, on equal ones).
    """
    size = len(gram)
    best = min(range(size), key=lambda member: gram[member, member])
    weights = np.eye(size)[best]
    lowest = gram[best, best]
    for count in range(2, size + 1):
        for support in itertools.combinations(range(size), count):
            try:
                direction = np.linalg.solve(gram[np.ix_(support, support)], np.ones(count))
            except np.linalg.LinAlgError:  # members that err identically: a smaller support covers them
                continue
            if direction.sum() <= 0 or (direction < 0).any():
                continue
            candidate = np.zeros(size)
            candidate[list(support)] = direction / direction.sum()
            if (value := candidate @ gram @ candidate) < lowest:
                weights, lowest = candidate, value
    return weights


def _label(choice: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in choice.items())


LARGE_MODEL = 10_000_000  # parameters beyond which a CPU step takes seconds: say so before it starts


def _announce(model: nn.Module, config: ExperimentConfig, data: PreparedData) -> None:
    size = sum(p.numel() for p in model.parameters())
    if size > LARGE_MODEL and config.train.device == "cpu":
        log.info(
            "note: %s has %s parameters: on a CPU each training step takes seconds and an epoch of %s "
            "windows can take an hour (the step bar shows the pace; --device cuda trains on a GPU)",
            config.model_name,
            f"{size:,}",
            f"{len(data.train):,}",
        )


def import_published_run(weights: Path, config: ExperimentConfig, n_heads: int, run_dir: Path) -> RunRecord:
    """Turn weights trained with the published TSL code into a finished specmem run (tested once)."""
    if not weights.is_file():
        raise CheckpointError(f"{weights}: no such file; give the checkpoint.pth that TSL saved")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a file that is not a tensor archive
        raise CheckpointError(
            f"{weights}: not a readable state dict ({type(exc).__name__}); give TSL's checkpoint.pth"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{weights}: not a state dict; give the checkpoint.pth that TSL saved")
    shape = published_hyper_parameters(state, n_heads)
    architecture = {k: v for k, v in shape.items() if k not in ("seq_len", "pred_len")}
    published = replace(with_protocol(config), model={**config.model, "name": "klmemory", **architecture})
    check_parameters("klmemory", published.model_params)
    sweep = updated(published, data={"seq_len": shape["seq_len"]}, source=str(weights))
    run = RunSpec.of(sweep, shape["pred_len"], sweep.seeds[0])
    data = load_data(run.config, run.pred_len)
    model = build_model("klmemory", shape["seq_len"], run.pred_len, data.n_inputs, run.config.model_params)
    load_published(model, state)
    _fresh_run_dir(run_dir, run.config)
    return _finish_run(model, run, run.config.model_params, data, run_dir, {"imported_from": str(weights)}, 0.0)


def _fresh_run_dir(run_dir: Path, config: ExperimentConfig) -> None:
    """An empty ``run_dir`` but for a saved training state (which :func:`fit` continues only if it was
    saved under the same settings): other leftovers of an interrupted run are never trusted."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for path in run_dir.iterdir():
        if not (path.name.startswith(Path(TRAINING_STATE).stem) and path.suffix == Path(TRAINING_STATE).suffix):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _finish_run(
    model: nn.Module,
    run: RunSpec,
    params: dict[str, Any],
    data: PreparedData,
    run_dir: Path,
    fit_log: dict,
    seconds: float,
) -> RunRecord:
    """Calibrate intervals on validation, checkpoint (with the model's resolved ``params``), score the test
    split once (points and intervals), write the metrics."""
    config = run.config
    if not (run_dir / "config.yaml").is_file():
        raise SpecmemError(f"{run_dir} was deleted while its run trained; nothing was saved for it, rerun to train it")
    prepare_for_evaluation(model, config.train.memory_at_eval)  # what the run is scored and saved with
    calibration = calibrate(model, data, config.train.batch_size)
    test, intervals = _score_test(model, data, config.train.batch_size, calibration)
    save_checkpoint(
        run_dir / "checkpoint.pt", _checkpoint(model, run, params, data, _adapted(calibration, intervals, data))
    )
    record = RunRecord(
        config.model_name,
        dataset_label(config.data.name),
        run.pred_len,
        run.seed,
        test.mse,
        test.mae,
        str(run_dir),
        round(seconds, 3),
        intervals=intervals,
    )
    log = {**fit_log, "test_mse": test.mse, "test_mae": test.mae, "windows": len(data.test)}
    (run_dir / "log.txt").write_text(json.dumps(log, indent=2) + "\n")
    document = {
        "data_sha256": data.table.sha256,
        "record": record.to_dict(),
        "fit": fit_log,
    }
    atomic_write(run_dir / "metrics.json", lambda temp: temp.write_text(json.dumps(document, indent=2) + "\n"))
    return record


def calibrate(model: nn.Module, data: PreparedData, batch_size: int) -> IntervalCalibration:
    """The model's interval calibration from its validation windows (see :mod:`specmem_cli.intervals`)."""
    collector = CalibrationCollector(data.val.pred_len, data.n_outputs)
    evaluate_windows(model, data.val, batch_size, data.n_outputs, each_batch=collector.add)
    return collector.finish()


def _score_test(model: nn.Module, data: PreparedData, batch_size: int, calibration: IntervalCalibration):
    """The test split's point metrics and its interval scores at :data:`DEFAULT_LEVELS`, in one pass, the levels
    adapting as the test actuals arrive (the points alone where too few validation windows calibrate those
    levels: an 80% interval of zero width is no interval)."""
    if calibration.beyond(DEFAULT_LEVELS):
        low, high = calibration.resolution()
        log.info(
            "note: %d validation window(s) cannot calibrate the %s levels that train scores; intervals are not "
            "scored (forecast --quantiles takes levels within [%.4g, %.4g])",
            calibration.windows,
            "/".join(map(str, DEFAULT_LEVELS)),
            low,
            high,
        )
        return evaluate_windows(model, data.test, batch_size, data.n_outputs), None
    scorer = IntervalScorer(calibration, np.asarray(DEFAULT_LEVELS))
    test = evaluate_windows(model, data.test, batch_size, data.n_outputs, each_batch=scorer.add)
    return test, scorer.result()


def _adapted(calibration: IntervalCalibration, intervals: dict | None, data: PreparedData) -> IntervalCalibration:
    """The calibration with the levels scoring the test split adapted to, for forecasts from a file's end (one
    that reaches the test split's last actual, so that no forecast reads levels moved by later values)."""
    if intervals is None:
        return calibration
    last_actual = data.table.dates[data.borders[2][1] - 1]
    return calibration.with_adapted(intervals["adapted_levels"], last_actual.value)


def _checkpoint(
    model: nn.Module, run: RunSpec, params: dict[str, Any], data: PreparedData, calibration: IntervalCalibration
) -> RunCheckpoint:
    config = run.config
    source = resolve_data_path(config.data.name, registry(config.datasets))
    return RunCheckpoint(
        model_name=config.model_name,
        model_params={"seq_len": config.data.seq_len, "pred_len": run.pred_len, "n_channels": data.n_inputs} | params,
        state_dict={key: value.detach().cpu() for key, value in model.state_dict().items()},
        config=config.to_dict(),
        data_path=str(source.resolve()) if source is not None else None,
        data_sha256=data.table.sha256,
        scaler_mean=torch.from_numpy(data.scaler.mean_),
        scaler_scale=torch.from_numpy(data.scaler.scale_),
        columns=list(data.columns),
        table_columns=list(data.table.columns),
        output_columns=list(data.output_columns),
        # rows taken in order have no clock column to look for in a forecast's input: it is read the same way
        date_column=None if data.table.date_reading == "row order" else data.table.date_column,
        reading=asdict(data.table.reading),
        layout=data.table.layout.to_state() if data.table.layout else None,
        time_axis=data.time_axis.to_state(),
        memory_at_eval=config.train.memory_at_eval,
        intervals=calibration.to_state(),
    )


def evaluate_run(
    path: Path, split: str = "test", levels: list[float] | None = None, source: Path | None = None
) -> RunRecord:
    """Recompute a finished run's metrics on ``split`` from its checkpoint alone, with its intervals at
    ``levels`` (default :data:`DEFAULT_LEVELS`, and then only if the run is calibrated); ``source`` is the
    training file where it has moved (it must hold the same content)."""
    run = load_run(path)
    data = run.data(source)
    scorer = _scorer(run, levels)
    windows = data.split(split)
    each_batch = scorer.add if scorer is not None else None
    metrics = evaluate_windows(run.model, windows, run.config.train.batch_size, data.n_outputs, each_batch=each_batch)
    return _record(run, metrics.mse, metrics.mae, scorer.result() if scorer is not None else None)


def _scorer(run: LoadedRun, levels: list[float] | None) -> IntervalScorer | None:
    if levels is None and run.checkpoint.intervals is None:
        return None
    calibration = run.calibration()
    if levels is None and calibration.beyond(DEFAULT_LEVELS):
        return None  # too few validation windows for the default levels, as when the run was trained
    return IntervalScorer(calibration, check_levels(levels or DEFAULT_LEVELS, calibration))


def _record(run: LoadedRun, mse: float, mae: float, intervals: dict | None) -> RunRecord:
    return RunRecord(
        run.config.model_name,
        dataset_label(run.config.data.name),
        run.spec.pred_len,
        run.spec.seed,
        mse,
        mae,
        str(run.path.parent),
        0.0,
        intervals=intervals,
    )


def calibrate_run(path: Path, source: Path | None = None) -> RunRecord:
    """Give a run saved before intervals existed (or recalibrate one) its interval calibration, from its
    training file's validation split (``source``: that file where it has moved); the checkpoint is rewritten
    atomically (its weights untouched), and a finished run's ``metrics.json`` gains the test split's interval
    scores. Returns the test record."""
    run = load_run(path)
    data = run.data(source)
    calibration = calibrate(run.model, data, run.config.train.batch_size)
    test, intervals = _score_test(run.model, data, run.config.train.batch_size, calibration)
    save_checkpoint(run.path, replace(run.checkpoint, intervals=_adapted(calibration, intervals, data).to_state()))
    record = _record(run, test.mse, test.mae, intervals)
    metrics_path = run.path.parent / "metrics.json"
    if metrics_path.is_file():
        document = json.loads(metrics_path.read_text())
        document["record"]["intervals"] = record.intervals
        text = json.dumps(document, indent=2) + "\n"
        atomic_write(metrics_path, lambda temp: temp.write_text(text))
    return record
