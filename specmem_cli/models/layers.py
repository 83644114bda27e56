"""Building blocks several forecasters share: per-window normalisation and series decomposition."""

from __future__ import annotations

import math

import torch
from torch import nn


def normalise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-window, per-channel standardisation over time (RevIN without affine): ``(x_norm, mean, std)``.

    Forecasting in these units and mapping back with :func:`denormalise` removes level shifts
    between windows, which is most of what makes channel-independent models competitive.
    """
    mean = x.mean(dim=1, keepdim=True)
    # the variance from the centred input, which the result needs anyway: torch.var's one-pass
    # reduction took a fifth of a klcycle training step on weather (benchmarks/normalise.py)
    centred = x - mean
    std = torch.sqrt(centred.square().mean(dim=1, keepdim=True) + 1e-5)
    return centred / std, mean, std


def denormalise(y: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return y * std + mean


class SeriesDecomposition(nn.Module):
    """Trend = moving average (ends padded by repeating the edge values), seasonal = the rest."""

    def __init__(self, kernel_size: int):
        super().__init__()
        self.kernel_size = kernel_size
        self.average = nn.AvgPool1d(kernel_size, stride=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``[B, L, C]`` -> ``(seasonal, trend)``, both ``[B, L, C]``."""
        front = x[:, :1].expand(-1, (self.kernel_size - 1) // 2, -1)
        back = x[:, -1:].expand(-1, self.kernel_size // 2, -1)
        padded = torch.cat([front, x, back], dim=1)
        trend = self.average(padded.transpose(1, 2)).transpose(1, 2)
        return x - trend, trend


def transformer_encoder(d_model: int, n_heads: int, d_ff: int, e_layers: int, dropout: float, norm: nn.Module):
    """Post-norm GELU Transformer encoder with a final norm (the TSL ``Encoder`` used by several baselines)."""
    layer = nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, activation="gelu", batch_first=True)
    return nn.TransformerEncoder(layer, e_layers, norm=norm, enable_nested_tensor=False)


def token_embedding(n_channels: int, d_model: int) -> nn.Conv1d:
    """Kernel-3 circular convolution from channels to ``d_model`` (the TSL value embedding), on ``[B, C, L]``."""
    conv = nn.Conv1d(n_channels, d_model, kernel_size=3, padding=1, padding_mode="circular", bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_in", nonlinearity="leaky_relu")
    return conv


def sinusoidal_positions(length: int, d_model: int) -> torch.Tensor:
    """The fixed sine/cosine position table ``[length, d_model]`` of the original Transformer."""
    position = torch.arange(length, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d_model // 2])
    return table
