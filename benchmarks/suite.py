"""The README's suite table: the default model, its memory-off self and DLinear on every shared data set.

    python benchmarks/suite.py [--data ETTh1 ETTm1 ETTm2 weather] [--out runs/suite] [--readme README.md]
                               [--seeds 2019 2020 2021] [--jobs 1]

What it measures: for each data set, three sweeps of its protocol's horizons (96/192/336/720 at
look-back 96 here) x ``--seeds``, run exactly as ``specmem train`` runs them (TSL splits and
train-only scaling, early stopping on validation, the test split scored once with every window kept):

- ``default``: ``configs/default.yaml`` as shipped, i.e. ``specmem train --data NAME``;
- ``default, memory off``: the default's own runs scored on the test split with the memory not read
  (:func:`memory_off_records`). The network trains (and its head is chosen) before the memory exists, so
  this is the very network ``--set model.memory=off`` trains (bit-identical: ``tests/test_suite.py`` checks it); scoring it again
  instead of retraining it halves the suite's time. It has no wall time of its own;
- ``dlinear``: ``--model dlinear``, with DLinear's own recipe (the TSL training defaults: Adam lr 1e-4,
  batch 32, MSE, ``type1`` halving, 10 epochs, patience 3; moving average 25), not the default's.

Per data set it prints and writes the 4-horizon mean test MSE and MAE (mean ± sample std over seeds,
each seed's horizons averaged first), the per-horizon MSE, and the sweep's wall time (measured when
its runs ran fresh; a rerun reuses finished runs). Beside them, the published figures the issue quotes
(papers' own numbers, every test window kept; *not* measured here) and the goal. ``--readme`` rewrites
the block between the suite markers of the README.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
from readme_block import rewrite_block

from specmem_cli.checkpoint import load_run
from specmem_cli.config import apply_overrides, load_config, with_model, with_protocol
from specmem_cli.memory import prepare_for_evaluation
from specmem_cli.training.parallel import worker_threads
from specmem_cli.training.run import RunRecord
from specmem_cli.training.summary import summarise
from specmem_cli.training.sweep import run_sweep
from specmem_cli.training.trainer import evaluate_windows

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FILES = {
    "ETTh1": SHARED / "ETT-small" / "ETTh1.csv",
    "ETTm1": SHARED / "ETT-small" / "ETTm1.csv",
    "ETTm2": SHARED / "ETT-small" / "ETTm2.csv",
    "weather": SHARED / "weather" / "weather.csv",
}
# Published 4-horizon means (look-back 96, every test window kept), as quoted in issue 16; not measured here.
PUBLISHED = {
    "ETTh1": "CycleNet/Linear 0.433, TQNet 0.441",
    "ETTm1": "TQNet 0.377",
    "ETTm2": "CycleNet/MLP 0.267",
    "weather": "TQNet 0.242",
}
GOALS = {"ETTh1": 0.420, "ETTm1": 0.372, "ETTm2": 0.265, "weather": 0.238}
START, END = "<!-- suite-results:start -->", "<!-- suite-results:end -->"
CHOICES_START, CHOICES_END = "<!-- suite-choices:start -->", "<!-- suite-choices:end -->"
DEFAULT_RECIPE = (
    "configs/default.yaml: a linear and an MLP head each trained, the lower validation MSE kept, or their "
    "validation-weighted mix with the last value where that is lower still; "
    "Huber, Adam lr 0.01, batch 256 (fewer where an epoch would take under 64 steps: ETTh1 about 130), "
    "type3, 30 epochs, patience 5"
)
DLINEAR_RECIPE = "DLinear's own (TSL defaults): MSE, lr 1e-4, batch 32, type1, 10 epochs, patience 3"
MEMORY_OFF = "default, memory off"


def sweep(config, out: Path, jobs: int) -> tuple[list, float | None]:
    """The sweep's records and its wall seconds (recorded when every run ran fresh, reused after)."""
    started = time.perf_counter()
    records = run_sweep(config, out, jobs=jobs)
    wall_file = out / f"wall_{records[0].model}_{records[0].dataset}.json"
    if not any(r.reused for r in records):
        wall_file.write_text(json.dumps({"seconds": time.perf_counter() - started, "jobs": jobs}) + "\n")
    return records, json.loads(wall_file.read_text())["seconds"] if wall_file.exists() else None


