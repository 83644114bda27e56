"""Does a memory help each backbone? Memory off, spectral (published reset / frozen) and analog, side by side.

    python benchmarks/memory_ablation.py [--data ETTh1 ETTm1] [--horizons 96 336] [--seeds 2019 2020 2021]
                                         [--backbones gru lstm s4d multires klmemory patchtst itransformer]
                                         [--jobs 2] [--device cpu]
                                         [--out runs/memory_ablation] [--finished-only] [--readme README.md]
    python benchmarks/memory_ablation.py --render [--readme README.md]

What it measures, for each backbone, data set, horizon and seed (look-back 96, TSL splits, every test
window kept), with one CPU recipe for every backbone (:data:`RECIPE`, sizes in :data:`SIZES`):

- ``analog``: the run trained with ``model.memory=analog``: the network trains alone, then the analog
  memory is built from the training windows, its per-step blend fitted, and kept only where it lowers
  the validation error (``specmem_cli/models/analog_blend.py``);
- ``off``: that same run's network scored with the memory not read. The analog memory is built after
  training, so this is the very network ``model.memory=off`` trains (``tests/test_memory_variants.py``
  checks it weight for weight); no second training;
- ``spectral, frozen``: trained with ``model.memory=spectral`` (written every training batch), read at
  evaluation as training left it;
- ``spectral, reset``: that same run's network scored with the memory emptied, as the published code
  evaluates (its epoch was chosen on validation read under ``frozen``: the one difference from
  training under ``reset``, and it halves the cost).

Per row: test MSE mean ± std over seeds, and for each variant its paired difference to ``off`` (the
same seed's runs; mean ± std over seeds); a variant *beats* off when the mean difference is below zero
by more than twice its std. Seconds per run are a trained run's (training, the memory's fit, test
scoring; mean over the row's trained runs).
Finished runs in ``--out`` are reused, so the benchmark resumes where it stopped; ``--finished-only``
trains nothing and reports the cells whose runs are all finished (each row names the command that
trains it alone), so a grid run in parts can be written to the README as far as it got.

Each finished cell is also kept as a small JSON file in ``benchmarks/results/memory_ablation/`` (its row,
per-seed MSE, and where it ran), because the runs themselves (checkpoints) stay on the machine that
trained them: cells measured on different machines, or in different sessions, add up to one table.
``--readme`` writes the table from every kept cell; ``--render`` does only that, training nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

import torch
from readme_block import rewrite_block
from suite import FILES, memory_off_records

from specmem_cli.config import ExperimentConfig, RunSpec, apply_overrides, load_config, with_model, with_protocol
from specmem_cli.training.run import RunRecord
from specmem_cli.training.summary import mean_std
from specmem_cli.training.sweep import run_sweep

RECIPE = [
    "train.epochs=4",
    "train.batch_size=128",
    "train.lr=0.002",
    "train.patience=2",
    "train.lr_schedule=type1",
    "train.loss=mse",
    "train.memory_at_eval=frozen",
    # an epoch sees at most ETTh1's whole training split in (window, series) pairs (8,449 x 7 = 59,143 at
    # horizon 96): ETTh1's epochs are untouched, ETTm1's (241,255 pairs) train on a fresh quarter of its
    # windows each, so an ETTm1 cell costs about what an ETTh1 cell does (the grid: about 3-4 h on 2 cores)
    "train.epoch_samples=60000",
]
SIZES = {
    "gru": ["model.d_model=64"],
    "lstm": ["model.d_model=64"],
    "s4d": ["model.d_model=32"],
    "multires": ["model.d_model=32"],
    # one encoder layer: with two, a step (attention and its dropout over 96 point tokens, batch 128 x 7)
    # took about 2.5 s on one thread and this backbone alone about half the grid's time
    "klmemory": [
        "model.d_model=64",
        "model.n_heads=4",
        "model.d_ff=128",
        "model.e_layers=1",
        "model.projection=bottleneck",
        "model.memory_depth=512",
        "model.n_components=8",
    ],
    "patchtst": ["model.d_model=64", "model.n_heads=4", "model.d_ff=128"],
    "itransformer": [],  # TSL's ETTh1 size (d_model 128, 2 layers) is already a CPU size
}
VARIANTS = ("spectral, reset", "spectral, frozen", "analog")
RESULTS = Path(__file__).resolve().parent / "results" / "memory_ablation"
START, END = "<!-- memory-ablation:start -->", "<!-- memory-ablation:end -->"


def sweep_config(
    backbone: str, memory: str, data: Path, horizons: list[int], seeds: list[int], device: str = "cpu", threads: int = 0
) -> ExperimentConfig:
    settings = [
        *([f"train.threads={threads}"] if threads else []),
        f"data.name={data}",
        f"data.pred_lens={horizons}",
        f"seeds={seeds}",
        f"model.memory={memory}",
        f"train.device={device}",
        *RECIPE,
        *SIZES.get(backbone, []),
    ]
    return with_protocol(apply_overrides(with_model(load_config("etth1_backbones"), backbone), settings))


def finished(config: ExperimentConfig, out: Path) -> bool:
    """Whether every (horizon, seed) run of ``config`` has finished under ``out`` (nothing is trained)."""
    runs = [RunSpec.of(config, p, s) for p in config.data.pred_lens for s in config.seeds]
    return all((out / run.name / "metrics.json").is_file() for run in runs)


def cell_command(data: str, horizon: int, backbone: str, seeds: list[int], device: str = "cpu") -> str:
    seed_list = " ".join(map(str, seeds))
    switch = "" if device == "cpu" else f" --device {device}"
    return (
        f"python benchmarks/memory_ablation.py --data {data} --horizons {horizon} --backbones {backbone} "
        f"--seeds {seed_list}{switch}"
    )


def machine(device: str, jobs: int) -> str:
    """Where a cell trained, for its s/run to be read against: the GPU's name, or the CPU's core count."""
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else f"{os.cpu_count()}-core CPU"
    return f"{where}, --jobs {jobs}"


def compare(variants: dict[str, list[RunRecord]], horizon: int) -> dict:
    """MSE mean ± std per variant and each variant's paired difference to ``off`` at one horizon."""
    by_seed = {name: {r.seed: r for r in records if r.pred_len == horizon} for name, records in variants.items()}
    seeds = sorted(by_seed["off"])
    row = {}
    for name, runs in by_seed.items():
        row[name] = {"mse": mean_std([runs[s].mse for s in seeds]), "per_seed": {s: runs[s].mse for s in seeds}}
        if name != "off":
            difference = mean_std([runs[s].mse - by_seed["off"][s].mse for s in seeds])
            row[name]["difference"] = difference
            row[name]["beats_off"] = difference[0] < 0 and -difference[0] > 2 * difference[1]
    trained = [r for name in ("analog", "spectral, frozen") for r in variants[name] if r.pred_len == horizon]
    row["seconds"] = statistics.fmean(r.seconds for r in trained)
    return row


