"""DLinear (Zeng et al., 2023): decompose into trend and seasonal parts, forecast each with one linear map."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.layers import SeriesDecomposition


class DLinear(nn.Module):
    """Moving-average decomposition + a ``seq_len -> pred_len`` linear layer per component.

    Args:
        seq_len, pred_len, n_channels: look-back, horizon and number of series.
        moving_avg: the trend's moving-average window.
        individual: one pair of linear maps per channel instead of one shared pair.
    """

    def __init__(self, seq_len: int, pred_len: int, n_channels: int, moving_avg: int = 25, individual: bool = False):
        super().__init__()
        self.decomposition = SeriesDecomposition(moving_avg)
        count = n_channels if individual else 1
        self.seasonal = nn.ModuleList(nn.Linear(seq_len, pred_len) for _ in range(count))
        self.trend = nn.ModuleList(nn.Linear(seq_len, pred_len) for _ in range(count))
        for layer in (*self.seasonal, *self.trend):  # start from "repeat the window's mean", as the paper's code does
            nn.init.constant_(layer.weight, 1.0 / seq_len)
        self.individual = individual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seasonal, trend = (part.transpose(1, 2) for part in self.decomposition(x))  # [B, C, L]
        if self.individual:
            outputs = [
                s(seasonal[:, i]) + t(trend[:, i])
                for i, (s, t) in enumerate(zip(self.seasonal, self.trend, strict=True))
            ]
            return torch.stack(outputs, dim=2)
        return (self.seasonal[0](seasonal) + self.trend[0](trend)).transpose(1, 2)
