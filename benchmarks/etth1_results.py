"""The README's ETTh1 results: configs/etth1.yaml, its memory ablation, and baselines, under one protocol.

    python benchmarks/etth1_results.py [--data ETTh1.csv] [--out runs/etth1_results] [--readme README.md]
                                       [--baselines dlinear itransformer] [--jobs 1]

Every variant is a sweep of horizons 96/192/336/720 x seeds 2019/2020/2021 (look-back 96, early
stopping on validation, test scored once), run exactly as ``specmem train`` runs it:

- ``klcycle``: ``configs/etth1.yaml`` as shipped (the network trains alone; then the analog memory is built
  from the training windows, its blend fitted, and kept where it lowers the validation error);
- ``memory off``: no memory at all, ``--set model.memory=off`` (the cycle-aware linear model alone). The
  published evaluation (``train.memory_at_eval=reset``: the memory emptied before validation and test)
  is the same model as this one now that the network never trains with the memory, so it has no row;
- each ``--baselines`` model with its own preset (``configs/models/NAME.yaml``) and the TSL training
  defaults (as ``benchmarks/baselines.py`` runs them), same data, horizons and seeds.

Finished runs under ``--out`` are reused, so a rerun only prints; a sweep's wall time is measured
when its runs are fresh and kept in ``sweep_wall.json`` beside them. ``--readme`` rewrites the block
between the results markers in the README with the table this prints.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from readme_block import rewrite_block

from specmem_cli.config import ExperimentConfig, apply_overrides, load_config, with_model
from specmem_cli.training.summary import summarise
from specmem_cli.training.sweep import run_sweep

SHARED_ETTH1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ETT-small" / "ETTh1.csv"
START, END = "<!-- etth1-results:start -->", "<!-- etth1-results:end -->"
COMMAND = "specmem train --config etth1 --data ETTh1"
# (label, model override or None for the config's own, --set overrides)
MEMORY_VARIANTS = [
    ("klcycle (configs/etth1.yaml)", None, []),
    ("klcycle, memory off", None, ["model.memory=off"]),
]


def run_variant(config, out: Path, jobs: int) -> tuple[list, float | None, bool]:
    """The sweep's records, its wall seconds (measured when it ran fresh) and whether anything ran now."""
    started = time.perf_counter()
    records = run_sweep(config, out, jobs=jobs)
    fresh = not all(r.reused for r in records)
    wall_file = out / "sweep_wall.json"
    if all(not r.reused for r in records):
        wall_file.write_text(json.dumps({"seconds": time.perf_counter() - started, "jobs": jobs}) + "\n")
    wall = json.loads(wall_file.read_text())["seconds"] if wall_file.exists() else None
    return records, wall, fresh


def command_for(model: str | None, overrides: list[str]) -> str:
    if model is not None:  # TSL's training defaults with the model's preset, as benchmarks/baselines.py runs it
        return f"python benchmarks/etth1_results.py --baselines {model}"
    return COMMAND + "".join(f" --set {o}" for o in overrides) + " --seeds 2019 2020 2021"


def table(rows: list[tuple[str, dict, float | None, str]], horizons: list[int]) -> str:
    header = "| model | " + " | ".join(f"h{h} MSE" for h in horizons) + " | avg MSE | avg MAE | sweep wall | command |"
    lines = [header, "|" + "---|" * (len(horizons) + 5)]
    best = min(summary["average"]["mse"] for _, summary, _, _ in rows)
    for label, summary, wall, command in rows:
        cells = [f"{summary['horizons'][h]['mse']:.4f} ± {summary['horizons'][h]['mse_std']:.4f}" for h in horizons]
        average = summary["average"]
        wall_text = f"{wall / 60:.1f} min" if wall is not None else "n/a"
        mark = "**" if average["mse"] == best else ""
        lines.append(
            f"| {label} | "
            + " | ".join(cells)
            + f" | {mark}{average['mse']:.4f}{mark} ± {average['mse_std']:.4f} | {average['mae']:.4f} | {wall_text} | `{command}` |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(SHARED_ETTH1), help="ETTh1.csv (a path or a downloaded set's name)")
    parser.add_argument("--out", type=Path, default=Path("runs/etth1_results"))
    parser.add_argument("--readme", type=Path, help="rewrite the results block of this README")
    parser.add_argument("--baselines", nargs="*", default=["dlinear", "itransformer"])
    parser.add_argument("--jobs", type=int, default=1, help="parallel runs per sweep (wall time is per sweep)")
    args = parser.parse_args()

    config = apply_overrides(load_config("etth1"), [f"data.name={args.data}"])
    horizons = config.data.pred_lens
    rows = []
    tsl_defaults = apply_overrides(ExperimentConfig(), [f"data.name={args.data}", "seeds=[2019, 2020, 2021]"])
    variants = [*MEMORY_VARIANTS, *((name, name, []) for name in args.baselines)]
    for label, model, overrides in variants:
        variant = apply_overrides(with_model(tsl_defaults, model) if model else config, overrides)
        directory = args.out / (label if model else "klcycle" + "".join("_" + o.split("=")[1] for o in overrides))
        records, wall, fresh = run_variant(variant, directory, args.jobs)
        rows.append((label, summarise(records), wall, command_for(model, overrides)))
        print(f"{label}: {len(records)} runs ({'ran now' if fresh else 'reused'}) in {directory}", flush=True)
    text = table(rows, horizons)
    print(text)
    if args.readme:
        rewrite_block(args.readme, START, END, "python benchmarks/etth1_results.py --readme README.md", text)


if __name__ == "__main__":
    main()
