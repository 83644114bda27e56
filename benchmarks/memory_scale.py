"""The analog memory's read against the number of stored entries: blocked top-k vs the full softmax.

    python benchmarks/memory_scale.py [--entries 1e4 1e5 1e6 1e7] [--queries 1024] [--json OUT.json]

What it measures: one read of ``--queries`` query windows (already K-L keys: 32 key and 32 value
coefficients per entry, as the default model stores them) from a memory of N entries, for
N = 10^4 ... 10^7, each in a fresh process so that its peak resident memory (ru_maxrss) is its
own. Two reads, side by side:

- ``blocked top-k``: :meth:`AnalogMemory.read` as shipped: keys scanned in blocks of
  ``KEY_BLOCK``, queries in blocks of ``QUERY_BLOCK``, a running top-64 per query, softmax over those.
- ``full softmax``: the read before this change (softmax over every entry for each block of 1024
  queries), written out here; its ``[1024, N]`` score block does not fit in memory past a few
  million entries, so it is skipped where it would need more than ``--full-limit-gb``.

Peak RSS includes the stored entries themselves (N x 64 float32 + N int64 positions) and the
Python/torch runtime, so the read's own overhead is the difference to the ``store only`` column.
The model never stores more than ``max_entries`` (32,768 by default) rows: the first row is what a
default run pays per read on any data set, however wide.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from specmem_cli.memory.analog import AnalogMemory

KEY_MODES = VALUE_MODES = 32
FULL_QUERY_BLOCK = 1024


def filled(entries: int) -> AnalogMemory:
    """A memory holding ``entries`` random keys and values (a read's cost does not depend on their origin)."""
    generator = torch.Generator().manual_seed(0)
    memory = AnalogMemory(96, 96, KEY_MODES, VALUE_MODES, max_entries=entries)
    memory.key_basis = torch.linalg.qr(torch.randn(96, KEY_MODES, generator=generator))[0]
    memory.value_basis = torch.linalg.qr(torch.randn(96, VALUE_MODES, generator=generator))[0]
    memory.value_mean = torch.zeros(96)
    memory.keys = torch.randn(entries, KEY_MODES, generator=generator) * 3
    memory.values = torch.randn(entries, VALUE_MODES, generator=generator)
    memory.positions = torch.arange(entries)
    return memory


def full_softmax_read(memory: AnalogMemory, windows: torch.Tensor) -> torch.Tensor:
    """Softmax over every stored entry (no top-k), 1024 queries at a time: the read this change replaced."""
    queries = windows @ memory.key_basis
    key_norms = memory.keys.square().sum(dim=1)
    out = []
    for start in range(0, queries.shape[0], FULL_QUERY_BLOCK):
        scores = torch.addmm(key_norms, queries[start : start + FULL_QUERY_BLOCK], memory.keys.T, beta=-1.0, alpha=2.0)
        out.append(torch.softmax(scores.div_(memory.temperature), dim=1) @ memory.values)
    return torch.cat(out) @ memory.value_basis.T + memory.value_mean


def measure(entries: int, queries: int, read: str) -> dict:
    """One measurement, in this process (called through a fresh interpreter by :func:`main`)."""
    memory = filled(entries)
    windows = torch.randn(queries, 96, generator=torch.Generator().manual_seed(1))
    start = time.perf_counter()
    if read == "blocked":
        memory.read(windows)
    elif read == "full":
        full_softmax_read(memory, windows)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_fresh_process(entries: int, queries: int, read: str) -> dict:
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); from memory_scale import measure; "
        f"print(json.dumps(measure({entries}, {queries}, {read!r})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=float, nargs="+", default=[32_768, 1e4, 1e5, 1e6, 1e7])
    parser.add_argument("--queries", type=int, default=1024)
    parser.add_argument("--full-limit-gb", type=float, default=8.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.queries} queries, K = V = 32, top-64")
    header = f"{'entries':>10} | {'store only MB':>13} | {'blocked s':>9} {'peak MB':>8} | {'full s':>8} {'peak MB':>8} | speed-up"
    print(header)
    print("-" * len(header))
    rows = []
    for entries in (int(n) for n in args.entries):
        base = in_fresh_process(entries, args.queries, "none")
        blocked = in_fresh_process(entries, args.queries, "blocked")
        full_gb = FULL_QUERY_BLOCK * entries * 4 * 2 / 1e9  # scores and their softmax
        full = in_fresh_process(entries, args.queries, "full") if full_gb <= args.full_limit_gb else None
        rows.append({"entries": entries, "store_only": base, "blocked": blocked, "full": full})
        full_text = (
            f"{full['seconds']:8.3f} {full['peak_rss_mb']:8.0f} | {full['seconds'] / blocked['seconds']:7.2f}x"
            if full
            else f"{'needs':>8} {full_gb:6.0f}GB | {'-':>8}"
        )
        print(
            f"{entries:>10,} | {base['peak_rss_mb']:13.0f} | {blocked['seconds']:9.3f} {blocked['peak_rss_mb']:8.0f} | "
            + full_text,
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
