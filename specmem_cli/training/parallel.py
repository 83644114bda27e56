"""Independent runs of a sweep in parallel: joblib processes locally, a Dask cluster when one machine is not enough.

Each run trains in a private temporary directory on its worker and returns its files; the
submitting process writes them into the output directory (``metrics.json`` last, atomically). So
results land on the submitting machine whatever the cluster's filesystems, and a worker lost
mid-run leaves nothing behind that looks finished: that run is simply submitted again.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import joblib
import torch

from specmem_cli.checkpoint import atomic_write
from specmem_cli.config import RunSpec, load_data
from specmem_cli.errors import SpecmemError
from specmem_cli.training.run import train_run
from specmem_cli.training.trainer import TRAINING_STATE, Reporter

BACKENDS = ("loky", "dask")
# loky replaces a worker whose memory grew by 300 MB since its first run (a run's data and model stay
# cached in it) and says "this can be caused by ... a memory leak": the replacement is loky working as
# meant, the pending runs go on, so the warning would only alarm
LOKY_WORKER_REPLACED = "A worker stopped while some jobs were given to the executor"
MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class RunJob:
    """One (horizon, seed) run and its destination (the spec pickles to a worker as any dataclass does)."""

    run: RunSpec
    run_dir: Path
    threads: int


def execute_job(job: RunJob):
    """Worker side: train into a temporary directory with ``job.threads`` torch threads; return record and files."""
    torch.set_num_threads(job.threads)
    with tempfile.TemporaryDirectory(prefix="specmem-run-") as scratch:
        local = Path(scratch) / job.run_dir.name
        # the epoch states go where the run will live, so an interrupted sweep resumes it (when this
        # worker shares that filesystem; elsewhere the run starts again)
        state = job.run_dir / TRAINING_STATE if job.run_dir.parent.is_dir() else None
        record = train_run(job.run, local, load_data(job.run.config, job.run.pred_len), Reporter(), state)
        files = {path.name: path.read_bytes() for path in local.iterdir() if path.is_file()}
    return replace(record, run_dir=str(job.run_dir)), files


def store_run(run_dir: Path, record, files: dict[str, bytes]) -> None:
    """Write a returned run atomically, ``metrics.json`` (the 'finished' mark) last, pointing at ``run_dir``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if name != "metrics.json":
            atomic_write(run_dir / name, lambda temp, content=content: temp.write_bytes(content))
    document = json.loads(files["metrics.json"])
    document["record"]["run_dir"] = str(run_dir)
    atomic_write(run_dir / "metrics.json", lambda temp: temp.write_text(json.dumps(document, indent=2) + "\n"))


def worker_threads(configured: int | None, jobs: int) -> int:
    """Torch threads of each of ``jobs`` parallel runs: ``train.threads`` where set, else the cores divided by
    ``jobs`` so that the runs never oversubscribe them (what a run's scores must be recomputed with to match)."""
    return configured or max(1, (os.cpu_count() or 1) // jobs)


@contextmanager
def _backend(backend: str, jobs: int, scheduler: str | None):
    if backend == "loky":
        with joblib.parallel_config(backend="loky", n_jobs=jobs), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=LOKY_WORKER_REPLACED, category=UserWarning)
            yield
        return
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SpecmemError("--backend dask needs dask.distributed: pip install 'specmem[dask]'") from None
    if scheduler:
        try:
            client = Client(scheduler, timeout="10s")
        except OSError as exc:
            raise SpecmemError(f"cannot reach the Dask scheduler at {scheduler} ({exc}); check --scheduler") from None
        cluster = None
    else:
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=None)
        client = Client(cluster)
    try:
        with joblib.parallel_config(backend="dask", n_jobs=jobs):
            yield
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_parallel(
    jobs: list[RunJob],
    n_jobs: int,
    backend: str,
    scheduler: str | None,
    on_done: Callable,
    execute: Callable = execute_job,
) -> None:
    """Run ``jobs``, storing each as it finishes; runs lost with a worker are resubmitted (up to 3 attempts)."""
    pending = list(jobs)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with _backend(backend, n_jobs, scheduler):
                for record, files in _unordered(pending, execute):
                    store_run(Path(record.run_dir), record, files)
                    pending = [job for job in pending if str(job.run_dir) != record.run_dir]
                    on_done(record)
            return
        except SpecmemError:
            raise
        except Exception as exc:  # a lost worker surfaces as the backend's own error type
            if attempt == MAX_ATTEMPTS or not _is_lost_worker(exc):
                raise
    raise SpecmemError(f"{len(pending)} run(s) failed {MAX_ATTEMPTS} times because workers were lost")


def _unordered(jobs: list[RunJob], execute: Callable) -> Iterator:
    return joblib.Parallel(return_as="generator_unordered")(joblib.delayed(execute)(job) for job in jobs)


def _is_lost_worker(exc: Exception) -> bool:
    names = {type(e).__name__ for e in (exc, exc.__cause__, exc.__context__) if e is not None}
    return bool(names & {"TerminatedWorkerError", "KilledWorker", "BrokenProcessPool", "CommClosedError"})
