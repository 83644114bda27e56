"""The same small sweep three ways: serially, with ``--jobs 2`` (joblib processes), on a 2-worker Dask LocalCluster.

    python benchmarks/sweep.py [--runs 8] [--steps 40]

Eight runs of the demo model on the synthetic set (horizons 24/48 x 4 seeds, ``--steps`` training
steps each), every run with one torch thread so the three sweeps compute exactly the same numbers;
a serial sweep with two threads per run is shown too, since that is what one run alone would use.
Prints wall times, speed-ups over the one-thread serial sweep, and whether all metrics match.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from specmem_cli.config import apply_overrides, load_config
from specmem_cli.training.sweep import run_sweep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=8, help="number of runs (horizons 24/48 x runs/2 seeds)")
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    args = parser.parse_args()
    seeds = list(range(1, args.runs // 2 + 1))
    base = apply_overrides(load_config("demo"), [f"seeds={seeds}", f"train.max_steps={args.steps}", "train.epochs=1"])
    one_thread = apply_overrides(base, ["train.threads=1"])
    variants = [
        ("serial, 1 thread/run", one_thread, {}),
        ("serial, 2 threads/run", apply_overrides(base, ["train.threads=2"]), {}),
        ("joblib --jobs 2", one_thread, {"jobs": 2}),
        ("dask LocalCluster x2", one_thread, {"jobs": 2, "backend": "dask"}),
    ]
    results = {}
    print(f"{len(seeds) * 2} runs of the demo model, {args.steps} steps each")
    print(f"{'sweep':<24}{'wall s':>8}{'speed-up':>10}")
    with tempfile.TemporaryDirectory() as scratch:
        for label, config, options in variants:
            start = time.perf_counter()
            records = run_sweep(config, Path(scratch) / label.replace(" ", "_"), **options)
            seconds = time.perf_counter() - start
            results[label] = ([(r.mse, r.mae) for r in records], seconds)
            print(f"{label:<24}{seconds:>8.1f}{results['serial, 1 thread/run'][1] / seconds:>9.2f}x", flush=True)
    reference = results["serial, 1 thread/run"][0]
    same = all(results[label][0] == reference for label in ("joblib --jobs 2", "dask LocalCluster x2"))
    print(f"joblib and dask metrics identical to the 1-thread serial sweep: {same}")


if __name__ == "__main__":
    main()
