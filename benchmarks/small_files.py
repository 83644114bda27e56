"""The default on small files: how many optimiser steps an epoch should take, chosen on validation.

    python benchmarks/small_files.py [--steps none 16 32 64 128] [--seeds 2019 2020 2021] [--jobs 2]
                                     [--dir /tmp/specmem-small] [--readme README.md]

Why: the default's recipe counts epochs (30, the schedule and early stopping all count passes over the
data), and at 256 windows a batch a small training split gives few steps: a national_illness-shaped file
(about 600 training windows) trains for 90 steps in 30 epochs, and its maps stop still improving.
``train.min_steps_per_epoch`` shrinks the batch where an epoch would take fewer steps (never below 8
windows). This benchmark asks how many, on validation only.

Files (written into ``--dir``; none of them is the test data of any claim in the README):

- ``national_illness.csv``: synthetic, the real file's shape (966 weekly rows x 7 series): a yearly
  flu-season peak of random height each year on a rising level, with noise; named so that it gets that
  data set's protocol (look-back 36, horizons 24/36/48/60, 70/10/20 split);
- ``etth1_short.csv``, ``ettm1_short.csv``, ``weather_short.csv``: the first 3,000, 4,000 and 5,000 rows of
  the shared files (as files of one's own: 70/10/20 split; look-back 96, horizons 96 and 192).

Each variant (``none``: the batch as given, 256; a number: ``train.min_steps_per_epoch``) trains the default
with its memory off (the memory is gated after the network, so it cannot change which network trains
better) on every (horizon, seed), one process and one torch thread per run, ``--jobs`` at once. Printed: per file and variant, the batch it trained with, the mean
validation MSE of the kept network (``fit.best_val_mse``) and its change against ``none``, and how many runs
were still improving at their last epoch. The test split is scored by every run, as every run scores it,
but never read here.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from readme_block import rewrite_block
from suite import FILES

from specmem_cli.config import apply_overrides, load_config, with_protocol
from specmem_cli.training.sweep import run_sweep

START, END = "<!-- small-files:start -->", "<!-- small-files:end -->"
SHORT = {"etth1_short": ("ETTh1", 3_000), "ettm1_short": ("ETTm1", 4_000), "weather_short": ("weather", 5_000)}


def illness_file(path: Path, seed: int = 0) -> None:
    """National_illness's shape and weekly clock: per series a rising level times a yearly peak of random height."""
    rows, rng = 966, np.random.default_rng(seed)
    week = np.arange(rows)
    columns = {}
    for series in range(7):
        heights = rng.uniform(0.5, 2.0, rows // 52 + 2)[week // 52]
        peak, width = rng.uniform(2, 8), rng.uniform(3, 6)
        distance = np.minimum(np.abs(week % 52 - peak), 52 - np.abs(week % 52 - peak))  # weeks to the season's peak
        season = heights * np.exp(-0.5 * (distance / width) ** 2)
        level = np.linspace(1, rng.uniform(1.5, 4), rows)
        values = level * (1 + season * rng.uniform(1, 3)) + rng.normal(0, 0.1, rows)
        columns["OT" if series == 6 else f"s{series}"] = values * rng.uniform(1, 1000)
    frame = pd.DataFrame(columns)
    frame.insert(0, "date", pd.date_range("2002-01-01", periods=rows, freq="7D").strftime("%Y-%m-%d %H:%M:%S"))
    frame.to_csv(path, index=False, float_format="%.6f")


def files(folder: Path) -> dict[str, tuple[Path, list[str]]]:
    """Each file's path and the overrides its runs take (the horizons of the short files)."""
    folder.mkdir(parents=True, exist_ok=True)
    illness = folder / "national_illness.csv"
    if not illness.exists():
        illness_file(illness)
    found = {"national_illness": (illness, [])}
    for name, (shared, rows) in SHORT.items():
        path = folder / f"{name}.csv"
        if not path.exists():
            pd.read_csv(FILES[shared]).iloc[:rows].to_csv(path, index=False)
        found[name] = (path, ["data.pred_lens=[96, 192]"])
    return found


def run_cell(path: Path, overrides: list[str], steps: str, horizon: int, seed: int, out: Path) -> dict:
    """One (file, variant, horizon, seed) run of the default, memory off, one torch thread; its fit log."""
    value = "null" if steps == "none" else steps
    settings = [
        f"data.name={path}",
        *overrides,
        f"data.pred_lens=[{horizon}]",
        f"seeds=[{seed}]",
        "model.memory=off",
        "train.threads=1",
        f"train.min_steps_per_epoch={value}",
    ]
    config = with_protocol(apply_overrides(load_config("default"), settings))
    (record,) = run_sweep(config, out)
    return json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", nargs="+", default=["none", "16", "32", "64", "128"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019, 2020, 2021])
    parser.add_argument("--jobs", type=int, default=2, help="runs trained at once (one process, one thread each)")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/specmem-small"))
    parser.add_argument("--readme", type=Path, help="rewrite the small-files block of this README")
    args = parser.parse_args()
    if args.steps[0] != "none":
        raise SystemExit("--steps must start with none: every change is against the batch as given")
    cells = []
    for name, (path, overrides) in files(args.dir).items():
        horizons = with_protocol(
            apply_overrides(load_config("default"), [f"data.name={path}", *overrides])
        ).data.pred_lens
        for steps in args.steps:
            out = args.dir / "runs" / name / f"steps-{steps}"
            cells += [(name, steps, (path, overrides, steps, h, seed, out)) for h in horizons for seed in args.seeds]
    fits = Parallel(n_jobs=args.jobs)(delayed(run_cell)(*cell) for *_, cell in cells)
    lines = [
        "| file | train.min_steps_per_epoch | batch | validation MSE (mean) | change against none "
        "| still improving at the last epoch |",
        "|---|---|---|---|---|---|",
    ]
    for name in dict.fromkeys(name for name, *_ in cells):
        base = None
        for steps in args.steps:
            mine = [
                fit
                for (cell_name, cell_steps, _), fit in zip(cells, fits, strict=True)
                if (cell_name, cell_steps) == (name, steps)
            ]
            validation = statistics.fmean(fit["best_val_mse"] for fit in mine)
            base = base if base is not None else validation
            batches = sorted({fit["batch_size"] for fit in mine})
            improving = sum(fit["best_epoch"] == fit["epochs_run"] - 1 for fit in mine)
            lines.append(
                f"| {name} | {steps} | {', '.join(map(str, batches))} | {validation:.4f} | "
                f"{100 * (validation / base - 1):+.2f}% | {improving} of {len(mine)} |"
            )
    table = "\n".join(lines)
    print(table)
    if args.readme:
        command = f"python benchmarks/small_files.py --steps {' '.join(args.steps)} --readme {args.readme}"
        body = f"{table}\n\nValidation MSE only (memory off; seeds {', '.join(map(str, args.seeds))})."
        rewrite_block(args.readme, START, END, command, body)


if __name__ == "__main__":
    main()
