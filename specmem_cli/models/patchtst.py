"""PatchTST (Nie et al., 2023): channel-independent Transformer over patches of each series.

It takes a memory like every :class:`~specmem_cli.models.memory_backbone.MemoryBackbone`: spectral memory
tokens are prepended to each series' patch tokens (as in the published K-L model), or the analog memory is
blended in after training; with ``memory: off`` (its default) it is PatchTST as published."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.layers import sinusoidal_positions, transformer_encoder
from specmem_cli.models.memory_backbone import MemoryBackbone, MemoryOptions


class _BatchNormOverTokens(nn.Module):
    """BatchNorm1d over ``d_model`` for ``[B, tokens, d_model]`` (the paper's encoder norm)."""

    def __init__(self, d_model: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class PatchTST(MemoryBackbone):
    """Per-window normalisation, patches (end padded by ``stride``), encoder, flatten head.

    Args:
        patch_len, stride: patch size and step over the look-back window.
        d_model, n_heads, d_ff, e_layers, dropout: the encoder's shape.
        memory_options: the memory (:class:`~specmem_cli.models.memory_backbone.MemoryOptions`; off by default).
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        patch_len: int = 16,
        stride: int = 8,
        d_model: int = 512,
        n_heads: int = 2,
        d_ff: int = 2048,
        e_layers: int = 1,
        dropout: float = 0.1,
        memory_options: MemoryOptions | None = None,
    ):
        super().__init__()
        self.patch_len, self.stride = patch_len, stride
        n_patches = (seq_len + stride - patch_len) // stride + 1
        self.embedding = nn.Linear(patch_len, d_model, bias=False)
        self.register_buffer("positions", sinusoidal_positions(n_patches, d_model), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.encoder = transformer_encoder(d_model, n_heads, d_ff, e_layers, dropout, _BatchNormOverTokens(d_model))
        self.head = nn.Sequential(
            nn.Flatten(start_dim=1), nn.Linear(n_patches * d_model, pred_len), nn.Dropout(dropout)
        )
        self.attach_memory(d_model, memory_options, dropout, seq_len, pred_len)

    def _network(self, x: torch.Tensor, write_memory: bool | None) -> torch.Tensor:
        batch, _, channels = x.shape
        series = x.transpose(1, 2).reshape(batch * channels, -1)
        series = torch.cat([series, series[:, -1:].expand(-1, self.stride)], dim=1)  # replicate-pad the end
        patches = series.unfold(1, self.patch_len, self.stride)  # [B*C, n_patches, patch_len]
        hidden = self.dropout(self.embedding(patches) + self.positions)
        encoded = self.encode_with_memory(self.encoder, hidden, write_memory)
        return self.head(encoded).reshape(batch, channels, -1).transpose(1, 2)
