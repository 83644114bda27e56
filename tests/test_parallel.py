"""Parallel sweeps: joblib processes and a Dask LocalCluster give the serial sweep's numbers; lost workers are retried."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

import pytest
import torch

from specmem_cli.training.parallel import execute_job
from specmem_cli.training.sweep import run_sweep
from tests.conftest import tiny_config

CONFIG = tiny_config(seeds=[1, 2], data={"pred_lens": [12, 24]}, train={"threads": 1, "max_steps": 6})


@pytest.fixture(scope="module")
def serial_metrics(tmp_path_factory):
    return [(r.pred_len, r.seed, r.mse, r.mae) for r in run_sweep(CONFIG, tmp_path_factory.mktemp("serial"))]


def metrics(records):
    return [(r.pred_len, r.seed, r.mse, r.mae) for r in records]


def die_once(marker: Path, job):
    """Kill the worker process the first time any run starts, as a crashed or preempted worker would."""
    if not marker.exists():
        marker.write_text("killed")
        os._exit(1)
    return execute_job(job)


def record_start(directory: Path, job):
    (directory / job.run_dir.name).write_text(str(time.monotonic_ns()))
    return execute_job(job)


def record_threads(directory: Path, job):
    result = execute_job(job)
    (directory / job.run_dir.name).write_text(str(torch.get_num_threads()))
    return result


def test_joblib_sweep_equals_serial(tmp_path, serial_metrics):
    records = run_sweep(CONFIG, tmp_path, jobs=2)
    assert metrics(records) == serial_metrics
    assert all((Path(r.run_dir) / "metrics.json").is_file() and Path(r.run_dir).parent == tmp_path for r in records)
    assert all(r.reused for r in run_sweep(CONFIG, tmp_path, jobs=2))


def test_killed_worker_is_retried_and_sweep_completes(tmp_path, serial_metrics):
    marker = tmp_path / "killed-once"
    records = run_sweep(CONFIG, tmp_path / "runs", jobs=2, execute=functools.partial(die_once, marker))
    assert marker.exists(), "the fault was injected"
    assert metrics(records) == serial_metrics
    assert not list((tmp_path / "runs").glob("*/.*.tmp"))


def test_longest_horizons_start_first_and_records_keep_the_grid_order(tmp_path, serial_metrics):
    """In grid order the last run to start is a longest one, training alone while the other worker idles."""
    started = tmp_path / "started"
    started.mkdir()
    records = run_sweep(CONFIG, tmp_path / "runs", jobs=2, execute=functools.partial(record_start, started))
    assert metrics(records) == serial_metrics
    start = {path.name: int(path.read_text()) for path in started.iterdir()}
    longest = [time for name, time in start.items() if "_pl24_" in name]
    assert len(start) == 4 and max(longest) < min(time for name, time in start.items() if "_pl12_" in name)


def test_threads_per_job_are_pinned(tmp_path):
    seen = tmp_path / "threads"
    seen.mkdir()
    two_threads = tiny_config(seeds=[1, 2], train={"threads": 2, "max_steps": 3})
    run_sweep(two_threads, tmp_path / "runs", jobs=2, execute=functools.partial(record_threads, seen))
    assert sorted(p.read_text() for p in seen.iterdir()) == ["2", "2"]


def test_dask_local_cluster_equals_serial(tmp_path, serial_metrics):
    pytest.importorskip("dask.distributed")
    records = run_sweep(CONFIG, tmp_path, jobs=2, backend="dask")
    assert metrics(records) == serial_metrics


def test_cli_jobs_option(tmp_path):
    import json

    import yaml
    from typer.testing import CliRunner

    from specmem_cli.cli import app

    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(CONFIG.to_dict()))
    args = [
        "train",
        "--config",
        str(config),
        "--out",
        str(tmp_path / "o"),
        "--jobs",
        "2",
        "--threads-per-job",
        "1",
        "--json",
        "-q",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)["runs"]) == 4
    bad = CliRunner().invoke(app, ["train", "--config", str(config), "--out", str(tmp_path / "o"), "--backend", "ray"])
    assert bad.exit_code == 2 and "'ray' is not one of" in bad.output  # click's usage error names the choices


def test_loky_replacing_a_grown_worker_is_not_reported_as_a_leak(tmp_path, recwarn):
    """loky's 'a worker stopped ... memory leak' warning (its manager thread, while runs are pending) is
    silenced for the sweep; any other warning still shows."""
    import threading
    import warnings

    from specmem_cli.config import RunSpec
    from specmem_cli.training.parallel import LOKY_WORKER_REPLACED, RunJob, run_parallel

    def warn_from_a_thread(record):  # as loky's manager thread warns, while the sweep runs
        for text in (f"{LOKY_WORKER_REPLACED}. This can be caused by a memory leak.", "something else"):
            thread = threading.Thread(target=warnings.warn, args=(text, UserWarning))
            thread.start()
            thread.join()

    one_run = tiny_config(seeds=[1], train={"threads": 1, "max_steps": 2})
    job = RunJob(RunSpec.of(one_run, one_run.data.pred_lens[0], 1), tmp_path / "runs" / "one", 1)
    run_parallel([job], 1, "loky", None, warn_from_a_thread)
    shown = [str(w.message) for w in recwarn]
    assert "something else" in shown and not [m for m in shown if LOKY_WORKER_REPLACED in m]
