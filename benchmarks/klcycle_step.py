"""Time the default model's (klcycle's) training step at the suite's shapes, against its previous layout.

    python benchmarks/klcycle_step.py [--steps 20] [--threads 1]

What it measures: forward + Huber loss + backward + Adam step of ``KLCycleForecaster`` (memory off: the
network trains without it), batch 256, look-back 96, on random inputs of each shape below, one torch
thread by default (what each run gets in ``benchmarks/suite.py --jobs 2`` on 2 cores). Two
implementations of the same function run side by side on the same weights and batch:

- ``current``: the package's ``KLCycleForecaster`` (cycle stretches gathered by index, series-major until
  one copy into ``[B, pred_len, C]``);
- ``previous``: the layout it replaced, written out below (stretches unfolded from a repeated cycle,
  batch-major with transposed views handed to the loss), kept here only as the timing reference.

Printed per shape: median ms/step of each, their ratio, and the largest difference between their
forecasts (the same function: 0 or rounding).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time

import torch

from specmem_cli.models.klcycle import KLCycleForecaster
from specmem_cli.models.layers import denormalise, normalise

# (data set it stands for, series, cycle steps (a day of its clock), horizon)
SHAPES = [
    ("ETTh1", 7, 24, 96),
    ("ETTh1", 7, 24, 720),
    ("ETTm1", 7, 96, 96),
    ("ETTm1", 7, 96, 720),
    ("weather", 21, 144, 96),
    ("weather", 21, 144, 720),
]
BATCH, SEQ_LEN = 256, 96


def previous_forward(model: KLCycleForecaster, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The forward pass before this layout (direct ``W c_in``; every shape here is below the FFT threshold)."""

    def stretches(offset: int, length: int) -> torch.Tensor:  # [cycle, C, length]
        repeats = -(-(length + 2 * model.cycle_len) // model.cycle_len)
        every_start = model.cycle.repeat(repeats, 1).unfold(0, length, 1)
        return every_start[offset % model.cycle_len :][: model.cycle_len]

    normalised, mean, std = normalise(x)
    per_phase = stretches(model.seq_len, model.pred_len) - stretches(0, model.seq_len) @ model.linear.weight.T
    cycle = per_phase.flatten(1).index_select(0, positions % model.cycle_len).view(-1, x.shape[2], model.pred_len)
    forecast = model.linear(normalised.transpose(1, 2)) + cycle
    return denormalise(forecast.transpose(1, 2), mean, std)


def time_steps(model, forward, batch, steps: int) -> float:
    inputs, targets, positions = batch
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    times = []
    for _ in range(steps + 2):  # two warm-up steps
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = torch.nn.functional.smooth_l1_loss(forward(inputs, positions), targets)
        loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per implementation and shape")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'shape':<22} {'previous ms':>11} {'current ms':>10} {'speed-up':>8} {'max |diff|':>10}")
    for name, channels, cycle_len, horizon in SHAPES:
        generator = torch.Generator().manual_seed(0)
        model = KLCycleForecaster(SEQ_LEN, horizon, channels, cycle_len=cycle_len, memory="off")
        with torch.no_grad():
            model.cycle.normal_(generator=generator)
        batch = (
            torch.randn(BATCH, SEQ_LEN, channels, generator=generator),
            torch.randn(BATCH, horizon, channels, generator=generator),
            torch.randint(0, 50_000, (BATCH,), generator=generator),
        )
        with torch.no_grad():
            difference = (model(batch[0], batch[2]) - previous_forward(model, batch[0], batch[2])).abs().max()
        state = {key: value.clone() for key, value in model.state_dict().items()}
        previous = time_steps(model, functools.partial(previous_forward, model), batch, args.steps)
        model.load_state_dict(state)
        current = time_steps(model, model, batch, args.steps)
        label = f"{name} C={channels} h{horizon}"
        print(f"{label:<22} {previous:>11.1f} {current:>10.1f} {previous / current:>7.2f}x {float(difference):>10.2g}")


if __name__ == "__main__":
    main()