def keep(row: dict, results: Path) -> Path:
    """Write one finished cell's row where ``--readme`` finds it, replacing an earlier measurement of it."""
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{row['data']}_h{row['horizon']}_{row['backbone']}.json"
    path.write_text(json.dumps(row, indent=1) + "\n")
    return path


def kept_rows(results: Path) -> list[dict]:
    """Every kept cell, in table order: data set, then backbone as in :data:`SIZES`, then horizon."""
    rows = [json.loads(path.read_text()) for path in sorted(results.glob("*.json"))]
    order = list(SIZES)
    return sorted(rows, key=lambda r: (r["data"], order.index(r["backbone"]), r["horizon"]))


def where(row: dict) -> str:
    """Where a cell ran, and how its recipe differed from today's where a cell kept from before says so."""
    return f"{row['ran_on']}; {row['recipe_note']}" if "recipe_note" in row else row["ran_on"]


def table(rows: list[dict]) -> str:
    lines = [
        "| data set | horizon | backbone | off | "
        + " | ".join(f"{name} | Δ vs off" for name in VARIANTS)
        + " | a variant beats off (> 2 std) | s/run | ran on | command |",
        "|" + "---|" * (5 + 2 * len(VARIANTS) + 3),
    ]
    for row in rows:
        cells = [f"{row['off']['mse'][0]:.4f} ± {row['off']['mse'][1]:.4f}"]
        for name in VARIANTS:
            mse, difference = row[name]["mse"], row[name]["difference"]
            mark = "**" if row[name]["beats_off"] else ""
            cells += [f"{mse[0]:.4f} ± {mse[1]:.4f}", f"{mark}{difference[0]:+.4f} ± {difference[1]:.4f}{mark}"]
        winners = [name for name in VARIANTS if row[name]["beats_off"]]
        lines.append(
            f"| {row['data']} | {row['horizon']} | {row['backbone']} | "
            + " | ".join(cells)
            + f" | {', '.join(winners) or 'none'} | {row['seconds']:.0f} | {where(row)} | `{row['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["ETTh1", "ETTm1"], help="names of the shared files, or CSVs")
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 336])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019, 2020, 2021])
    parser.add_argument("--backbones", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--device", default="cpu", help="where the runs train (train.device): cpu, cuda, cuda:1")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads per run (default: the cores divided by --jobs)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/memory_ablation"))
    parser.add_argument("--results", type=Path, default=RESULTS, help="where each finished cell's row is kept")
    parser.add_argument(
        "--finished-only", action="store_true", help="train nothing: report the cells whose runs all finished"
    )
    parser.add_argument("--render", action="store_true", help="train nothing: print the table of the kept cells")
    parser.add_argument("--readme", type=Path, help="rewrite the memory-ablation block of this README (kept cells)")
    args = parser.parse_args()
    if not args.render:
        measure(args)
    text = table(kept_rows(args.results))
    print(text)
    if args.readme:
        rewrite_block(args.readme, START, END, "python benchmarks/memory_ablation.py --render --readme README.md", text)


