"""Sweeps of (horizon, seed) runs: run directories, checkpoints, metrics, resume, evaluation.

Each run directory holds ``config.yaml`` (this run's settings), ``checkpoint.pt``,
``metrics.json`` and ``log.txt``. ``metrics.json`` is written last, after the checkpoint, so its
presence next to a complete checkpoint is what "finished" means when a sweep is rerun.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import filelock
import numpy as np
import torch
import yaml
from torch import nn

from specmem_cli.data import PreparedData, SeriesTable, load_table, prepare
from specmem_cli.data.registry import protocol_for, registry, resolve_data_path
from specmem_cli.data.scaler import StandardScaler
from specmem_cli.data.splits import Windows, infer_split_scheme, windows_that_fit
from specmem_cli.errors import CheckpointError, SpecmemError
from specmem_cli.models import build_model, resolve_step_parameters
from specmem_cli.models.published import load_published, published_hyper_parameters
from specmem_cli.training.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from specmem_cli.training.config import ExperimentConfig, config_from_dict, with_protocol
from specmem_cli.training.trainer import (
    Reporter,
    evaluate_windows,
    fit,
    prepare_memory_for_eval,
    seed_everything,
    training_device,
)


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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SweepReporter(Reporter):
    """Adds per-run hooks to :class:`Reporter`."""

    def start_run(self, label: str, index: int, total: int) -> None: ...

    def end_run(self, record: RunRecord) -> None: ...


def dataset_label(name: str) -> str:
    return Path(name).stem if name.lower().endswith(".csv") else name


def run_name(config: ExperimentConfig, pred_len: int, seed: int) -> str:
    return f"{config.model_name}_{dataset_label(config.data.name)}_sl{config.data.seq_len}_pl{pred_len}_seed{seed}"


def run_config(config: ExperimentConfig, pred_len: int, seed: int) -> ExperimentConfig:
    """The single-run config stored with a run: one horizon, one seed."""
    raw = config.to_dict()
    raw["data"]["pred_lens"] = [pred_len]
    raw["seeds"] = [seed]
    return config_from_dict(raw)


def _fingerprint(config: ExperimentConfig) -> str:
    """Identity of a run's settings, less those that never change its numbers' meaning (thread count,
    allocator, device: they change rounding only), so a sweep can resume with other parallelism or hardware."""
    raw = config.to_dict()
    for key in ("threads", "reuse_freed_memory", "device"):
        raw["train"].pop(key, None)
    text = json.dumps(raw, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


log = logging.getLogger("specmem_cli.training")


def read_data(config: ExperimentConfig) -> SeriesTable:
    return load_table(config.data.name, config.data.reading(), registry(config.datasets))


def plan_sweep(config: ExperimentConfig, table: SeriesTable | None = None) -> tuple[ExperimentConfig, SeriesTable]:
    """Read the data and settle the windows: the protocol's look-back and horizons where the series holds
    them, shorter ones (with a note) where it does not; explicit settings are kept or refused."""
    table = table if table is not None else read_data(config)
    data = config.data
    protocol = protocol_for(data.name)
    scheme = infer_split_scheme(data.name) if data.split == "auto" else data.split
    windows, note = windows_that_fit(
        table.n_rows,
        scheme,
        Windows(protocol.seq_len, protocol.label_len, list(protocol.pred_lens)),
        data.seq_len,
        data.pred_lens,
        table.source,
    )
    if note:
        log.info(note)
    label_len = data.label_len if data.label_len is not None else windows.label_len
    settled = dataclasses.replace(data, seq_len=windows.seq_len, label_len=label_len, pred_lens=windows.pred_lens)
    return dataclasses.replace(config, data=settled), table


def load_data(config: ExperimentConfig, pred_len: int, table: SeriesTable | None = None) -> PreparedData:
    data = config.data
    table = table if table is not None else read_data(config)
    return prepare(table, data.seq_len, data.label_len, pred_len, data.features, data.target, data.split)


def run_sweep(
    config: ExperimentConfig,
    out_dir: Path,
    reporter: SweepReporter | None = None,
    jobs: int = 1,
    backend: str = "loky",
    scheduler: str | None = None,
    execute=None,
    table: SeriesTable | None = None,
) -> list[RunRecord]:
    """Every (horizon, seed) run of ``config`` under ``out_dir``; finished runs are reused, not redone.

    ``jobs > 1`` (or ``backend='dask'``) runs the unfinished ones in parallel worker processes,
    each with ``train.threads`` torch threads (default: the cores divided by ``jobs``); the records
    come back in the same order as a serial sweep's. ``execute`` replaces how one run is executed
    in a worker (see :func:`~specmem_cli.training.parallel.execute_job`). ``table`` is the data, if
    already read. A run another process is training (same ``out_dir``) is waited for, not trained twice.
    """
    from specmem_cli.training import parallel

    if backend not in parallel.BACKENDS:
        raise SpecmemError(f"unknown backend '{backend}'; use one of: {', '.join(parallel.BACKENDS)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecmemError(f"{out_dir} is a file, not a directory; give --out a directory path")
    if backend != "dask":  # a cluster's workers may hold the GPU that this machine lacks
        training_device(config.train.device)
    reporter = reporter or SweepReporter()
    config, table = plan_sweep(config, table)
    grid = [(p, s) for p in config.data.pred_lens for s in config.seeds]
    singles = {(p, s): run_config(config, p, s) for p, s in grid}
    run_dirs = {(p, s): out_dir / run_name(config, p, s) for p, s in grid}
    records = {key: finished_record(run_dirs[key], singles[key], table.sha256) for key in grid}
    for record in records.values():
        if record is not None:
            reporter.end_run(record)
    parallel_runs = jobs > 1 or backend == "dask"
    if config.train.threads and not parallel_runs:
        torch.set_num_threads(config.train.threads)

    def train_claimed(keys: list[tuple[int, int]]) -> None:
        if parallel_runs:
            threads = config.train.threads or parallel.default_threads(jobs)
            work = [parallel.RunJob(singles[key].to_dict(), run_dirs[key], threads) for key in keys]
            by_dir = {str(run_dirs[key]): key for key in keys}

            def done(record: RunRecord) -> None:
                records[by_dir[record.run_dir]] = record
                reporter.end_run(record)

            if work:
                parallel.run_parallel(work, jobs, backend, scheduler, done, execute or parallel.execute_job)
            return
        for index, key in enumerate(keys):
            reporter.start_run(run_dirs[key].name, index, len(keys))
            data = load_data(singles[key], key[0], table)
            records[key] = train_run(singles[key], run_dirs[key], data, reporter)
            reporter.end_run(records[key])

    todo = [key for key in grid if records[key] is None]
    with contextlib.ExitStack() as claims:
        mine = [key for key in todo if claims.enter_context(_claim(run_dirs[key], wait=False))]
        train_claimed(mine)
    for key in todo:
        if key in mine:
            continue
        with _claim(run_dirs[key], wait=True):  # another process had it: wait, then reuse or train it
            records[key] = finished_record(run_dirs[key], singles[key], table.sha256)
            if records[key] is None:
                train_claimed([key])
            else:
                reporter.end_run(records[key])
    return [records[key] for key in grid]


@contextlib.contextmanager
def _claim(run_dir: Path, wait: bool):
    """Hold a run for this process (a lock file beside it), yielding whether it was obtained; with ``wait``,
    block until the process that holds it lets go."""
    locks = run_dir.parent / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(locks / f"{run_dir.name}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        if not wait:
            yield False
            return
        log.info("note: another specmem process is training %s; waiting for it", run_dir.name)
        lock.acquire()
    try:
        yield True
    finally:
        lock.release()


def finished_record(run_dir: Path, config: ExperimentConfig, data_sha256: str | None = None) -> RunRecord | None:
    """The stored record of a finished run with the same config and data, None if it must be (re)done."""
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        return None
    stored = json.loads(metrics_path.read_text())
    if stored.get("fingerprint") != _fingerprint(config):
        raise SpecmemError(
            f"{run_dir} holds a finished run with different settings; use another --out or delete that directory"
        )
    trained_on = stored.get("data_sha256")
    if trained_on and data_sha256 and trained_on != data_sha256:
        raise SpecmemError(
            f"{run_dir} was trained on other contents of {config.data.name} (the file changed since); "
            "use another --out, or delete the old runs to retrain on the new data"
        )
    try:
        load_checkpoint(run_dir / "checkpoint.pt")
    except CheckpointError:
        return None
    return RunRecord(**{**stored["record"], "reused": True})


def train_run(config: ExperimentConfig, run_dir: Path, data: PreparedData, reporter: Reporter) -> RunRecord:
    """Train, checkpoint, evaluate the test split once, then write metrics (the 'finished' mark).

    A run that fails (a full disk, an interrupt) leaves no directory behind: only finished runs are kept.
    """
    _fresh_run_dir(run_dir, config)
    try:
        pred_len, seed = config.data.pred_lens[0], config.seeds[0]
        seed_everything(seed)
        params = resolve_step_parameters(
            config.model_name, config.model_params, data.time_axis.step, data.training_rows()
        )
        model = build_model(config.model_name, config.data.seq_len, pred_len, data.n_inputs, params)
        _announce(model, config, data)
        started = time.perf_counter()
        result = fit(model, data, config.train, seed, reporter)
        return _finish_run(model, config, params, data, run_dir, asdict(result), time.perf_counter() - started)
    except BaseException:
        if not (run_dir / "metrics.json").is_file():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


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
    raw = with_protocol(config).to_dict()
    raw["model"] = {
        **raw["model"],
        "name": "klmemory",
        **{k: v for k, v in shape.items() if k not in ("seq_len", "pred_len")},
    }
    raw["data"].update(seq_len=shape["seq_len"], pred_lens=[shape["pred_len"]])
    raw["seeds"] = raw["seeds"][:1]
    single = config_from_dict(raw, source=str(weights))
    data = load_data(single, shape["pred_len"])
    model = build_model("klmemory", shape["seq_len"], shape["pred_len"], data.n_inputs, single.model_params)
    load_published(model, state)
    _fresh_run_dir(run_dir, single)
    return _finish_run(model, single, single.model_params, data, run_dir, {"imported_from": str(weights)}, 0.0)


def _fresh_run_dir(run_dir: Path, config: ExperimentConfig) -> None:
    if run_dir.exists():
        shutil.rmtree(run_dir)  # leftovers of an interrupted run are never trusted
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))


def _finish_run(
    model: nn.Module,
    config: ExperimentConfig,
    params: dict[str, Any],
    data: PreparedData,
    run_dir: Path,
    fit_log: dict,
    seconds: float,
) -> RunRecord:
    """Checkpoint (with the model's resolved ``params``), score the test split once, write the metrics."""
    if not (run_dir / "config.yaml").is_file():
        raise SpecmemError(f"{run_dir} was deleted while its run trained; nothing was saved for it, rerun to train it")
    prepare_memory_for_eval(model, config.train.memory_at_eval)  # what the run is scored and saved with
    save_checkpoint(run_dir / "checkpoint.pt", _checkpoint_payload(model, config, params, data))
    test = evaluate_windows(model, data.test, config.train.batch_size, data.n_outputs)
    record = RunRecord(
        config.model_name,
        dataset_label(config.data.name),
        config.data.pred_lens[0],
        config.seeds[0],
        test.mse,
        test.mae,
        str(run_dir),
        round(seconds, 3),
    )
    log = {**fit_log, "test_mse": test.mse, "test_mae": test.mae, "windows": len(data.test)}
    (run_dir / "log.txt").write_text(json.dumps(log, indent=2) + "\n")
    document = {
        "fingerprint": _fingerprint(config),
        "data_sha256": data.table.sha256,
        "record": record.to_dict(),
        "fit": fit_log,
    }
    atomic_write(run_dir / "metrics.json", lambda temp: temp.write_text(json.dumps(document, indent=2) + "\n"))
    return record


def _checkpoint_payload(
    model: nn.Module, config: ExperimentConfig, params: dict[str, Any], data: PreparedData
) -> dict[str, Any]:
    source = resolve_data_path(config.data.name, registry(config.datasets))
    return {
        "model_name": config.model_name,
        "model_params": {
            "seq_len": config.data.seq_len,
            "pred_len": config.data.pred_lens[0],
            "n_channels": data.n_inputs,
            **params,
        },
        "state_dict": {key: value.detach().cpu() for key, value in model.state_dict().items()},
        "config": config.to_dict(),
        "data_path": str(source.resolve()) if source is not None else None,
        "scaler_mean": torch.from_numpy(data.scaler.mean_),
        "scaler_scale": torch.from_numpy(data.scaler.scale_),
        "columns": list(data.columns),
        "table_columns": list(data.table.columns),
        "output_columns": list(data.output_columns),
        "date_column": data.table.date_column,
        "reading": asdict(data.table.reading),
        "layout": data.table.layout.to_state() if data.table.layout else None,
        "data_sha256": data.table.sha256,
        "time_axis": data.time_axis.to_state(),
        "memory_at_eval": config.train.memory_at_eval,
    }


@dataclass
class LoadedRun:
    """A checkpoint turned back into a model, its config and its data."""

    model: nn.Module
    config: ExperimentConfig
    checkpoint: dict[str, Any]
    scaler: StandardScaler
    path: Path

    def data(self, source: str | Path | None = None) -> PreparedData:
        """Re-prepare the training data set (or ``source``, a copy of it); an error if it no longer matches
        the checkpoint's scaler and columns, since the model only understands inputs scaled as in training."""
        name = str(source) if source is not None else self.checkpoint.get("data_path") or self.config.data.name
        raw = self.config.to_dict()
        raw["data"]["name"] = name
        data = load_data(config_from_dict(raw), self.config.data.pred_lens[0])
        trained_on = self.checkpoint.get("data_sha256")
        if trained_on and data.table.sha256 and trained_on != data.table.sha256:
            raise SpecmemError(
                f"{name}: the file changed since {self.path} was trained (its content hash differs); "
                "retrain on it, or give the file it was trained on"
            )
        same = np.allclose(data.scaler.mean_, self.scaler.mean_, rtol=1e-9, atol=1e-12) and np.allclose(
            data.scaler.scale_, self.scaler.scale_, rtol=1e-9, atol=1e-12
        )
        if not same or data.columns != self.checkpoint["columns"]:
            raise SpecmemError(f"{name}: the data changed since {self.path} was trained (scaler or columns differ)")
        return data


def load_run(path: str | Path) -> LoadedRun:
    """Rebuild a trained model from a run directory or checkpoint file."""
    checkpoint = load_checkpoint(path)
    params = dict(checkpoint["model_params"])
    shape = [params.pop(key) for key in ("seq_len", "pred_len", "n_channels")]
    model = build_model(checkpoint["model_name"], *shape, params)
    try:
        model.load_state_dict(checkpoint["state_dict"])
    except RuntimeError:
        raise CheckpointError(
            f"{path}: weights do not fit model '{checkpoint['model_name']}'; the file is damaged"
        ) from None
    model.eval()
    prepare_memory_for_eval(model, checkpoint["memory_at_eval"])  # every use of a run scores it under its policy
    scaler = StandardScaler.from_state(checkpoint["scaler_mean"].numpy(), checkpoint["scaler_scale"].numpy())
    checkpoint_path = Path(path) / "checkpoint.pt" if Path(path).is_dir() else Path(path)
    return LoadedRun(model, config_from_dict(checkpoint["config"]), checkpoint, scaler, checkpoint_path)


def find_runs(path: Path) -> list[Path]:
    """Run directories under ``path`` (itself, if it is one), or the checkpoint file given."""
    if path.is_file():
        return [path]
    if (path / "checkpoint.pt").exists() or (path / "metrics.json").exists():
        return [path]
    runs = sorted(p.parent for p in path.glob("*/checkpoint.pt"))
    if not runs:
        raise CheckpointError(f"{path}: no runs found (no */checkpoint.pt); give a run directory or a checkpoint")
    return runs


def evaluate_run(path: Path, split: str = "test") -> RunRecord:
    """Recompute a finished run's metrics on ``split`` from its checkpoint alone."""
    run = load_run(path)
    data = run.data()
    metrics = evaluate_windows(run.model, data.split(split), run.config.train.batch_size, data.n_outputs)
    return RunRecord(
        run.config.model_name,
        dataset_label(run.config.data.name),
        run.config.data.pred_lens[0],
        run.config.seeds[0],
        metrics.mse,
        metrics.mae,
        str(run.path.parent),
        0.0,
    )
