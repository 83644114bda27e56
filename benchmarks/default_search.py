"""Validation-only search over the default's training settings: which change, if any, helps on every data set?

    python benchmarks/default_search.py [--data ETTh1 ETTm1 ETTm2 weather] [--variants base lr0.005 ...]
                                        [--horizons 96 192 336 720] [--seeds 2019] [--jobs 2] [--device cpu]
                                        [--out runs/default_search] [--json rows.json]
    python benchmarks/default_search.py --render rows.json [more.json ...] [--readme README.md]

What it measures: for each variant (named below: ``configs/default.yaml`` with a few ``--set`` overrides)
and each (data set, horizon, seed), one run of the default's network with its memory off (the memory is
gated after the network is trained and chosen, so it cannot change which settings train the better
network), and the **validation** MSE of the network the run kept (``fit.best_val_mse``: the linear map, the
MLP or their mix, whichever ``head: auto`` kept). The test split is scored by each run, as every run
scores it, but this benchmark never reads it: a setting is chosen here on validation alone.

It prints, per variant and data set, the mean over horizons and seeds of the validation MSE relative to
``base`` (the default as shipped), in percent (negative: lower validation error), and how many of the
(horizon, seed) cells moved each way. Cells run in parallel, one process each (``--jobs``), one torch
thread each; on a GPU node, ``--device cuda`` trains there (the figures then differ from a CPU's by
rounding only, so compare variants measured on the same device).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from joblib import Parallel, delayed
from readme_block import rewrite_block
from suite import FILES

from specmem_cli.config import apply_overrides, load_config, with_protocol
from specmem_cli.training.sweep import run_sweep

VARIANTS = {
    "base": [],
    "lr0.005": ["train.lr=0.005"],
    "lr0.02": ["train.lr=0.02"],
    "mse": ["train.loss=mse"],
    "batch128": ["train.batch_size=128"],
    "epochs50": ["train.epochs=50", "train.patience=8"],
    "hidden64": ["model.hidden=64"],
    "hidden256": ["model.hidden=256"],
    "hidden512": ["model.hidden=512"],
    # fewer (window, series) pairs per epoch: faster where a file has more (weather 0.77M, ETTm1 0.24M;
    # ETTh1's 0.06M are below every cap); the schedule and early stopping then count smaller epochs
    "samples100k": ["train.epoch_samples=100000"],
    "samples200k": ["train.epoch_samples=200000"],
    "samples400k": ["train.epoch_samples=400000"],
    "patience3": ["train.patience=3"],
}
START, END = "<!-- default-search:start -->", "<!-- default-search:end -->"


def run_cell(variant: str, data: str, horizon: int, seed: int, device: str, out: Path) -> dict:
    """One (variant, data set, horizon, seed) run, trained as ``specmem train`` trains it; its validation row."""
    settings = [
        f"data.name={FILES.get(data, data)}",
        f"data.pred_lens=[{horizon}]",
        f"seeds=[{seed}]",
        "model.memory=off",
        f"train.device={device}",
        "train.threads=1",
        *VARIANTS[variant],
    ]
    config = with_protocol(apply_overrides(load_config("default"), settings))
    started = time.perf_counter()
    (record,) = run_sweep(config, out / variant / Path(data).stem)
    fit = json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]
    return {
        "variant": variant,
        "overrides": VARIANTS[variant],
        "data": Path(data).stem,
        "pred_len": horizon,
        "seed": seed,
        "val_mse": fit["best_val_mse"],
        "head": fit["choice"]["chosen"]["head"],
        "epochs_run": fit["epochs_run"],
        "steps": fit["steps"],  # the kept single map's optimiser steps: its training cost on any device
        "seconds": round(time.perf_counter() - started, 1),
        "device": device,
    }


def _cell(row: dict) -> tuple:
    return row.get("source"), row["data"], row["pred_len"], row["seed"]


def table(rows: list[dict]) -> str:
    """Per variant and data set: mean relative validation MSE against ``base`` over the cells both have, each
    variant against the base of its own search (``source``: GPU runs of the same cell differ between searches)."""
    base = {_cell(r): r["val_mse"] for r in rows if r["variant"] == "base"}
    first = rows[0].get("source")
    datasets = list(dict.fromkeys(r["data"] for r in rows))
    variants = [v for v in dict.fromkeys(r["variant"] for r in rows) if v != "base"]
    lines = [
        "| variant | " + " | ".join(datasets) + " | mean | seconds per cell | steps against base |",
        "|---|" + "---|" * (len(datasets) + 3),
    ]
    base_means = [
        statistics.mean(
            r["val_mse"] for r in rows if r["variant"] == "base" and r["data"] == data and r.get("source") == first
        )
        for data in datasets
    ]
    lines.append(
        "| base (validation MSE, mean over cells) | " + " | ".join(f"{m:.4f}" for m in base_means) + " | | | |"
    )
    base_steps = {_cell(r): r["steps"] for r in rows if r["variant"] == "base" and "steps" in r}
    for variant in variants:
        cells, everything = [], []
        mine = [r for r in rows if r["variant"] == variant]
        for data in datasets:
            change = [
                100 * (r["val_mse"] / base[key] - 1) for r in mine if r["data"] == data and (key := _cell(r)) in base
            ]
            everything += change
            lower = sum(c < 0 for c in change)
            cells.append(f"{statistics.mean(change):+.2f}% ({lower}/{len(change)} lower)" if change else "-")
        mean = f"{statistics.mean(everything):+.2f}%" if everything else "-"
        seconds = statistics.mean(r["seconds"] for r in mine)
        paired = [(r["steps"], base_steps[_cell(r)]) for r in mine if "steps" in r and _cell(r) in base_steps]
        steps = f"{sum(s for s, _ in paired) / sum(b for _, b in paired):.2f}x" if paired else "-"
        lines.append(
            f"| {variant} `{' '.join(VARIANTS.get(variant, []))}` | "
            + " | ".join(cells)
            + f" | {mean} | {seconds:.0f} | {steps} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=list(FILES), help="names of the shared files, or CSV paths")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 192, 336, 720])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019])
    parser.add_argument("--jobs", type=int, default=2, help="cells trained at once (one process, one thread each)")
    parser.add_argument("--device", default="cpu", help="where the runs train (train.device): cpu, cuda")
    parser.add_argument("--out", type=Path, default=Path("runs/default_search"))
    parser.add_argument("--json", type=Path, help="write every cell's row here")
    parser.add_argument("--render", type=Path, nargs="+", help="train nothing: the table of these rows files")
    parser.add_argument("--readme", type=Path, help="with --render: rewrite the default-search block of this README")
    args = parser.parse_args()
    if args.render:
        rows = [{**row, "source": path.name} for path in args.render for row in json.loads(path.read_text())]
    else:
        if "base" not in args.variants:
            raise SystemExit("--variants must include base: every figure is relative to it")
        # Longest cells first, every variant's cell of a (data set, horizon) side by side: a run stopped
        # early still holds comparable cells.
        cells = [
            (variant, data, horizon, seed)
            for horizon in sorted(args.horizons, reverse=True)
            for data in args.data
            for seed in args.seeds
            for variant in args.variants
        ]
        rows = []
        for row in Parallel(n_jobs=args.jobs, return_as="generator_unordered")(
            delayed(run_cell)(*cell, args.device, args.out) for cell in cells
        ):
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.json:
                args.json.write_text(json.dumps(rows, indent=1) + "\n")
    text = table(rows)
    print(text)
    if args.readme and args.render:
        devices = ", ".join(sorted({row["device"] for row in rows}))
        seeds = ", ".join(map(str, sorted({row["seed"] for row in rows})))
        body = f"{text}\n\nValidation MSE only (device: {devices}; seeds {seeds}; memory off; every horizon of each data set)."
        files = " ".join(map(str, args.render))
        rewrite_block(
            args.readme, START, END, f"python benchmarks/default_search.py --render {files} --readme README.md", body
        )


if __name__ == "__main__":
    main()