def memory_off_records(records: list[RunRecord], device: str = "cpu", jobs: int = 1) -> list[RunRecord]:
    """Each finished run's test metrics with its memory emptied (``reset``): an analog memory's network
    alone, or a spectral memory scored as the published code scores it. Score on the ``device`` and with the
    torch threads the runs trained with (one of ``jobs`` parallel workers has the cores divided by ``jobs``),
    so that sums add in the same order and a memory its gate dropped scores exactly as off."""
    ambient, scored = torch.get_num_threads(), []
    try:
        for record in records:
            run = load_run(record.run_dir)
            if jobs > 1:
                torch.set_num_threads(worker_threads(run.config.train.threads, jobs))
            run.model.to(device)
            data = run.data()
            prepare_for_evaluation(run.model, "reset")
            metrics = evaluate_windows(run.model, data.test, run.config.train.batch_size, data.n_outputs)
            scored.append(dataclasses.replace(record, mse=metrics.mse, mae=metrics.mae, seconds=0.0))
    finally:
        torch.set_num_threads(ambient)
    return scored


def command(name: str, model: str | None, seeds: list[int]) -> str:
    switch = f" --model {model}" if model else ""
    return f"specmem train --data {name}{switch} --seeds {' '.join(map(str, seeds))}"


def table(rows: list[dict]) -> str:
    horizons = sorted({h for row in rows for h in row["summary"]["horizons"]})
    lines = [
        "| data set | model | avg MSE | avg MAE | "
        + " | ".join(f"h{h} MSE" for h in horizons)
        + " | sweep wall | published (not measured here) | goal | command |",
        "|" + "---|" * (len(horizons) + 8),
    ]
    for row in rows:
        average, per_horizon = row["summary"]["average"], row["summary"]["horizons"]
        best = min(r["summary"]["average"]["mse"] for r in rows if r["data"] == row["data"])
        mark = "**" if f"{average['mse']:.4f}" == f"{best:.4f}" else ""  # ties as shown: rounding is not a win
        cells = [f"{per_horizon[h]['mse']:.4f}" if h in per_horizon else "-" for h in horizons]
        wall = f"{row['wall'] / 60:.1f} min" if row["wall"] is not None else "same runs"
        first = row["label"] == "default"
        lines.append(
            f"| {row['data']} | {row['label']} | {mark}{average['mse']:.4f}{mark} ± {average['mse_std']:.4f} | "
            f"{average['mae']:.4f} ± {average['mae_std']:.4f} | "
            + " | ".join(cells)
            + f" | {wall} | {PUBLISHED.get(row['data'], '') if first else ''} | "
            + (f"≤ {GOALS[row['data']]:.3f}" if first and row["data"] in GOALS else "")
            + f" | `{row['command']}` |"
        )
    return "\n".join(lines)


