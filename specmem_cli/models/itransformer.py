"""iTransformer (Liu et al., 2024): each variate's whole window is one token; attention runs across variates.

It takes a memory like every :class:`~specmem_cli.models.memory_backbone.MemoryBackbone`: spectral memory
tokens join the variate tokens in attention, or the analog memory is blended in after training; with
``memory: off`` (its default) it is iTransformer as published."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.layers import transformer_encoder
from specmem_cli.models.memory_backbone import MemoryBackbone, MemoryOptions


class ITransformer(MemoryBackbone):
    """Inverted Transformer: ``Linear(seq_len, d_model)`` per variate, encoder over variates, ``Linear(d_model, pred_len)``.

    Args:
        d_model, n_heads, d_ff, e_layers, dropout: the encoder's shape.
        use_norm: per-window normalisation of each variate (on in the paper).
        memory_options: the memory (:class:`~specmem_cli.models.memory_backbone.MemoryOptions`; off by default).
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
        memory_options: MemoryOptions | None = None,
    ):
        super().__init__()
        self.use_norm = use_norm
        self.embedding = nn.Linear(seq_len, d_model)
        self.dropout = nn.Dropout(dropout)
        self.encoder = transformer_encoder(d_model, n_heads, d_ff, e_layers, dropout, nn.LayerNorm(d_model))
        self.projection = nn.Linear(d_model, pred_len)
        self.attach_memory(d_model, memory_options, dropout, seq_len, pred_len)

    @property
    def normalises(self) -> bool:
        return self.use_norm

    def _network(self, x: torch.Tensor, write_memory: bool | None) -> torch.Tensor:
        hidden = self.dropout(self.embedding(x.transpose(1, 2)))  # [B, C, d_model]
        encoded = self.encode_with_memory(self.encoder, hidden, write_memory)
        return self.projection(encoded).transpose(1, 2)  # [B, pred_len, C]
