"""The CPU-first Spectral Memory forecaster: a cycle-aware linear model plus a K-L analog memory.

Why this shape: on ETTh1 at look-back 96 a 157M-parameter Transformer is beaten by a linear map
with a learned daily cycle (CycleNet/Linear), and the published memory is all zero at
evaluation. Here the memory is the training trajectory itself, compressed to its dominant K-L
modes (:class:`~specmem_cli.memory.analog.AnalogMemory`), and it is read at evaluation: each
window's K-L coefficients retrieve the training windows that looked like it, and their futures
are blended into the linear forecast with a learned weight per forecast step.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from specmem_cli.data.windows import WindowSet
from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.models.layers import denormalise, normalise


class KLCycleForecaster(nn.Module):
    """Instance normalisation -> learned cycle removed -> shared linear map -> cycle restored -> memory blend.

    Args:
        seq_len, pred_len, n_channels: look-back, horizon and number of series (channel-independent).
        cycle_len: period of the learned cycle, in steps (24: a day of hourly data; a config may say ``1D``,
            which a run turns into steps of its data's clock).
        memory: ``analog`` (K-L analog memory of the training windows) or ``off``.
        key_modes, value_modes: K-L modes kept for the memory's keys (inputs) and values (futures).
        temperature: softmax temperature of the memory read-out (larger averages more analogs).
        memory_stride: store every n-th training window (neighbouring hourly windows are near copies).
        memory_weight: initial blend weight of the memory read-out (learned per forecast step).
    """

    uses_positions = True
    supports_memory = False  # not the token plug-in contract (MemoryBackbone): its memory is an AnalogMemory

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        cycle_len: int = 24,
        memory: str = "analog",
        key_modes: int = 32,
        value_modes: int = 32,
        temperature: float = 8.0,
        memory_stride: int = 2,
        memory_weight: float = 0.2,
    ):
        super().__init__()
        if memory not in ("analog", "off"):
            raise ValueError(f"memory must be 'analog' or 'off', got '{memory}'")
        if not isinstance(cycle_len, int):
            raise ValueError(f"cycle_len must be a whole number of steps, got {cycle_len!r}")
        if cycle_len < 1 or not 0 < memory_weight < 1:
            raise ValueError(f"need cycle_len >= 1 and 0 < memory_weight < 1 (got {cycle_len}, {memory_weight})")
        self.seq_len, self.pred_len, self.cycle_len = seq_len, pred_len, cycle_len
        self.cycle = nn.Parameter(torch.zeros(cycle_len, n_channels))
        self.linear = nn.Linear(seq_len, pred_len)
        self.memory = (
            AnalogMemory(seq_len, pred_len, key_modes, value_modes, temperature, memory_stride)
            if memory == "analog"
            else None
        )
        self._built_from: WindowSet | None = None
        self.blend_logit = nn.Parameter(torch.full((pred_len,), math.log(memory_weight / (1 - memory_weight))))

    def build_memory(self, train: WindowSet) -> None:
        """Fill the memory with every training window and its future, normalised as :meth:`forward` does
        (nothing to do when it already holds these windows)."""
        if self.memory is None or (self.memory.ready and self._built_from is train):
            return
        self._built_from = train
        inputs, futures = train.inputs_and_futures()  # [N, C, L], [N, C, H]
        normalised, mean, std = normalise(inputs.transpose(1, 2))
        rows = normalised.transpose(1, 2).reshape(-1, self.seq_len)  # one row per window and channel
        future_rows = ((futures.transpose(1, 2) - mean) / std).transpose(1, 2).reshape(-1, self.pred_len)
        self.memory.build(rows, future_rows, train.positions.repeat_interleave(inputs.shape[1]))

    def _cycle_at(self, positions: torch.Tensor, offset: int, length: int) -> torch.Tensor:
        """The learned cycle over ``length`` steps from each window's ``position + offset`` ``[B, length, C]``.

        Every phase's stretch is one of ``cycle_len`` rolled copies; picking them with a one-hot matmul
        keeps the backward pass a matmul (an indexed gather's backward is a slow scatter-add on CPU).
        """
        repeats = -(-(length + self.cycle_len) // self.cycle_len)
        stretches = self.cycle.repeat(repeats, 1).unfold(0, length, 1)[: self.cycle_len]  # [cycle, C, length]
        phase = (positions + offset) % self.cycle_len
        pick = nn.functional.one_hot(phase, self.cycle_len).to(stretches.dtype)
        return (pick @ stretches.flatten(1)).view(-1, self.cycle.shape[1], length).transpose(1, 2)

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, seq_len, C]`` -> ``[B, pred_len, C]``; ``positions`` ``[B]``: each window's first row on the clock."""
        if positions is None:
            raise ValueError("KLCycleForecaster needs each window's position (the phase of its daily cycle)")
        normalised, mean, std = normalise(x)
        residual = normalised - self._cycle_at(positions, 0, self.seq_len)
        forecast = self.linear(residual.transpose(1, 2)).transpose(1, 2)
        forecast = forecast + self._cycle_at(positions, self.seq_len, self.pred_len)
        recalled = self.recall(normalised, positions)
        if recalled is not None:
            weight = torch.sigmoid(self.blend_logit)[None, :, None]
            forecast = forecast + weight * (recalled - forecast)
        return denormalise(forecast, mean, std)

    def recall(self, normalised: torch.Tensor, positions: torch.Tensor) -> torch.Tensor | None:
        """The memory's analog forecast ``[B, pred_len, C]`` (normalised units), or None when off or empty.

        Stored windows overlapping the query's own span are never read, in training or evaluation.
        """
        if self.memory is None or not self.memory.ready:
            return None
        batch, _, channels = normalised.shape
        rows = normalised.transpose(1, 2).reshape(batch * channels, self.seq_len)
        read = self.memory.read(rows, positions.repeat_interleave(channels), self.seq_len + self.pred_len)
        return read.reshape(batch, channels, self.pred_len).transpose(1, 2)
