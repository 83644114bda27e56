"""Time the per-window standardisation every normalising model runs on each batch, against torch.var's.

    python benchmarks/normalise.py [--repeats 200] [--threads 1]

What it measures: :func:`specmem_cli.models.layers.normalise` (mean, then the variance from the
centred input it returns anyway) against the form it replaced (``torch.var``'s one-pass reduction),
written out below, on batches of 256 windows of look-back 96 laid out as ``WindowSet.batch`` hands
them to a model (``[B, L, C]`` views of ``[B, C, L]`` rows), for the shared files' widths and the
wide data sets'. Printed per width: median ms per call of each, their ratio, and the largest
difference between their outputs (rounding only).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from specmem_cli.data.windows import WindowSet
from specmem_cli.models.layers import normalise

WIDTHS = [("ETT", 7), ("weather", 21), ("electricity", 321)]
BATCH, SEQ_LEN = 256, 96


def previous_normalise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = x.mean(dim=1, keepdim=True)
    std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
    return (x - mean) / std, mean, std


def median_ms(function, x: torch.Tensor, repeats: int) -> float:
    times = []
    for _ in range(repeats + 5):  # five warm-up calls
        start = time.perf_counter()
        function(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times[5:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per form and width")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one per run in the suite)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'width':<16} {'torch.var ms':>12} {'current ms':>10} {'speed-up':>8} {'max |diff|':>10}")
    for name, channels in WIDTHS:
        generator = torch.Generator().manual_seed(0)
        series = torch.randn(4 * BATCH + SEQ_LEN, channels, generator=generator) * 3 + 1
        windows = WindowSet(series, SEQ_LEN, 1, slice(0, channels))
        x, _, _ = windows.batch(torch.randperm(len(windows), generator=generator)[:BATCH])
        previous, current = median_ms(previous_normalise, x, args.repeats), median_ms(normalise, x, args.repeats)
        difference = (normalise(x)[0] - previous_normalise(x)[0]).abs().max()
        label = f"{name} C={channels}"
        print(f"{label:<16} {previous:>12.3f} {current:>10.3f} {previous / current:>7.2f}x {float(difference):>10.2g}")


if __name__ == "__main__":
    main()
