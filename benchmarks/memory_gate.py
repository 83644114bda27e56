"""Time the analog memory's gate as shipped (validation first) against the gate that always fits the blend.

    python benchmarks/memory_gate.py [--data PATH] [--pred-len 96] [--epochs 3] [--threads 1]

What it measures: after a default-shaped network (``KLCycleForecaster``, linear head, a day's cycle,
analog memory with the default settings) has trained ``--epochs`` epochs on ``--data`` (default: the
shared weather file, the suite's widest), the wall seconds of

- ``shipped``: :meth:`AnalogBlend.calibrate_memory`: the memory built, the validation windows read, and
  the training windows read only where the best blend validation allows could pass the gate;
- ``full``: the same memory built, then both passes every time (the blend fitted on evenly spaced
  training windows, then scored on validation), which is what the gate did before;

side by side with their ratio and the decision (kept or dropped, with the validation MSEs). Where the
memory is kept both do the same work, so the ratio is about 1; where it is dropped the shipped gate
skips the training pass and its decision is the same (a drop: no blend reaches the 0.5% gain).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from specmem_cli.config import TrainConfig
from specmem_cli.data import load_table, prepare
from specmem_cli.models.analog_blend import CALIBRATION_ROWS
from specmem_cli.models.klcycle import KLCycleForecaster
from specmem_cli.training.trainer import evaluation_batch, fit

WEATHER = Path(__file__).resolve().parents[2] / "shared" / "data" / "weather" / "weather.csv"


def full_gate(model: KLCycleForecaster, data, batch_size: int) -> None:
    """Both passes, whatever validation would say first (the blend is fitted, not applied)."""
    model.eval()
    model.blend.zero_()
    with torch.no_grad():
        model.build_memory(data.train)
        train = data.train
        sample = torch.linspace(0, len(train) - 1, max(1, min(len(train), CALIBRATION_ROWS // train.series.shape[1])))
        model._correction_sums(train, sample.round().long().unique(), data.n_outputs, batch_size)
        model._correction_sums(data.val, torch.arange(len(data.val)), data.n_outputs, batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=WEATHER, help="CSV file (default: the shared weather file)")
    parser.add_argument("--pred-len", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3, help="epochs the network trains before the gate")
    parser.add_argument("--cycle", type=int, default=144, help="cycle length in steps (weather: a day is 144)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one per run in the suite)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = prepare(load_table(args.data), 96, args.pred_len)
    train_config = TrainConfig(epochs=args.epochs, batch_size=256, lr=0.01, lr_schedule="type3", loss="huber")
    model = KLCycleForecaster(96, args.pred_len, data.n_inputs, cycle_len=args.cycle, memory="analog")
    fit(model, data, train_config, seed=2019, with_memory=False)
    batch_size = evaluation_batch(train_config.batch_size, data.train)

    started = time.perf_counter()
    full_gate(model, data, batch_size)
    full = time.perf_counter() - started
    started = time.perf_counter()
    decision = model.calibrate_memory(data.train, data.val, data.n_outputs, batch_size)
    shipped = time.perf_counter() - started

    verdict = "kept" if decision["memory_used"] else "dropped"
    print(f"{args.data.name} h{args.pred_len}: {len(data.train):,} training and {len(data.val):,} validation windows")
    print(f"{'gate':<8} {'seconds':>8}")
    print(f"{'full':<8} {full:>8.2f}")
    print(f"{'shipped':<8} {shipped:>8.2f}   ({full / shipped:.2f}x)")
    print(
        f"memory {verdict}: validation MSE without {decision['val_mse_without_memory']:.4f}, "
        f"best any blend reaches {decision['val_mse_best_blend']:.4f}"
    )


if __name__ == "__main__":
    main()
