"""The published K-L memory forecaster (TSL's ``KLMemory``), built on :class:`SpectralMemory`.

Per-window (RevIN-style) normalisation, channel independence, a point embedding with learned
positions, memory tokens prepended to a pre-norm Transformer encoder, and a flatten head. In
training mode each forward pass writes one attention-pooled summary of the batch into the memory.
"""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.memory_backbone import MemoryBackbone, MemoryOptions


class KLMemoryForecaster(MemoryBackbone):
    """Channel-independent Transformer with spectral memory prefix tokens.

    Args:
        seq_len, pred_len, n_channels: look-back, horizon and number of input series.
        d_model, n_heads, d_ff, e_layers, dropout: the encoder's shape.
        memory_options: :class:`~specmem_cli.models.memory_backbone.MemoryOptions`, the published
            settings by default (``memory_defaults``): ``memory`` ``spectral`` (memory tokens prepended),
            ``analog`` (the analog memory blended in after training, where validation says it helps) or
            ``off`` (the same model without either); the rest configure :class:`SpectralMemory`.
    """

    memory_defaults = MemoryOptions(memory="spectral", memory_depth=3000, n_components=16, projection="dense")

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        d_model: int = 512,
        n_heads: int = 8,
        d_ff: int = 2048,
        e_layers: int = 2,
        dropout: float = 0.1,
        memory_options: MemoryOptions | None = None,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.seq_len, self.pred_len, self.n_channels = seq_len, pred_len, n_channels
        self.embedding = nn.Linear(1, d_model)
        self.positions = nn.Parameter(torch.randn(1, seq_len, d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)
        self.attach_memory(d_model, memory_options, dropout, seq_len, pred_len)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, d_ff, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, e_layers, enable_nested_tensor=False)
        self.head = nn.Linear(seq_len * d_model, pred_len)

    def _network(self, normalised: torch.Tensor, write_memory: bool | None) -> torch.Tensor:
        """Normalised ``[B, seq_len, C]`` -> forecast ``[B, pred_len, C]``, same units. The batch's pooled
        summary is written to a spectral memory in training mode (as published), or whenever
        ``write_memory`` is True (rebuilding a memory from data in eval mode)."""
        batch, length, channels = normalised.shape
        series = normalised.permute(0, 2, 1).reshape(batch * channels, length, 1)
        hidden = self.dropout(self.embedding(series) + self.positions)
        encoded = self.encode_with_memory(self.encoder, hidden, write_memory)
        forecast = self.head(encoded.reshape(batch * channels, -1))
        return forecast.reshape(batch, channels, self.pred_len).permute(0, 2, 1)
