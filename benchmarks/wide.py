"""The default model on wide and long data: one horizon-96 run on electricity- and traffic-shaped files
and on a long file of 200,000 hourly rows.

    python benchmarks/wide.py [--shapes electricity traffic long] [--dir /tmp/specmem-wide] [--seed 2021]

Electricity (321 series) and traffic (862 series) are not available here, so this writes synthetic
hourly files of their shape (26,304 x 321 and 17,544 x 862 rows x series: per-series daily and
weekly profiles of random strength, a slow random-walk level, and noise; deterministic from a seed),
named ``electricity.csv`` and ``traffic.csv`` so they get the TSL protocol (70/10/20, look-back 96).
``long`` is the same recipe at 200,000 x 7 (a user's long file: peak memory should grow no faster
than the data; the goal is under 2 GB).
What it measures: ``specmem train --data FILE --pred-len 96 --seeds 2021`` with ``configs/default.yaml``
as shipped, in a fresh process: its wall time, the peak resident memory of that process (ru_maxrss
of the child), the cycle the model chose, whether the memory was kept and how many rows it holds,
and the test MSE (a synthetic file's MSE says only that the run completed sensibly).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from specmem_cli.checkpoint import load_checkpoint

# the specmem CLI in a child process that reports its own peak resident memory when it exits
CHILD = (
    "import atexit, resource, sys; "
    "atexit.register(lambda: sys.stderr.write(f'PEAK_RSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n')); "
    "from specmem_cli.cli import main; main()"
)
SHAPES = {"electricity": (26_304, 321), "traffic": (17_544, 862), "long": (200_000, 7)}


def synthetic_file(path: Path, rows: int, series: int, seed: int = 0) -> None:
    generator = np.random.default_rng(seed)
    hours = np.arange(rows)[:, None]
    daily = np.sin(2 * np.pi * hours / 24 + generator.uniform(0, 2 * np.pi, series))
    weekly = np.where((hours // 24) % 7 < 5, 1.0, generator.uniform(0.3, 0.9, series))
    level = np.cumsum(generator.standard_normal((rows, series)) * 0.01, axis=0)
    values = (1 + generator.uniform(0.2, 1.0, series) * daily) * weekly + level
    values += 0.2 * generator.standard_normal((rows, series))
    frame = pd.DataFrame(values.astype(np.float32), columns=[f"s{i}" for i in range(series - 1)] + ["OT"])
    frame.insert(0, "date", pd.date_range("2016-07-01", periods=rows, freq="h").strftime("%Y-%m-%d %H:%M:%S"))
    frame.to_csv(path, index=False, float_format="%.4f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--dir", type=Path, default=Path("/tmp/specmem-wide"))
    parser.add_argument("--seed", type=int, default=2021)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    for name in args.shapes:
        rows, series = SHAPES[name]
        path = args.dir / f"{name}.csv"
        if not path.exists():
            synthetic_file(path, rows, series)
        out = args.dir / f"runs_{name}"
        shutil.rmtree(out, ignore_errors=True)  # a finished run there would be reused, not timed
        command = [sys.executable, "-c", CHILD, "train", "--data", str(path), "--pred-len", "96"]
        command += ["--seeds", str(args.seed), "--out", str(out), "--quiet", "--json"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{name}: specmem train failed: {done.stderr.strip().splitlines()[-1]}")
        peak_gb = int(done.stderr.rsplit("PEAK_RSS_KB ", 1)[1].split()[0]) / 1024**2
        (run,) = json.loads(done.stdout)["runs"]
        metrics = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
        memory = metrics["fit"]["memory"]
        cycle = load_checkpoint(Path(run["run_dir"]) / "checkpoint.pt").model_params["cycle_len"]
        print(
            f"{name}: {rows:,} x {series} | wall {wall / 60:.1f} min | peak RSS {peak_gb:.2f} GB | "
            f"cycle {cycle} steps | memory {'kept' if memory['memory_used'] else 'dropped'} "
            f"(val MSE {memory['val_mse_without_memory']:.4f}, best blend {memory['val_mse_best_blend']:.4f}, "
            f"{memory['entries']:,} rows) | epochs {metrics['fit']['epochs_run']} | test MSE {run['mse']:.4f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
