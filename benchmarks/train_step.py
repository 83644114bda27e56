"""Time one training step of a config's model under specmem's trainer settings and under plain ones.

    python benchmarks/train_step.py [--configs etth1_paper etth1 demo] [--steps 5] [--data ETTh1.csv] [--json OUT.json]

What it measures: specmem's own model, twice, in two fresh processes (so peak RSS is per run), on the
same batch:
  plain   - for-loop Adam and the default glibc allocator;
  specmem - what `specmem train` uses: fused Adam, freed memory kept for reuse.
The ratio is what those two trainer settings do to the same model. It is not a comparison with the
published implementation, which is not run here (the allocator setting speeds that one up as well).
klmemory configs: the memory holds 200 rows (mid-epoch in the published run), inputs are one batch of
the config's batch size. klcycle (``etth1``): the steps run over real ETTh1 training batches (``--data``);
its network trains without the memory (the memory is built and calibrated once, after training).
Printed: parameters (and the memory's share), batch size, median ms/step, peak RSS, speed ratio.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from specmem_cli.config import apply_overrides, load_config, load_data
from specmem_cli.models import build_model, forecast, resolve_step_parameters
from specmem_cli.training.allocator import reuse_freed_memory
from specmem_cli.training.trainer import training_loss

HOURLY = pd.Timedelta(hours=1)  # every config here is timed on ETTh1's clock
SHARED_ETTH1 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ETT-small" / "ETTh1.csv"


def measure(preset: str, variant: str, steps: int, data_path: str) -> dict:
    if variant == "specmem":
        reuse_freed_memory()
    config = load_config(preset)
    pred_len, batch_size = config.data.pred_lens[0], config.train.batch_size
    torch.manual_seed(0)
    params = resolve_step_parameters(config.model_name, config.model_params, HOURLY)
    model = build_model(config.model_name, config.data.seq_len, pred_len, 7, params)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=variant == "specmem")
    if getattr(model, "uses_positions", False):  # klcycle: real ETTh1 batches (its memory is built after training)
        data = load_data(apply_overrides(config, [f"data.name={data_path}"]), pred_len)
        batches = data.train.batches(batch_size, shuffle=True, generator=torch.Generator().manual_seed(0))
        batches = [next(batches) for _ in range(steps + 1)]
    else:
        if model.memory is not None:
            model.memory.write(torch.randn(min(200, model.memory.memory_depth), model.memory.d_model))
        inputs = torch.randn(batch_size, config.data.seq_len, 7)
        batches = [(inputs, torch.randn(batch_size, pred_len, 7), torch.arange(batch_size))] * (steps + 1)
    model.train()
    times = []
    for inputs, targets, positions in batches:
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        prediction = forecast(model, inputs, positions)[:, -pred_len:]
        training_loss(prediction, targets[:, -pred_len:], config.train.loss).backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    parameters = sum(p.numel() for p in model.parameters())
    memory_parameters = sum(p.numel() for p in model.memory.parameters()) if model.memory is not None else 0
    return {
        "config": preset,
        "variant": variant,
        "pred_len": pred_len,
        "batch_size": batch_size,
        "parameters": parameters,
        "memory_share": memory_parameters / parameters,
        "ms_per_step": 1000 * statistics.median(times[1:]),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["etth1_paper", "etth1", "demo"])
    parser.add_argument("--data", default=str(SHARED_ETTH1), help="ETTh1.csv, for the klcycle memory")
    parser.add_argument("--steps", type=int, default=5, help="timed steps after one warm-up step")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "VARIANT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], args.child[1], args.steps, args.data)))
        return
    results = []
    print(
        f"{'config':<12} {'variant':<8} {'params':>9} {'memory %':>8} {'batch':>5} {'ms/step':>9} {'peak RSS MB':>11}"
        f" {'vs plain':>8}"
    )
    for preset in args.configs:
        plain = None
        for variant in ("plain", "specmem"):
            command = [
                sys.executable,
                __file__,
                "--child",
                preset,
                variant,
                "--steps",
                str(args.steps),
                "--data",
                args.data,
            ]
            row = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
            plain = plain or row
            row["speedup_vs_plain"] = plain["ms_per_step"] / row["ms_per_step"]
            results.append(row)
            print(
                f"{preset:<12} {variant:<8} {row['parameters'] / 1e6:>8.2f}M {100 * row['memory_share']:>7.1f}%"
                f" {row['batch_size']:>5} {row['ms_per_step']:>9.1f} {row['peak_rss_mb']:>11.0f} {row['speedup_vs_plain']:>7.2f}x",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
