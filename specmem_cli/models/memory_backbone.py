"""The plug-in contract between a backbone and spectral memory, in one small base class.

A backbone that wants spectral memory
1. calls :meth:`MemoryBackbone.attach_memory` in ``__init__`` (``memory='off'`` attaches nothing),
2. reads ``self.read_memory(n)`` -> ``[n, M, d_model]`` tokens (or None when off) before encoding
   and injects them however suits it: prefix tokens (attention), initial state (recurrent), a
   conditioning vector added to every step (convolutional, state-space),
3. calls ``self.write_memory(hidden, write)`` with its ``[n, T, d_model]`` output: in training (or
   when ``write`` is True) one attention-pooled summary of the batch is appended to the history.
The trainer finds the memory as ``model.memory`` and applies the evaluation policy (reset/frozen).
"""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.memory import SpectralMemory


class MemoryBackbone(nn.Module):
    """Base class giving a forecaster ``memory`` (a :class:`SpectralMemory` or None) and ``pooling``."""

    memory: SpectralMemory | None

    def attach_memory(self, d_model: int, memory: str, dropout: float = 0.0, **options) -> None:
        if memory not in ("spectral", "off"):
            raise ValueError(f"memory must be 'spectral' or 'off', got '{memory}'")
        self.memory = SpectralMemory(d_model, dropout=dropout, **options) if memory == "spectral" else None
        self.pooling = nn.Linear(d_model, 1)

    def read_memory(self, n: int) -> torch.Tensor | None:
        return None if self.memory is None else self.memory(batch_size=n)

    def write_memory(self, hidden: torch.Tensor, write: bool | None = None) -> None:
        """Append the batch's attention-pooled summary of ``hidden`` ``[n, T, d]`` (in training, or if ``write``)."""
        if self.memory is None or not (self.training if write is None else write):
            return
        weights = torch.softmax(self.pooling(hidden), dim=1)
        self.memory.write((weights * hidden).sum(dim=1).mean(dim=0))
