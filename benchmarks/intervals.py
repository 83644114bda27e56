"""The README's interval table: how well the default's forecast intervals cover, against DLinear's with the same recipe.

    python benchmarks/intervals.py [--data ETTh1 ETTm1 ETTm2 weather] [--out runs/suite] [--readme README.md]
                                   [--seeds 2019 2020 2021] [--levels 0.1 0.5 0.9] [--jobs 1]

What it measures: the suite's runs (``benchmarks/suite.py``'s sweeps, the same directories: finished runs
are reused, missing ones are trained; each run's scores are kept beside it and reused while the levels, its
checkpoint and ``specmem_cli/intervals.py`` are unchanged) of the default model and of our DLinear with its own recipe. Each
run's intervals are calibrated exactly as ``specmem train`` calibrates them (split-conformal on the run's
validation windows, :mod:`specmem_cli.intervals`; computed here from the checkpoint, so runs saved before
intervals existed are measured too), then scored once on the test split, every window kept:

- coverage: the share of test values (windows x steps x series) inside each central interval (e.g. 0.1-0.9,
  nominal 80%), per horizon (mean over seeds) and averaged over horizons, the levels adapting as the test
  actuals arrive (:class:`~specmem_cli.intervals.LevelTracker`; each window's levels use only forecasts whose
  whole horizon ended by its origin), as ``specmem train`` scores them;
- the same recipe with the validation levels alone (no adapting): coverage and pinball, for comparison;
- width: the interval's mean width, scaled units (the training scaler's standard deviations);
- pinball: the pinball loss averaged over ``--levels`` (an approximation of CRPS), scaled units; 4-horizon
  mean ± std over seeds, each seed's horizons averaged first;
- a check that sees no test window: the same recipe calibrated on the first validation windows and scored
  on the last 30% (:func:`~specmem_cli.intervals.held_out_split`, the split that chooses the shrink), the
  coverage averaged over horizons and seeds, and the relative change of its pinball loss that adapting
  makes there (mean over runs: what adapting costs where no shift separates calibration from scoring).

Goals (issue 13): 80% central interval coverage 0.77-0.83 averaged over horizons and 0.70-0.90 at every
horizon; the default's pinball loss below DLinear's on each data set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
from pathlib import Path

import numpy as np
import torch
from joblib import Parallel, delayed
from readme_block import rewrite_block
from suite import FILES, command, sweep

from specmem_cli.checkpoint import load_run
from specmem_cli.config import apply_overrides, load_config, with_model, with_protocol
from specmem_cli.intervals import (
    CalibrationCollector,
    IntervalScorer,
    central_pairs,
    check_levels,
    held_out_split,
    interval_name,
)
from specmem_cli.training.run import calibrate
from specmem_cli.training.summary import mean_std
from specmem_cli.training.trainer import evaluate_windows

START, END = "<!-- interval-results:start -->", "<!-- interval-results:end -->"
COVERAGE_GOAL, HORIZON_RANGE = (0.77, 0.83), (0.70, 0.90)


INTERVALS_CODE = Path(__file__).resolve().parents[1] / "specmem_cli" / "intervals.py"


def cached_interval_scores(run_dir: str, levels: np.ndarray) -> dict:
    """:func:`interval_scores`, kept beside the run (``interval_scores.json``) and reused while the levels, the
    checkpoint and ``specmem_cli/intervals.py`` are the same (rendering the table again then takes seconds)."""
    key = {
        "levels": [float(level) for level in levels],
        "checkpoint_mtime_ns": (Path(run_dir) / "checkpoint.pt").stat().st_mtime_ns,
        "intervals_code": hashlib.sha256(INTERVALS_CODE.read_bytes()).hexdigest(),
    }
    cache = Path(run_dir) / "interval_scores.json"
    if cache.is_file():
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            return kept["scores"]
    scores = interval_scores(run_dir, levels)
    cache.write_text(json.dumps({"key": key, "scores": scores}) + "\n")
    return scores


def _scores_with_threads(run_dir: str, levels: np.ndarray, threads: int) -> dict:
    torch.set_num_threads(threads)  # parallel scorers share the cores
    return cached_interval_scores(run_dir, levels)


def interval_scores(run_dir: str, levels: np.ndarray) -> dict:
    """Calibrate one finished run on its validation windows and score its intervals on the test split, with
    the levels adapting as the test actuals arrive (as ``specmem train`` scores them) and with the validation
    levels alone; and, as a check that sees no test window, calibrate on the first part of validation and
    score the last 30%."""
    run = load_run(run_dir)
    data = run.data()
    batch = run.config.train.batch_size
    calibration = calibrate(run.model, data, batch)
    levels = check_levels(list(levels), calibration)
    scorer, fixed = IntervalScorer(calibration, levels), IntervalScorer(calibration, levels, adapt=False)
    _score_together(run.model, data.test, batch, data.n_outputs, scorer, fixed)
    fit_end, cut = held_out_split(len(data.val), data.val.pred_len)
    collector = CalibrationCollector(data.val.pred_len, data.n_outputs)
    evaluate_windows(run.model, data.val.span(0, fit_end), batch, data.n_outputs, each_batch=collector.add)
    early = collector.finish()
    held_out, held_out_fixed = IntervalScorer(early, levels), IntervalScorer(early, levels, adapt=False)
    _score_together(run.model, data.val.span(cut, len(data.val)), batch, data.n_outputs, held_out, held_out_fixed)
    return {
        **scorer.result(),
        "fixed": fixed.result(),
        "shrink": calibration.shrink,
        "held_out_coverage": held_out.result()["coverage"],
        # what adapting does to the pinball loss where calibration and scoring come from the same months
        "held_out_pinball_change": held_out.result()["pinball"] / held_out_fixed.result()["pinball"] - 1,
    }


def _score_together(model, windows, batch: int, n_outputs: int, *scorers: IntervalScorer) -> None:
    """One pass over ``windows`` feeding every scorer (adapting and not), instead of one forward pass each."""

    def each_batch(prediction, target, inputs):
        for scorer in scorers:
            scorer.add(prediction, target, inputs)

    evaluate_windows(model, windows, batch, n_outputs, each_batch=each_batch)


def summary(records, levels: np.ndarray, name: str, jobs: int) -> dict:
    """Per horizon coverage and width (means over seeds); 4-horizon coverage, width and pinball (mean ± std)."""
    threads = max(1, (os.cpu_count() or 1) // jobs)
    scored = Parallel(n_jobs=jobs)(delayed(_scores_with_threads)(r.run_dir, levels, threads) for r in records)
    scores = {(r.pred_len, r.seed): result for r, result in zip(records, scored, strict=True)}
    horizons = sorted({h for h, _ in scores})
    seeds = sorted({s for _, s in scores})
    coverage = {h: statistics.fmean(scores[h, s]["coverage"][name] for s in seeds) for h in horizons}
    held_out = statistics.fmean(v["held_out_coverage"][name] for v in scores.values())
    held_out_change = statistics.fmean(v["held_out_pinball_change"] for v in scores.values())
    width = statistics.fmean(v["width"][name] for v in scores.values())
    pinball = mean_std([statistics.fmean(scores[h, s]["pinball"] for h in horizons) for s in seeds])
    shrinks = sorted({v["shrink"] for v in scores.values()})
    fixed_coverage = statistics.fmean(v["fixed"]["coverage"][name] for v in scores.values())
    fixed_pinball = mean_std([statistics.fmean(scores[h, s]["fixed"]["pinball"] for h in horizons) for s in seeds])
    return {
        "coverage": coverage,
        "held_out": held_out,
        "held_out_change": held_out_change,
        "width": width,
        "pinball": pinball,
        "shrinks": shrinks,
        "fixed": (fixed_coverage, fixed_pinball[0]),
    }


def table(rows: list[dict], name: str) -> str:
    horizons = sorted({h for row in rows for h in row["coverage"]})
    lines = [
        f"| data set | model | {name}% coverage, 4-horizon mean | "
        + " | ".join(f"h{h}" for h in horizons)
        + f" | mean width | pinball (mean ± std) | validation levels alone: {name}% coverage, pinball "
        f"| shrink chosen | last 30% of validation: {name}% coverage, pinball change from adapting | goal met | command |",
        "|" + "---|" * (len(horizons) + 10),
    ]
    for row in rows:
        average = statistics.fmean(row["coverage"].values())
        within = COVERAGE_GOAL[0] <= average <= COVERAGE_GOAL[1] and all(
            HORIZON_RANGE[0] <= value <= HORIZON_RANGE[1] for value in row["coverage"].values()
        )
        lower = row["pinball"][0] < row["peer_pinball"] if row["peer_pinball"] is not None else None
        verdict = (
            ("coverage yes" if within else "coverage no")
            + ("" if lower is None else ", pinball below DLinear" if lower else ", pinball not below DLinear")
            if name == "80"
            else "-"
        )
        lines.append(
            f"| {row['data']} | {row['model']} | {average:.3f} | "
            + " | ".join(f"{row['coverage'][h]:.3f}" for h in horizons)
            + f" | {row['width']:.3f} | {row['pinball'][0]:.4f} ± {row['pinball'][1]:.4f} | "
            + f"{row['fixed'][0]:.3f}, {row['fixed'][1]:.4f} | "
            + ", ".join(f"{s:g}" for s in row["shrinks"])
            + f" | {row['held_out']:.3f}, {row['held_out_change']:+.2%} | {verdict} | `{row['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=list(FILES), help="names of the shared files, or CSV paths")
    parser.add_argument("--out", type=Path, default=Path("runs/suite"), help="the suite's run directories")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019, 2020, 2021])
    parser.add_argument("--levels", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    parser.add_argument("--readme", type=Path, help="rewrite the interval block of this README")
    parser.add_argument(
        "--jobs", type=int, default=1, help="parallel runs: training those not yet trained, and scoring"
    )
    args = parser.parse_args()
    levels = check_levels(args.levels)
    pairs = central_pairs(levels)
    if not pairs:
        parser.error("--levels must hold at least one central pair, e.g. 0.1 and 0.9")
    name = interval_name(pairs[-1][0])  # the narrowest central interval the levels form
    rows = []
    for data_name in args.data:
        source = FILES.get(data_name, Path(data_name))
        label = data_name if data_name in FILES else Path(data_name).stem
        settings = [f"data.name={source}", f"seeds={args.seeds}"]
        peer = None
        for model in ("dlinear", None):  # DLinear first: the default's row is compared with it
            base = load_config("default")
            config = with_protocol(apply_overrides(with_model(base, model) if model else base, settings))
            records, _ = sweep(config, args.out / label / (model or "default"), args.jobs)
            row = summary(records, levels, name, args.jobs)
            row.update(
                data=label,
                model=model or "default",
                command=command(label, model, args.seeds),
                peer_pinball=peer if model is None else None,
            )
            peer = row["pinball"][0]
            rows.append(row)
            print(
                f"{label:>8} {row['model']:<8} {name}% coverage {statistics.fmean(row['coverage'].values()):.3f} "
                f"(per horizon {', '.join(f'{v:.3f}' for v in row['coverage'].values())}) width {row['width']:.3f} "
                f"pinball {row['pinball'][0]:.4f} ± {row['pinball'][1]:.4f}; validation levels alone {row['fixed'][0]:.3f}, "
                f"{row['fixed'][1]:.4f}; last 30% of validation {row['held_out']:.3f} ({row['held_out_change']:+.2%} pinball from adapting)",
                flush=True,
            )
    rows.sort(key=lambda row: (row["data"], row["model"] != "default"))
    text = table(rows, name)
    print(text)
    if args.readme:
        levels_text = " ".join(f"{level:g}" for level in levels)
        rewrite_block(
            args.readme,
            START,
            END,
            f"python benchmarks/intervals.py --levels {levels_text} --readme README.md",
            text,
        )


if __name__ == "__main__":
    main()
