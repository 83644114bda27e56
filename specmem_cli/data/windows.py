"""Sliding forecasting windows as tensor views, so a batch is one gather and not B item calls."""

from __future__ import annotations

from collections.abc import Iterator

import torch


class WindowSet:
    """All (input, target) windows of one split.

    ``inputs`` is ``series`` rows ``[s, s + seq_len)``; ``targets`` is the horizon, rows
    ``[s + seq_len, s + seq_len + pred_len)`` of the output channels, for every start
    ``s`` with a complete target (TSL's count: ``rows - seq_len - pred_len + 1``).
    Both are strided views of one tensor: no window is copied until it is batched. ``positions``
    holds each series row's clock position (see :class:`~specmem_cli.data.calendar.TimeAxis`); a
    window's position is that of its first input row. Without it, rows count from 0.
    """

    def __init__(
        self,
        series: torch.Tensor,
        seq_len: int,
        pred_len: int,
        output_channels: slice,
        positions: torch.Tensor | None = None,
    ):
        self.seq_len, self.pred_len = seq_len, pred_len
        self.series, self.output_channels = series, output_channels
        self.count = series.shape[0] - seq_len - pred_len + 1
        if self.count < 1:
            raise ValueError("series shorter than seq_len + pred_len")
        self._inputs = series.unfold(0, seq_len, 1)[: self.count]  # [N, C, seq_len]
        self._targets = series[seq_len:, output_channels].unfold(0, pred_len, 1)[: self.count]  # [N, C_out, pred_len]
        self._rows = torch.arange(series.shape[0]) if positions is None else positions
        self.positions = self._rows[: self.count]

    def __len__(self) -> int:
        return self.count

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inputs ``[B, seq_len, C]``, targets ``[B, pred_len, C_out]`` and positions ``[B]``.

        The targets are laid out contiguously, as the forecasts they are compared with are: a loss and its
        gradient reading a transposed view stride through memory (a tenth of a training step on weather h720).
        """
        targets = self._targets[index].transpose(1, 2).contiguous()
        return self._inputs[index].transpose(1, 2), targets, self.positions[index]

    def span(self, start: int, stop: int) -> WindowSet:
        """Windows ``start`` to ``stop - 1`` as a set of their own (a held-out part of a split), on the same rows."""
        if not 0 <= start < stop <= self.count:
            raise ValueError(f"window span [{start}, {stop}) outside the {self.count} windows")
        rows = slice(start, stop + self.seq_len + self.pred_len - 1)
        return WindowSet(self.series[rows], self.seq_len, self.pred_len, self.output_channels, self._rows[rows])

    def inputs_and_futures(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every window ``[N, C, seq_len]`` and the ``pred_len`` rows after it for *all* channels ``[N, C, pred_len]``
        (views; a memory built from the training trajectory stores both)."""
        return self._inputs, self.series[self.seq_len :].unfold(0, self.pred_len, 1)[: self.count]

    def batches(
        self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None, limit: int | None = None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Every window once, in order or shuffled; the last batch may be short (no dropped windows).

        With ``limit``, only the first ``limit`` windows of that order (a fresh random subset when shuffled).
        """
        order = torch.randperm(self.count, generator=generator) if shuffle else torch.arange(self.count)
        order = order[:limit]  # [:None] keeps every window
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start : start + batch_size])

    def n_batches(self, batch_size: int, limit: int | None = None) -> int:
        return -(-min(self.count, limit or self.count) // batch_size)

    def windows_for(self, pairs: int | None) -> int | None:
        """How many windows hold at most ``pairs`` (window, series) pairs (at least one); None: no cap needed."""
        if pairs is None or self.count * self.series.shape[1] <= pairs:
            return None
        return max(1, pairs // self.series.shape[1])
