"""Time the trainer's step as ``fit`` runs it on the shared files, against how it ran it before.

    python benchmarks/fit_step.py [--data ETTh1 ETTm1 weather] [--horizons 96 720] [--steps 30] [--threads 1]

What it measures: one training step of the default model (klcycle, memory off as it trains, each map
``head: auto`` trains), batch 256, look-back 96, on a real shared file, one torch thread (what each run gets in
``benchmarks/suite.py --jobs 2``), *including* the batch's assembly from the window set:

- ``before``: the targets handed to the loss as a transposed view of the gathered windows, and the
  forecast sliced to its horizon and output channels even where it is exactly that (fit before 2026-11-27);
- ``now``: ``WindowSet.batch`` (contiguous targets) and ``trainer.horizon_of`` (no slice where none is needed).

Both run the same batches from the same weights, alternating, and the median ms/step of each is printed with
their ratio and the largest difference between the two copies' weights after every timed step (the same
arithmetic: 0).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from suite import FILES

from specmem_cli.config import apply_overrides, load_config, load_data, with_protocol
from specmem_cli.models import build_model, forecast, resolve_step_parameters
from specmem_cli.training.trainer import horizon_of, training_loss

BATCH = 256


def step_before(model, optimizer, windows, index, pred_len, n_outputs) -> None:
    inputs = windows._inputs[index].transpose(1, 2)  # the window set's own views, as batch() returned them
    targets = windows._targets[index].transpose(1, 2)
    optimizer.zero_grad(set_to_none=True)
    prediction = forecast(model, inputs, windows.positions[index])[:, -pred_len:, -n_outputs:]
    training_loss(prediction, targets[:, -pred_len:, :], "huber").backward()
    optimizer.step()


def step_now(model, optimizer, windows, index, pred_len, n_outputs) -> None:
    inputs, targets, positions = windows.batch(index)
    optimizer.zero_grad(set_to_none=True)
    prediction = horizon_of(forecast(model, inputs, positions), pred_len, n_outputs)
    training_loss(prediction, targets[:, -pred_len:, :], "huber").backward()
    optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", nargs="+", default=["ETTh1", "ETTm1", "weather"], choices=list(FILES))
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 720])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per implementation and shape")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'shape':<28} {'before ms':>9} {'now ms':>7} {'speed-up':>8} {'max |weight diff|':>17}")
    for name in args.data:
        settings = [f"data.name={FILES[name]}"]
        config = with_protocol(apply_overrides(load_config("default"), settings))
        for horizon in args.horizons:
            data = load_data(config, horizon)
            params = resolve_step_parameters("klcycle", config.model_params, data.time_axis.step, data.training_rows())
            for head in ("linear", "mlp"):
                torch.manual_seed(0)
                model = build_model("klcycle", 96, horizon, data.n_inputs, {**params, "head": head, "memory": "off"})
                twin = copy.deepcopy(model)
                optimizers = [torch.optim.Adam(m.parameters(), lr=0.01, fused=True) for m in (model, twin)]
                order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(0))
                times, difference = {"before": [], "now": []}, 0.0
                for step in range(args.steps + 2):  # two warm-up steps
                    index = order.roll(-step * BATCH)[:BATCH]  # full batches, wrapping on short files
                    for label, function, net, optimizer in (
                        ("before", step_before, model, optimizers[0]),
                        ("now", step_now, twin, optimizers[1]),
                    ):
                        start = time.perf_counter()
                        function(net, optimizer, data.train, index, horizon, data.n_outputs)
                        times[label].append(time.perf_counter() - start)
                    difference = max(
                        difference,
                        max(
                            float((a - b).detach().abs().max())
                            for a, b in zip(model.parameters(), twin.parameters(), strict=True)
                        ),
                    )
                before, now = (1000 * statistics.median(times[k][2:]) for k in ("before", "now"))
                label = f"{name} h{horizon} {head} C={data.n_inputs}"
                print(f"{label:<28} {before:>9.1f} {now:>7.1f} {before / now:>7.2f}x {difference:>17.2g}", flush=True)


if __name__ == "__main__":
    main()
