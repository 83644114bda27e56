"""Does a memory help each backbone? Memory off, spectral (published reset / frozen) and analog, side by side.

    python benchmarks/memory_ablation.py [--data ETTh1 ETTm1] [--horizons 96 336] [--seeds 2019 2020 2021]
                                         [--backbones gru lstm s4d multires klmemory patchtst itransformer]
                                         [--jobs 2]
                                         [--out runs/memory_ablation] [--finished-only] [--readme README.md]

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
by more than twice its std. Seconds per run are training seconds (mean over the row's trained runs).
Finished runs in ``--out`` are reused, so the benchmark resumes where it stopped; ``--finished-only``
trains nothing and reports the cells whose runs are all finished (each row names the command that
trains it alone), so a grid run in parts can be written to the README as far as it got.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

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
]
SIZES = {
    "gru": ["model.d_model=64"],
    "lstm": ["model.d_model=64"],
    "s4d": ["model.d_model=32"],
    "multires": ["model.d_model=32"],
    "klmemory": [
        "model.d_model=64",
        "model.n_heads=4",
        "model.d_ff=128",
        "model.e_layers=2",
        "model.projection=bottleneck",
        "model.memory_depth=512",
        "model.n_components=8",
    ],
    "patchtst": ["model.d_model=64", "model.n_heads=4", "model.d_ff=128"],
    "itransformer": [],  # TSL's ETTh1 size (d_model 128, 2 layers) is already a CPU size
}
VARIANTS = ("spectral, reset", "spectral, frozen", "analog")
START, END = "<!-- memory-ablation:start -->", "<!-- memory-ablation:end -->"


def sweep_config(backbone: str, memory: str, data: Path, horizons: list[int], seeds: list[int]) -> ExperimentConfig:
    settings = [
        f"data.name={data}",
        f"data.pred_lens={horizons}",
        f"seeds={seeds}",
        f"model.memory={memory}",
        *RECIPE,
        *SIZES.get(backbone, []),
    ]
    return with_protocol(apply_overrides(with_model(load_config("etth1_backbones"), backbone), settings))


def finished(config: ExperimentConfig, out: Path) -> bool:
    """Whether every (horizon, seed) run of ``config`` has finished under ``out`` (nothing is trained)."""
    runs = [RunSpec.of(config, p, s) for p in config.data.pred_lens for s in config.seeds]
    return all((out / run.name / "metrics.json").is_file() for run in runs)


def cell_command(data: str, horizon: int, backbone: str, seeds: list[int]) -> str:
    seed_list = " ".join(map(str, seeds))
    return (
        f"python benchmarks/memory_ablation.py --data {data} --horizons {horizon} --backbones {backbone} "
        f"--seeds {seed_list}"
    )


def compare(variants: dict[str, list[RunRecord]], horizon: int) -> dict:
    """MSE mean ± std per variant and each variant's paired difference to ``off`` at one horizon."""
    by_seed = {name: {r.seed: r for r in records if r.pred_len == horizon} for name, records in variants.items()}
    seeds = sorted(by_seed["off"])
    row = {}
    for name, runs in by_seed.items():
        row[name] = {"mse": mean_std([runs[s].mse for s in seeds])}
        if name != "off":
            difference = mean_std([runs[s].mse - by_seed["off"][s].mse for s in seeds])
            row[name]["difference"] = difference
            row[name]["beats_off"] = difference[0] < 0 and -difference[0] > 2 * difference[1]
    trained = [r for name in ("analog", "spectral, frozen") for r in variants[name] if r.pred_len == horizon]
    row["seconds"] = statistics.fmean(r.seconds for r in trained)
    return row


def table(rows: list[dict]) -> str:
    lines = [
        "| data set | horizon | backbone | off | "
        + " | ".join(f"{name} | Δ vs off" for name in VARIANTS)
        + " | a variant beats off (> 2 std) | s/run | command |",
        "|" + "---|" * (5 + 2 * len(VARIANTS) + 2),
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
            + f" | {', '.join(winners) or 'none'} | {row['seconds']:.0f} | `{row['command']}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["ETTh1", "ETTm1"], help="names of the shared files, or CSVs")
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 336])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019, 2020, 2021])
    parser.add_argument("--backbones", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--out", type=Path, default=Path("runs/memory_ablation"))
    parser.add_argument(
        "--finished-only", action="store_true", help="train nothing: report the cells whose runs all finished"
    )
    parser.add_argument("--readme", type=Path, help="rewrite the memory-ablation block of this README")
    args = parser.parse_args()
    rows = []
    for name in args.data:
        source = FILES.get(name, Path(name))
        label = name if name in FILES else Path(name).stem
        for backbone, horizon in [(b, h) for b in args.backbones for h in args.horizons]:
            records = {}
            for memory in ("analog", "spectral"):
                config = sweep_config(backbone, memory, source, [horizon], args.seeds)
                out = args.out / label / f"{backbone}_{memory}"
                if args.finished_only and not finished(config, out):
                    print(f"not finished, left out: {label} h{horizon} {backbone} ({memory})", flush=True)
                    break
                records[memory] = run_sweep(config, out, jobs=args.jobs)
            else:
                variants = {
                    "off": memory_off_records(records["analog"]),
                    "spectral, reset": memory_off_records(records["spectral"]),
                    "spectral, frozen": records["spectral"],
                    "analog": records["analog"],
                }
                command = cell_command(name, horizon, backbone, args.seeds)
                row = {"data": label, "horizon": horizon, "backbone": backbone, "command": command}
                rows.append({**row, **compare(variants, horizon)})
                print(table(rows[-1:]).splitlines()[-1], flush=True)
    text = table(rows)
    print(text)
    if args.readme:
        flags = " --finished-only" if args.finished_only else f" --jobs {args.jobs}"
        command = (
            f"python benchmarks/memory_ablation.py --data {' '.join(args.data)} --horizons "
            f"{' '.join(map(str, args.horizons))} --backbones {' '.join(args.backbones)} --seeds "
            f"{' '.join(map(str, args.seeds))}{flags} --readme README.md"
        )
        rewrite_block(args.readme, START, END, command, text)


if __name__ == "__main__":
    main()
