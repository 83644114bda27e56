"""Autoformer (Wu et al., 2021): auto-correlation instead of attention, with progressive trend decomposition."""

from __future__ import annotations

import math

import torch
from torch import nn

from specmem_cli.models.layers import SeriesDecomposition, token_embedding


class AutoCorrelation(nn.Module):
    """Multi-head auto-correlation: FFT-based period scores, then the values rolled by the top-k delays.

    Each sample uses its own ``k = factor * ln(L)`` strongest delays (the paper's inference rule; its
    training shortcut shares delays across the batch for speed).
    """

    def __init__(self, d_model: int, n_heads: int, factor: int, dropout: float):
        super().__init__()
        self.n_heads, self.factor = n_heads, factor
        self.query, self.key, self.value = (nn.Linear(d_model, d_model) for _ in range(3))
        self.out = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        batch, length, width = queries.shape
        heads = self.n_heads
        q = self.query(queries).view(batch, length, heads, -1)
        k, v = self.key(keys), self.value(values)
        if k.shape[1] < length:  # align keys/values with the queries' length
            pad = k.new_zeros(batch, length - k.shape[1], width)
            k, v = torch.cat([k, pad], dim=1), torch.cat([v, pad], dim=1)
        k = k[:, :length].view(batch, length, heads, -1)
        v = v[:, :length].view(batch, length, heads, -1)
        spectrum = torch.fft.rfft(q.permute(0, 2, 3, 1), dim=-1) * torch.conj(
            torch.fft.rfft(k.permute(0, 2, 3, 1), dim=-1)
        )
        correlation = torch.fft.irfft(spectrum, n=length, dim=-1)  # [B, H, E, L]
        top = max(1, int(self.factor * math.log(length)))
        score = correlation.mean(dim=(1, 2))  # [B, L]
        weights, delays = torch.topk(score, top, dim=-1)
        weights = self.dropout(torch.softmax(weights, dim=-1))
        series = v.permute(0, 2, 3, 1)  # [B, H, E, L]
        doubled = torch.cat([series, series], dim=-1)
        base = torch.arange(length, device=series.device)
        aggregated = torch.zeros_like(series)
        for i in range(top):
            index = (base[None] + delays[:, i : i + 1]).view(batch, 1, 1, length).expand_as(series)
            aggregated = aggregated + torch.gather(doubled, -1, index) * weights[:, i].view(batch, 1, 1, 1)
        return self.out(aggregated.permute(0, 3, 1, 2).reshape(batch, length, width))


class SeasonalNorm(nn.Module):
    """LayerNorm, then the time mean removed: the seasonal part carries no level."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        return x - x.mean(dim=1, keepdim=True)


def _feed_forward(d_model: int, d_ff: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(d_model, d_ff, bias=False),
        nn.GELU(),
        nn.Dropout(dropout),
        nn.Linear(d_ff, d_model, bias=False),
        nn.Dropout(dropout),
    )


class EncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, factor, moving_avg, dropout):
        super().__init__()
        self.attention = AutoCorrelation(d_model, n_heads, factor, dropout)
        self.feed_forward = _feed_forward(d_model, d_ff, dropout)
        self.decomposition = SeriesDecomposition(moving_avg)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x, _ = self.decomposition(x + self.dropout(self.attention(x, x, x)))
        x, _ = self.decomposition(x + self.feed_forward(x))
        return x


class DecoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, factor, moving_avg, dropout, n_channels):
        super().__init__()
        self.self_attention = AutoCorrelation(d_model, n_heads, factor, dropout)
        self.cross_attention = AutoCorrelation(d_model, n_heads, factor, dropout)
        self.feed_forward = _feed_forward(d_model, d_ff, dropout)
        self.decomposition = SeriesDecomposition(moving_avg)
        self.dropout = nn.Dropout(dropout)
        self.trend_projection = nn.Conv1d(d_model, n_channels, 3, padding=1, padding_mode="circular", bias=False)

    def forward(self, x, memory):
        x, trend_a = self.decomposition(x + self.dropout(self.self_attention(x, x, x)))
        x, trend_b = self.decomposition(x + self.dropout(self.cross_attention(x, memory, memory)))
        x, trend_c = self.decomposition(x + self.feed_forward(x))
        trend = self.trend_projection((trend_a + trend_b + trend_c).transpose(1, 2)).transpose(1, 2)
        return x, trend


class Autoformer(nn.Module):
    """Encoder-decoder with auto-correlation; the decoder starts from the last ``label_len`` steps.

    The decoder's seasonal input is the window's seasonal tail then zeros; its trend input is the
    trend tail then the window mean. Args: ``label_len``, ``d_model``, ``n_heads``, ``d_ff``,
    ``e_layers``, ``d_layers``, ``factor`` (delays = factor * ln L), ``moving_avg``, ``dropout``.
    Calendar features are not used (specmem windows carry values only).
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        label_len: int = 48,
        d_model: int = 512,
        n_heads: int = 8,
        d_ff: int = 2048,
        e_layers: int = 2,
        d_layers: int = 1,
        factor: int = 3,
        moving_avg: int = 25,
        dropout: float = 0.1,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.label_len, self.pred_len = min(label_len, seq_len), pred_len
        self.decomposition = SeriesDecomposition(moving_avg)
        self.encoder_embedding = token_embedding(n_channels, d_model)
        self.decoder_embedding = token_embedding(n_channels, d_model)
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.ModuleList(
            EncoderLayer(d_model, n_heads, d_ff, factor, moving_avg, dropout) for _ in range(e_layers)
        )
        self.decoder = nn.ModuleList(
            DecoderLayer(d_model, n_heads, d_ff, factor, moving_avg, dropout, n_channels) for _ in range(d_layers)
        )
        self.encoder_norm, self.decoder_norm = SeasonalNorm(d_model), SeasonalNorm(d_model)
        self.projection = nn.Linear(d_model, n_channels)

    def _embed(self, embedding: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(embedding(x.transpose(1, 2)).transpose(1, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seasonal, trend = self.decomposition(x)
        mean = x.mean(dim=1, keepdim=True).expand(-1, self.pred_len, -1)
        trend = torch.cat([trend[:, -self.label_len :], mean], dim=1)
        seasonal = torch.cat([seasonal[:, -self.label_len :], torch.zeros_like(mean)], dim=1)
        encoded = self._embed(self.encoder_embedding, x)
        for layer in self.encoder:
            encoded = layer(encoded)
        encoded = self.encoder_norm(encoded)
        decoded = self._embed(self.decoder_embedding, seasonal)
        for layer in self.decoder:
            decoded, trend_part = layer(decoded, encoded)
            trend = trend + trend_part
        output = trend + self.projection(self.decoder_norm(decoded))
        return output[:, -self.pred_len :]
