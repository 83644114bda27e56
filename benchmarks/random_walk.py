"""The default where the last value is the forecast to beat: files of exchange_rate's shape whose series are
random walks.

    python benchmarks/random_walk.py [--dir /tmp/specmem-walk] [--walks 5] [--seeds 2019 2020 2021] [--jobs 2]
                                     [--readme README.md]

Why: on series that wander like exchange rates, repeating the last value is hard to beat (on TSL's
exchange_rate most published models lose to it), and a trained map fits some of the noise. exchange_rate
itself is not available here, so this writes synthetic files of its shape: 7,588 daily rows x 8 series,
geometric random walks with 0.6% daily volatility, one file per ``--walks`` seed (0, 1, ...), each named
``exchange_rate.csv`` so that it gets that data set's protocol (70/10/20 split, look-back 96, horizons
96/192/336/720). Several files, because on a random walk one test period says little: which forecast wins
there is itself largely chance.

What it measures, on the test split with every window kept (scaled units):

- ``default``: ``configs/default.yaml`` as shipped (``specmem train --data FILE``), each file's 4-horizon
  mean MSE as mean ± sample std over seeds (each seed's horizons averaged first);
- ``last value``: each series' last input value repeated over the horizon, on the same windows. It has
  no parameters and no seed, so it is computed, not trained, and has no spread;

and, per file, the last value's mean weight in the default's kept networks (``fit.choice``) and how many
kept networks had a higher validation MSE than the last value alone (none should). Then the per-horizon
means over files. ``--readme`` rewrites the block between the random-walk markers of the README.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
from readme_block import rewrite_block
from suite import sweep

from specmem_cli.config import apply_overrides, load_config, load_data, with_protocol
from specmem_cli.training.summary import summarise

ROWS, SERIES = 7_588, 8  # exchange_rate's shape
START, END = "<!-- random-walk:start -->", "<!-- random-walk:end -->"


def random_walk_file(path: Path, seed: int = 0) -> None:
    """Geometric random walks of exchange_rate's shape and daily clock (columns ``0``-``6`` and ``OT``)."""
    generator = np.random.default_rng(seed)
    steps = generator.normal(0.0, 0.006, (ROWS, SERIES))
    values = np.exp(np.cumsum(steps, axis=0)) * generator.uniform(0.5, 2.0, SERIES)
    frame = pd.DataFrame(values, columns=[str(i) for i in range(SERIES - 1)] + ["OT"])
    frame.insert(0, "date", pd.date_range("1990-01-01", periods=ROWS, freq="D").strftime("%Y/%m/%d %H:%M"))
    frame.to_csv(path, index=False, float_format="%.6f")


def last_value_scores(config, horizons: list[int]) -> dict[int, tuple[float, float]]:
    """Per horizon, the test MSE and MAE of repeating each output series' last input value."""
    scores = {}
    for horizon in horizons:
        data = load_data(config, horizon)
        errors, absolute, count = 0.0, 0.0, 0
        for inputs, targets, _ in data.test.batches(1024):
            error = inputs[:, -1:, -data.n_outputs :].double() - targets.double()
            errors += float(error.square().sum())
            absolute += float(error.abs().sum())
            count += error.numel()
        scores[horizon] = (errors / count, absolute / count)
    return scores


def last_value_weights(records) -> tuple[list[float], int]:
    """The last value's weight in each default run's kept network (zero unless it kept the mix), and how many
    kept networks had a higher validation MSE than the last value alone."""
    weights, behind = [], 0
    for record in records:
        fit = json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]
        mix = next(entry for entry in fit["choice"]["validation_mse"] if entry["head"] == "mix")
        weights.append(mix["last_value_share"] if fit["choice"]["chosen"]["head"] == "mix" else 0.0)
        behind += fit["best_val_mse"] > mix["last_value_mse"]
    return weights, behind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/specmem-walk"))
    parser.add_argument("--walks", type=int, default=5, help="random-walk files (seeds 0, 1, ...)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019, 2020, 2021])
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs per sweep")
    parser.add_argument("--readme", type=Path, help="rewrite the random-walk block of this README")
    args = parser.parse_args()
    lines = [
        "| file | default, avg MSE | last value, avg MSE | default - last value | last value's weight (mean) "
        "| kept networks behind the last value on validation |",
        "|---|---|---|---|---|---|",
    ]
    per_horizon: dict[str, dict[int, list[float]]] = {"default": {}, "last value": {}}
    for walk in range(args.walks):
        folder = args.dir / f"walk{walk}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "exchange_rate.csv"
        if not path.exists():
            random_walk_file(path, seed=walk)
        config = with_protocol(apply_overrides(load_config("default"), [f"data.name={path}", f"seeds={args.seeds}"]))
        records, _ = sweep(config, folder / "runs", args.jobs)
        summary = summarise(records)
        last = last_value_scores(config, list(config.data.pred_lens))
        last_mean = statistics.fmean(mse for mse, _ in last.values())
        weights, behind = last_value_weights(records)
        for horizon, (mse, _) in last.items():
            per_horizon["default"].setdefault(horizon, []).append(summary["horizons"][horizon]["mse"])
            per_horizon["last value"].setdefault(horizon, []).append(mse)
        average = summary["average"]
        lines.append(
            f"| walk {walk} | {average['mse']:.4f} ± {average['mse_std']:.4f} | {last_mean:.4f} | "
            f"{average['mse'] - last_mean:+.4f} | {statistics.fmean(weights):.2f} | {behind} of {len(records)} |"
        )
        print(lines[-1], flush=True)
    horizons = sorted(per_horizon["default"])
    lines += [
        "",
        "| mean over files | " + " | ".join(f"h{h} MSE" for h in horizons) + " | avg MSE |",
        "|" + "---|" * (len(horizons) + 2),
    ]
    for name, scores in per_horizon.items():
        means = [statistics.fmean(scores[h]) for h in horizons]
        lines.append(f"| {name} | " + " | ".join(f"{m:.4f}" for m in means) + f" | {statistics.fmean(means):.4f} |")
    text = (
        "\n".join(lines)
        + f"\n\nSeeds {', '.join(map(str, args.seeds))}; {args.walks} files (walk seeds 0-{args.walks - 1})."
    )
    print(text)
    if args.readme:
        rewrite_block(args.readme, START, END, "python benchmarks/random_walk.py --readme README.md", text)


if __name__ == "__main__":
    main()