def measure(args: argparse.Namespace) -> None:
    """Train (or reuse) each requested cell's runs and keep each finished cell's row.

    Each memory's runs for a backbone are one sweep over every horizon, so no worker waits idle at the end of
    a horizon's three seeds (iTransformer on ETTh1: 133 s against 143 s as sweeps per horizon, same MSEs).
    """
    for name in args.data:
        source = FILES.get(name, Path(name))
        label = name if name in FILES else Path(name).stem
        for backbone in args.backbones:
            horizons, out = args.horizons, {m: args.out / label / f"{backbone}_{m}" for m in ("analog", "spectral")}
            if args.finished_only:
                horizons = [
                    h
                    for h in horizons
                    if all(finished(runs_config(args, backbone, m, source, [h]), out[m]) for m in out)
                ]
                for horizon in sorted(set(args.horizons) - set(horizons)):
                    print(f"not finished, left out: {label} h{horizon} {backbone}", flush=True)
                if not horizons:
                    continue
            records = {
                memory: run_sweep(runs_config(args, backbone, memory, source, horizons), out[memory], jobs=args.jobs)
                for memory in out
            }
            for horizon in horizons:
                at = {memory: [r for r in runs if r.pred_len == horizon] for memory, runs in records.items()}
                variants = {
                    "off": memory_off_records(at["analog"], args.device, args.jobs),
                    "spectral, reset": memory_off_records(at["spectral"], args.device, args.jobs),
                    "spectral, frozen": at["spectral"],
                    "analog": at["analog"],
                }
                row = {
                    "data": label,
                    "horizon": horizon,
                    "backbone": backbone,
                    "command": cell_command(name, horizon, backbone, args.seeds, args.device),
                    "ran_on": machine(args.device, args.jobs),
                    "torch": torch.__version__,
                    **compare(variants, horizon),
                }
                print(table([row]).splitlines()[-1], f"(kept in {keep(row, args.results)})", flush=True)


def runs_config(
    args: argparse.Namespace, backbone: str, memory: str, source: Path, horizons: list[int]
) -> ExperimentConfig:
    """The sweep of one backbone and memory over ``horizons``, with the command line's seeds, device, threads."""
    return sweep_config(backbone, memory, source, horizons, args.seeds, args.device, args.threads)


if __name__ == "__main__":
    main()