def choice_table(defaults: dict[str, list[RunRecord]], seed: int) -> str:
    """What each default run of ``seed`` saw on validation (``fit.choice``): each map's MSE and the mix's, with
    its linear and last-value shares; the kept network in bold."""
    horizons = sorted({record.pred_len for records in defaults.values() for record in records})
    lines = [
        "| validation MSE, linear / MLP / mix (linear, last-value share) | "
        + " | ".join(f"h{h}" for h in horizons)
        + " |",
        "|" + "---|" * (len(horizons) + 1),
    ]
    kept_heads, last_weights = [], []
    for label, records in defaults.items():
        cells = {}
        for record in records:
            choice = json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]["choice"]
            tried = {entry["head"]: entry for entry in choice["validation_mse"]}
            kept = choice["chosen"]["head"]
            kept_heads.append(kept)
            if kept == "mix":
                last_weights.append(tried["mix"]["last_value_share"])
            if record.seed != seed:
                continue
            figures = " / ".join(
                f"**{tried[head]['mse']:.4f}**" if head == kept else f"{tried[head]['mse']:.4f}"
                for head in ("linear", "mlp", "mix")
            )
            cells[record.pred_len] = (
                f"{figures} ({tried['mix']['linear_share']:.2f}, {tried['mix']['last_value_share']:.2f})"
            )
        lines.append(f"| {label} | " + " | ".join(cells.get(h, "-") for h in horizons) + " |")
    counts = ", ".join(f"{head} in {kept_heads.count(head)}" for head in ("mix", "linear", "mlp"))
    summary = f"\n\nKept, over all {len(kept_heads)} runs of every seed: {counts}."
    if last_weights:
        summary += (
            f" The last value's weight in the kept mixes: above zero in {sum(w > 0 for w in last_weights)} of "
            f"{len(last_weights)}, mean {statistics.fmean(last_weights):.3f}, largest {max(last_weights):.3f}."
        )
    return "\n".join(lines) + summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=list(FILES), help="names of the shared files, or CSV paths")
    parser.add_argument("--out", type=Path, default=Path("runs/suite"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[2019, 2020, 2021])
    parser.add_argument("--readme", type=Path, help="rewrite the suite block of this README")
    parser.add_argument("--jobs", type=int, default=1, help="parallel runs per sweep")
    args = parser.parse_args()
    rows, totals, defaults = [], {"default": 0.0, "dlinear": 0.0}, {}

    def add(label: str, variant: str, records: list[RunRecord], wall, recipe: str, command_text: str) -> None:
        summary = summarise(records)
        rows.append(
            {
                "data": label,
                "label": variant,
                "summary": summary,
                "wall": wall,
                "recipe": recipe,
                "command": command_text,
            }
        )
        print(
            f"{label:>8} {variant:<22} avg MSE {summary['average']['mse']:.4f} ± {summary['average']['mse_std']:.4f}"
            f"  MAE {summary['average']['mae']:.4f}  wall {wall or 0:.0f} s",
            flush=True,
        )

    for name in args.data:
        source = FILES.get(name, Path(name))
        label = name if name in FILES else Path(name).stem
        settings = [f"data.name={source}", f"seeds={args.seeds}"]
        default = with_protocol(apply_overrides(load_config("default"), settings))
        records, wall = sweep(default, args.out / label / "default", args.jobs)
        totals["default"] += wall or 0.0
        defaults[label] = records
        add(label, "default", records, wall, DEFAULT_RECIPE, command(label, None, args.seeds))
        add(
            label,
            MEMORY_OFF,
            memory_off_records(records, jobs=args.jobs),
            None,
            "the default's runs",
            "python benchmarks/suite.py",
        )
        dlinear = with_protocol(apply_overrides(with_model(load_config("default"), "dlinear"), settings))
        records, wall = sweep(dlinear, args.out / label / "dlinear", args.jobs)
        totals["dlinear"] += wall or 0.0
        add(label, "dlinear", records, wall, DLINEAR_RECIPE, command(label, "dlinear", args.seeds))
    text = table(rows)
    recipes = "\n".join(
        f"- `{variant}`: {recipe}"
        for variant, recipe in (
            ("default", DEFAULT_RECIPE),
            (MEMORY_OFF, "the default's own runs, scored with the memory not read (the same networks)"),
            ("dlinear", DLINEAR_RECIPE),
        )
    )
    print(text)
    walls = ", ".join(f"{variant} {seconds / 60:.1f} min" for variant, seconds in totals.items())
    print(
        f"recipes:\n{recipes}\nsweep walls summed over the data sets (each recorded when its sweep ran fresh): {walls}"
    )
    choices = choice_table(defaults, args.seeds[0])
    print(choices)
    if args.readme:
        body = f"{text}\n\nTraining recipes:\n{recipes}"
        rewrite_block(args.readme, START, END, "python benchmarks/suite.py --readme README.md", body)
        rewrite_block(args.readme, CHOICES_START, CHOICES_END, "python benchmarks/suite.py --readme README.md", choices)


if __name__ == "__main__":
    main()
