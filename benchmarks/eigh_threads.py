"""Small symmetric eigensolves on one CPU thread or two, on a quiet machine and beside a busy process.

    python benchmarks/eigh_threads.py [--sizes 64 128 265 512] [--repeats 30]

Why: a step of the spectral memory diagonalises a matrix of at most a few hundred rows (265 in the
published ETTh1 run). On a 2-core machine whose other core is busy, LAPACK's two threads wait for
each other; below ``kl.SINGLE_THREAD_EIGH`` rows specmem runs the solve on one thread. Prints the
median and worst of ``--repeats`` float64 solves for each size, thread count and load, side by side.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

import torch

from specmem_cli.memory.kl import SINGLE_THREAD_EIGH


def spin(stop) -> None:
    while not stop.is_set():
        pass


def timings(matrix: torch.Tensor, threads: int, repeats: int) -> tuple[float, float]:
    torch.set_num_threads(threads)
    torch.linalg.eigh(matrix)
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.linalg.eigh(matrix)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds) * 1e3, max(seconds) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 265, 512])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    generator = torch.Generator().manual_seed(0)
    matrices = {}
    for n in args.sizes:
        a = torch.randn(n, n, dtype=torch.float64, generator=generator)
        matrices[n] = a @ a.T
    rows = {}
    for load in ("quiet", "one busy process"):
        stop, busy = multiprocessing.Event(), None
        if load != "quiet":
            busy = multiprocessing.Process(target=spin, args=(stop,), daemon=True)
            busy.start()
            time.sleep(0.5)
        for n, matrix in matrices.items():
            rows[(n, load)] = [timings(matrix, threads, args.repeats) for threads in (2, 1)]
        if busy is not None:
            stop.set()
            busy.join()
    print(
        f"float64 eigh, median / worst of {args.repeats} (ms); specmem uses one thread up to {SINGLE_THREAD_EIGH} rows"
    )
    print(f"{'size':>6} {'load':<18} {'2 threads':>18} {'1 thread':>18} {'2 / 1 (median)':>15}")
    for (n, load), ((median2, worst2), (median1, worst1)) in rows.items():
        print(
            f"{n:>6} {load:<18} {median2:>8.2f} / {worst2:>7.1f} {median1:>8.2f} / {worst1:>7.1f} "
            f"{median2 / median1:>14.2f}x"
        )


if __name__ == "__main__":
    main()
