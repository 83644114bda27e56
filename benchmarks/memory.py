"""Time the K-L step: specmem's paths against the textbook T x T formulation, side by side.

    python benchmarks/memory.py [--json OUT.json] [--quick]

For T in {256, 1024, 3000} and d in {128, 512}: the empirical strategy (Gram path) and the kernel
strategy (cached eigenpairs) against the textbook eigenproblem of the T x T matrix, and the online
update (one append + components) of a full memory. The history is low-rank plus noise, the
decaying spectrum pooled hidden states have. Medians of repeated runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from textbook_kl import textbook_components

from specmem_cli.memory import SpectralMemory, kl

N_COMPONENTS = 16


def history(rows: int, width: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    factors = torch.randn(rows, 24, generator=generator) * torch.logspace(1, -1, 24)
    return factors @ torch.randn(24, width, generator=generator) + 0.05 * torch.randn(rows, width, generator=generator)


def median_ms(function, repeats: int) -> float:
    function()  # warm-up (and, for the kernel path, the one-off cached eigensolve)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def online_append_ms(rows: int, width: int, repeats: int) -> float:
    memory = SpectralMemory(width, memory_depth=rows, n_components=N_COMPONENTS, update="online")
    data = history(rows + repeats + 1, width)
    memory.write(data[:rows])
    memory.decompose()
    times = []
    for row in data[rows:]:
        start = time.perf_counter()
        memory.write(row)
        memory.decompose()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--quick", action="store_true", help="T in {256, 1024} only")
    args = parser.parse_args()
    lengths = [256, 1024] if args.quick else [256, 1024, 3000]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, K={N_COMPONENTS}; medians in ms")
    header = f"{'T':>5} {'d':>4} | {'textbook emp':>12} {'gram emp':>9} {'ratio':>7} | {'textbook ker':>12} {'cached ker':>10} {'ratio':>7} | {'online append':>13}"
    print(header)
    print("-" * len(header))
    results = []
    for rows in lengths:
        for width in (128, 512):
            data = history(rows, width)
            repeats = 3 if rows >= 3000 else 7
            textbook_emp = median_ms(lambda data=data: textbook_components(data, N_COMPONENTS, True), repeats)
            fast_emp = median_ms(lambda data=data: kl.empirical_decomposition(data, N_COMPONENTS, True), 15)
            textbook_ker = median_ms(
                lambda data=data: textbook_components(data, N_COMPONENTS, True, strategy="kernel"), repeats
            )
            fast_ker = median_ms(lambda data=data: kl.kernel_decomposition(data, N_COMPONENTS, True, 64.0, "exp"), 15)
            online = online_append_ms(rows, width, 40)
            row = {
                "T": rows,
                "d": width,
                "textbook_empirical_ms": textbook_emp,
                "empirical_ms": fast_emp,
                "empirical_speedup": textbook_emp / fast_emp,
                "textbook_kernel_ms": textbook_ker,
                "kernel_cached_ms": fast_ker,
                "kernel_speedup": textbook_ker / fast_ker,
                "online_append_ms": online,
            }
            results.append(row)
            print(
                f"{rows:>5} {width:>4} | {textbook_emp:>12.1f} {fast_emp:>9.2f} {row['empirical_speedup']:>6.0f}x |"
                f" {textbook_ker:>12.1f} {fast_ker:>10.2f} {row['kernel_speedup']:>6.0f}x | {online:>13.2f}",
                flush=True,
            )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
