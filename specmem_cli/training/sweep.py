"""Sweeps of (horizon, seed) runs: planning the windows, reusing finished runs, claiming runs between
processes, and handing the rest to one process or to workers (:mod:`specmem_cli.training.parallel`)."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import filelock
import torch

from specmem_cli.checkpoint import load_checkpoint
from specmem_cli.config import ExperimentConfig, RunSpec, load_data, parse_yaml, read_data, updated
from specmem_cli.data import SeriesTable
from specmem_cli.data.registry import protocol_for
from specmem_cli.data.splits import Windows, infer_split_scheme, resolve_target, windows_that_fit
from specmem_cli.errors import CheckpointError, SpecmemError
from specmem_cli.models import build_model, open_choices, resolve_step_parameters
from specmem_cli.training import parallel
from specmem_cli.training.run import RunRecord, fingerprint, settings_changes, settings_identity, train_run
from specmem_cli.training.trainer import Reporter, training_device

log = logging.getLogger("specmem_cli.training")


class SweepReporter(Reporter):
    """Adds per-run hooks to :class:`Reporter`."""

    def start_run(self, label: str, index: int, total: int) -> None: ...

    def end_run(self, record: RunRecord) -> None: ...


def plan_sweep(config: ExperimentConfig, table: SeriesTable | None = None) -> tuple[ExperimentConfig, SeriesTable]:
    """Read the data and settle the windows: the protocol's look-back and horizons where the series holds
    them, shorter ones (with a note) where it does not; explicit settings are kept or refused."""
    first_read = table is None
    table = table if table is not None else read_data(config)
    data = config.data
    protocol = protocol_for(data.name)
    scheme = infer_split_scheme(data.name) if data.split == "auto" else data.split
    windows, note = windows_that_fit(
        table.n_rows,
        scheme,
        Windows(protocol.seq_len, list(protocol.pred_lens)),
        data.seq_len,
        data.pred_lens,
        table.source,
    )
    if note:
        log.info(note)
    if first_read and data.features in ("S", "MS") and data.target is None:  # a series picked by convention: say which
        target = resolve_target(table.columns, None, table.source)
        rule = "OT, as in ETT" if target == "OT" else "the last column"
        log.info("note: %s: forecasting series '%s' (%s); choose another with --target", table.source, target, rule)
    return updated(config, data={"seq_len": windows.seq_len, "pred_lens": windows.pred_lens}), table


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
    if backend not in parallel.BACKENDS:
        raise SpecmemError(f"unknown backend '{backend}'; use one of: {', '.join(parallel.BACKENDS)}")
    if out_dir.exists() and not out_dir.is_dir():
        raise SpecmemError(f"{out_dir} is a file, not a directory; give --out a directory path")
    if backend != "dask":  # a cluster's workers may hold the GPU that this machine lacks
        training_device(config.train.device)
    reporter = reporter or SweepReporter()
    config, table = plan_sweep(config, table)
    check_models(config, table)
    grid = [(p, s) for p in config.data.pred_lens for s in config.seeds]
    runs = {(p, s): RunSpec.of(config, p, s) for p, s in grid}
    run_dirs = {key: out_dir / run.name for key, run in runs.items()}
    records = {key: finished_record(run_dirs[key], runs[key].config, table.sha256) for key in grid}
    for record in records.values():
        if record is not None:
            reporter.end_run(record)
    parallel_runs = jobs > 1 or backend == "dask"
    if config.train.threads and not parallel_runs:
        torch.set_num_threads(config.train.threads)

    def train_claimed(keys: list[tuple[int, int]]) -> None:
        if parallel_runs:
            threads = parallel.worker_threads(config.train.threads, jobs)
            # longest horizons first: the runs left when the others are done are the short ones, so the
            # workers finish close together (in grid order the last run, a longest one, trained alone)
            ordered = sorted(keys, key=lambda key: -key[0])
            work = [parallel.RunJob(runs[key], run_dirs[key], threads) for key in ordered]
            by_dir = {str(run_dirs[key]): key for key in keys}

            def done(record: RunRecord) -> None:
                records[by_dir[record.run_dir]] = record
                reporter.end_run(record)

            if work:
                parallel.run_parallel(work, jobs, backend, scheduler, done, execute or parallel.execute_job)
            return
        for index, key in enumerate(keys):
            reporter.start_run(run_dirs[key].name, index, len(keys))
            data = load_data(runs[key].config, runs[key].pred_len, table)
            records[key] = train_run(runs[key], run_dirs[key], data, reporter)
            reporter.end_run(records[key])

    todo = [key for key in grid if records[key] is None]
    with contextlib.ExitStack() as claims:
        mine = [key for key in todo if claims.enter_context(_claim(run_dirs[key], wait=False))]
        train_claimed(mine)
    for key in todo:
        if key in mine:
            continue
        with _claim(run_dirs[key], wait=True):  # another process had it: wait, then reuse or train it
            records[key] = finished_record(run_dirs[key], runs[key].config, table.sha256)
            if records[key] is None:
                train_claimed([key])
            else:
                reporter.end_run(records[key])
    return [records[key] for key in grid]


def check_models(config: ExperimentConfig, table: SeriesTable) -> None:
    """Build each horizon's model on PyTorch's meta device (no weights allocated), so a bad model value
    (``model.memory=tokens``) is reported before any run directory is looked at or anything trains."""
    data = load_data(config, config.data.pred_lens[0], table)
    params = resolve_step_parameters(config.model_name, config.model_params, data.time_axis.step, data.training_rows())
    for pred_len in config.data.pred_lens:
        for choice in open_choices(config.model_name, params):  # every network a run may train
            with torch.device("meta"):
                build_model(config.model_name, config.data.seq_len, pred_len, data.n_inputs, {**params, **choice})


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
    metrics_path, settings_path = run_dir / "metrics.json", run_dir / "config.yaml"
    if not metrics_path.is_file() or not settings_path.is_file():
        return None
    stored = json.loads(metrics_path.read_text())
    stored_settings = parse_yaml(settings_path.read_text())
    if settings_identity(stored_settings) != fingerprint(config):
        raise SpecmemError(
            f"{run_dir} holds a finished run with different settings ({settings_changes(stored_settings, config.to_dict())}); "
            "use another --out or delete that directory"
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
    # where the run is now: a directory moved or copied since it trained still answers for itself
    return RunRecord(**{**stored["record"], "run_dir": str(run_dir), "reused": True})
