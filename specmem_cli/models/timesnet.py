"""TimesNet (Wu et al., 2023): fold the series at its dominant FFT periods into 2-D maps and convolve them."""

from __future__ import annotations

import math

import torch
from torch import nn

from specmem_cli.models.layers import denormalise, normalise, sinusoidal_positions, token_embedding


class InceptionBlock(nn.Module):
    """Parallel 2-D convolutions with kernels 1, 3, 5, ... (same padding), averaged."""

    def __init__(self, in_channels: int, out_channels: int, num_kernels: int):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels, 2 * i + 1, padding=i) for i in range(num_kernels)
        )
        for conv in self.convs:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([conv(x) for conv in self.convs], dim=-1).mean(dim=-1)


def dominant_periods(x: torch.Tensor, k: int) -> tuple[list[int], torch.Tensor]:
    """The ``k`` strongest FFT periods of ``x`` ``[B, T, d]`` (batch-averaged) and per-sample amplitudes ``[B, k]``."""
    amplitudes = torch.fft.rfft(x, dim=1).abs()
    strength = amplitudes.mean(dim=(0, 2))
    strength[0] = 0  # the mean is not a period
    frequencies = torch.topk(strength, k).indices.tolist()
    periods = [x.shape[1] // max(f, 1) for f in frequencies]
    return periods, amplitudes.mean(dim=2)[:, frequencies]


class TimesBlock(nn.Module):
    def __init__(self, d_model: int, d_ff: int, top_k: int, num_kernels: int):
        super().__init__()
        self.top_k = top_k
        self.conv = nn.Sequential(
            InceptionBlock(d_model, d_ff, num_kernels), nn.GELU(), InceptionBlock(d_ff, d_model, num_kernels)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        periods, amplitudes = dominant_periods(x, self.top_k)
        branches = []
        for period in periods:
            rows = math.ceil(length / period)
            padded = torch.cat([x, x.new_zeros(batch, rows * period - length, width)], dim=1)
            folded = padded.reshape(batch, rows, period, width).permute(0, 3, 1, 2)  # [B, d, rows, period]
            unfolded = self.conv(folded).permute(0, 2, 3, 1).reshape(batch, -1, width)
            branches.append(unfolded[:, :length])
        weights = torch.softmax(amplitudes, dim=1)[:, None, None, :]  # [B, 1, 1, k]
        return (torch.stack(branches, dim=-1) * weights).sum(dim=-1) + x


class TimesNet(nn.Module):
    """Normalise, embed (conv tokens + positions), stretch to ``seq_len + pred_len``, TimesBlocks, project.

    Args:
        d_model, d_ff, e_layers, dropout: width, inception hidden width, blocks, dropout.
        top_k: periods folded per block; num_kernels: inception branches (kernels 1, 3, ...).
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        d_model: int = 16,
        d_ff: int = 32,
        e_layers: int = 2,
        top_k: int = 5,
        num_kernels: int = 6,
        dropout: float = 0.1,
    ):
        super().__init__()
        self.pred_len = pred_len
        self.embedding = token_embedding(n_channels, d_model)
        self.register_buffer("positions", sinusoidal_positions(seq_len, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.stretch = nn.Linear(seq_len, seq_len + pred_len)
        self.blocks = nn.ModuleList(TimesBlock(d_model, d_ff, top_k, num_kernels) for _ in range(e_layers))
        self.norm = nn.LayerNorm(d_model)
        self.projection = nn.Linear(d_model, n_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, mean, std = normalise(x)
        hidden = self.dropout(self.embedding(x.transpose(1, 2)).transpose(1, 2) + self.positions)
        hidden = self.stretch(hidden.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            hidden = self.norm(block(hidden))
        return denormalise(self.projection(hidden)[:, -self.pred_len :], mean, std)
