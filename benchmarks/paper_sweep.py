"""The published configuration's ETTh1 sweep (configs/etth1_paper.yaml, 154-157M parameters) on an accelerator.

    python benchmarks/paper_sweep.py --device cuda [--data ETTh1.csv] [--seeds 2021 2019 2020] [--jobs 4]
                                     [--minutes 8] [--json paper_sweep.json]
    python benchmarks/paper_sweep.py --render paper_sweep.json [--readme README.md]

It trains exactly what ``specmem train --config etth1_paper --device cuda`` trains (look-back 96,
horizons 96/192/336/720, TSL's recipe: MSE, Adam lr 1e-4, batch 32, ``type1``, 10 epochs, patience 3,
memory reset before validation and test as published), one seed at a time with the four horizons in
parallel, in float32 (PyTorch's default matmul precision, as the published code ran). A seed's sweep
is started only if one more (as long as the last) still ends within ``--minutes``, and the JSON is rewritten after each seed, so
a run cut short keeps every seed it finished. On a 2-core CPU one sweep takes days (about 12 s a
step), which is why this needs a GPU.

``--render`` prints (and with ``--readme`` writes) the README table from that JSON: per horizon the
test MSE of each seed, mean ± std over the seeds run, beside the published per-seed figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from readme_block import rewrite_block

from specmem_cli.config import apply_overrides, load_config
from specmem_cli.training.sweep import run_sweep

SHARED_ETTH1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ETT-small" / "ETTh1.csv"
START, END = "<!-- paper-sweep:start -->", "<!-- paper-sweep:end -->"
# The seed document's "ETTh1 Results by Seed" table (test MSE), quoted, not measured here.
PUBLISHED = {
    96: {2019: 0.418, 2020: 0.381, 2021: 0.380},
    192: {2019: 0.418, 2020: 0.420, 2021: 0.419},
    336: {2019: 0.451, 2020: 0.456, 2021: 0.451},
    720: {2019: 0.446, 2020: 0.501, 2021: 0.468},
}


def run(args: argparse.Namespace) -> dict:
    config = apply_overrides(
        load_config("etth1_paper"),
        [f"data.name={args.data}", f"train.device={args.device}", "train.threads=4", *args.set],
    )
    result = {
        "command": "python benchmarks/paper_sweep.py " + shlex.join(sys.argv[1:]),
        "config": "configs/etth1_paper.yaml",
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "jobs": args.jobs,
        "overrides": args.set,
        "seeds": {},
    }
    started, last_wall = time.perf_counter(), 0.0
    for seed in args.seeds:
        if time.perf_counter() - started + last_wall > args.minutes * 60:
            print(f"seed {seed}: not started (another seed's {last_wall:.0f} s would overrun --minutes)", flush=True)
            break
        seed_start = time.perf_counter()
        records = run_sweep(apply_overrides(config, [f"seeds=[{seed}]"]), args.out, jobs=args.jobs)
        runs = []
        for record in records:
            fit = json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]
            keep = ("best_epoch", "epochs_run", "steps", "best_val_mse", "seconds", "seconds_per_step", "device")
            runs.append(
                {"pred_len": record.pred_len, "mse": record.mse, "mae": record.mae, **{k: fit[k] for k in keep}}
            )
        last_wall = time.perf_counter() - seed_start
        result["seeds"][str(seed)] = {"wall_seconds": last_wall, "runs": runs}
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"seed {seed}: {[(r['pred_len'], round(r['mse'], 4)) for r in runs]}", flush=True)
    return result


def merged(results: list[dict]) -> dict:
    """The seeds of several JSONs this script wrote (a sweep may be finished in several sessions) as one."""
    first = results[0]
    for other in results[1:]:
        for key in ("config", "device", "torch", "overrides"):
            if other[key] != first[key]:
                raise SystemExit(f"the JSONs differ in {key} ({first[key]} / {other[key]}): not one sweep")
        if set(other["seeds"]) & set(first["seeds"]):
            raise SystemExit(f"seed(s) {sorted(set(other['seeds']) & set(first['seeds']))} appear in two JSONs")
    seeds = {seed: {**sweep, "command": r["command"]} for r in results for seed, sweep in r["seeds"].items()}
    return {**first, "seeds": seeds}


def render(result: dict) -> str:
    seeds = sorted(int(s) for s in result["seeds"])
    by_run = {(int(s), r["pred_len"]): r for s, sweep in result["seeds"].items() for r in sweep["runs"]}
    horizons = sorted({h for _, h in by_run})
    lines = [
        "| horizon | " + " | ".join(f"seed {s} MSE (published)" for s in seeds) + " | mean ± std MSE | mean MAE "
        "| published mean | epochs run (best) | s/step |",
        "|" + "---|" * (len(seeds) + 6),
    ]

    def mean_std(values: list[float]) -> str:
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        return f"{statistics.fmean(values):.4f} ± {spread:.4f}"

    for h in horizons:
        runs = [by_run[(s, h)] for s in seeds]
        cells = [f"{r['mse']:.4f} ({PUBLISHED[h][s]:.3f})" for s, r in zip(seeds, runs, strict=True)]
        published = statistics.fmean(PUBLISHED[h][s] for s in seeds)
        epochs = ", ".join(f"{r['epochs_run']} ({r['best_epoch'] + 1})" for r in runs)
        step = statistics.fmean(r["seconds_per_step"] for r in runs)
        lines.append(
            f"| {h} | " + " | ".join(cells) + f" | {mean_std([r['mse'] for r in runs])} | "
            f"{statistics.fmean(r['mae'] for r in runs):.4f} | {published:.3f} | {epochs} | {step:.3f} |"
        )
    averages = [statistics.fmean(by_run[(s, h)]["mse"] for h in horizons) for s in seeds]
    published_avg = [statistics.fmean(PUBLISHED[h][s] for h in horizons) for s in seeds]
    mae_avg = statistics.fmean(by_run[(s, h)]["mae"] for s in seeds for h in horizons)
    lines.append(
        "| **avg** | "
        + " | ".join(f"{a:.4f} ({p:.3f})" for a, p in zip(averages, published_avg, strict=True))
        + f" | **{mean_std(averages)}** | {mae_avg:.4f} | {statistics.fmean(published_avg):.3f} | | |"
    )
    changed = f" with `--set {' '.join(result['overrides'])}` (not the published config)" if result["overrides"] else ""
    lines += [
        "",
        f"configs/etth1_paper.yaml{changed} on one {result['device']}, torch {result['torch']}, float32, the four "
        f"horizons of a seed in parallel (`--jobs {result['jobs']}`). Per seed, its wall and the command that ran it:",
        "",
    ]
    for s in seeds:
        sweep = result["seeds"][str(s)]
        lines.append(f"- seed {s}: {sweep['wall_seconds'] / 60:.1f} min, `{sweep.get('command', result['command'])}`")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or mps (on a CPU this takes days)")
    parser.add_argument("--data", default=str(SHARED_ETTH1), help="ETTh1.csv (a path or a downloaded set's name)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[2021, 2019, 2020], help="in the order they run")
    parser.add_argument("--jobs", type=int, default=4, help="runs in parallel on the one device")
    parser.add_argument("--minutes", type=float, default=float("inf"), help="start no seed that would end after this")
    parser.add_argument("--out", type=Path, default=Path("runs/paper_sweep"))
    parser.add_argument("--json", type=Path, help="write the figures here (after each seed)")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        help="config overrides (smoke tests only: a changed config is not the published one)",
    )
    parser.add_argument(
        "--render",
        type=Path,
        nargs="+",
        help="print the table from JSON(s) this script wrote (seeds merged); train nothing",
    )
    parser.add_argument("--readme", type=Path, help="with --render: rewrite the paper-sweep block of this README")
    args = parser.parse_args()
    if args.readme and not args.render:
        parser.error("--readme needs --render JSON (the figures of a finished run of this script)")
    result = merged([json.loads(path.read_text()) for path in args.render]) if args.render else run(args)
    text = render(result)
    print(text)
    if args.readme:
        command = (
            f"python benchmarks/paper_sweep.py --render {shlex.join(map(str, args.render))} --readme {args.readme}"
        )
        rewrite_block(args.readme, START, END, command, text)


if __name__ == "__main__":
    main()
