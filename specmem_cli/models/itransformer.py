"""iTransformer (Liu et al., 2024): each variate's whole window is one token; attention runs across variates."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.layers import denormalise, normalise, transformer_encoder


class ITransformer(nn.Module):
    """Inverted Transformer: ``Linear(seq_len, d_model)`` per variate, encoder over variates, ``Linear(d_model, pred_len)``.

    Args:
        d_model, n_heads, d_ff, e_layers, dropout: the encoder's shape.
        use_norm: per-window normalisation of each variate (on in the paper).
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        d_model: int = 128,
        n_heads: int = 8,
        d_ff: int = 128,
        e_layers: int = 2,
        dropout: float = 0.1,
        use_norm: bool = True,
    ):
        super().__init__()
        self.use_norm = use_norm
        self.embedding = nn.Linear(seq_len, d_model)
        self.dropout = nn.Dropout(dropout)
        self.encoder = transformer_encoder(d_model, n_heads, d_ff, e_layers, dropout, nn.LayerNorm(d_model))
        self.projection = nn.Linear(d_model, pred_len)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_norm:
            x, mean, std = normalise(x)
        tokens = self.dropout(self.embedding(x.transpose(1, 2)))  # [B, C, d_model]
        forecast = self.projection(self.encoder(tokens)).transpose(1, 2)  # [B, pred_len, C]
        return denormalise(forecast, mean, std) if self.use_norm else forecast
