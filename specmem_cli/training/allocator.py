"""Make glibc keep freed memory for reuse during training.

A training step frees and re-allocates the same large activation buffers every step. By default
glibc serves each of them with a fresh ``mmap`` and returns it on free, so every step pays page
faults on hundreds of MB: on the paper configuration that is ~45% of the step time on a 2-core
CPU (see ``benchmarks/train_step.py``). Serving them from the heap and not trimming it makes the
second step onward reuse warm pages. The cost is that the process keeps its peak heap until it
exits, which is what a training process does anyway; ``train.reuse_freed_memory: false`` turns it off
for library users who share the process with other work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import cache

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


@cache
def reuse_freed_memory() -> bool:
    """Tune glibc's allocator once per process; returns False where it does not apply (not glibc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))
