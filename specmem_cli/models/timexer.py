"""TimeXer (Wang et al., 2024): endogenous patch tokens plus a global token that attends to exogenous variate tokens."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.layers import denormalise, normalise, sinusoidal_positions


class TimeXerLayer(nn.Module):
    """Self-attention over one variable's patches and its global token; the global token also cross-attends
    to every variate's whole-window token; then a feed-forward block (post-norm throughout)."""

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float):
        super().__init__()
        self.self_attention = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(d_model, n_heads, dropout=dropout, batch_first=True)
        self.feed_forward = nn.Sequential(
            nn.Linear(d_model, d_ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(d_ff, d_model), nn.Dropout(dropout)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: torch.Tensor, exogenous: torch.Tensor, n_vars: int) -> torch.Tensor:
        """``tokens`` ``[B*C, P+1, d]`` (global token last), ``exogenous`` ``[B, C, d]``."""
        attended, _ = self.self_attention(tokens, tokens, tokens, need_weights=False)
        tokens = self.norms[0](tokens + self.dropout(attended))
        global_token = tokens[:, -1:].reshape(-1, n_vars, tokens.shape[-1])  # [B, C, d]
        crossed, _ = self.cross_attention(global_token, exogenous, exogenous, need_weights=False)
        global_token = self.norms[1](global_token + self.dropout(crossed)).reshape(-1, 1, tokens.shape[-1])
        tokens = torch.cat([tokens[:, :-1], global_token], dim=1)
        return self.norms[2](tokens + self.feed_forward(tokens))


class TimeXer(nn.Module):
    """Every variable is endogenous in turn (features M): its non-overlapping patches plus a learned global
    token, which cross-attends to one token per variate (``Linear(seq_len, d_model)`` over the whole window).

    Args: ``patch_len``, ``d_model``, ``n_heads``, ``d_ff``, ``e_layers``, ``dropout``, ``use_norm``.
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        patch_len: int = 16,
        d_model: int = 256,
        n_heads: int = 8,
        d_ff: int = 2048,
        e_layers: int = 1,
        dropout: float = 0.1,
        use_norm: bool = True,
    ):
        super().__init__()
        if seq_len < patch_len:
            raise ValueError(f"seq_len ({seq_len}) must be at least patch_len ({patch_len})")
        self.patch_len, self.use_norm, self.n_channels = patch_len, use_norm, n_channels
        self.n_patches = seq_len // patch_len
        self.patch_embedding = nn.Linear(patch_len, d_model, bias=False)
        self.register_buffer("positions", sinusoidal_positions(self.n_patches, d_model), persistent=False)
        self.global_token = nn.Parameter(torch.randn(1, n_channels, 1, d_model))
        self.variate_embedding = nn.Linear(seq_len, d_model)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(TimeXerLayer(d_model, n_heads, d_ff, dropout) for _ in range(e_layers))
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Sequential(
            nn.Flatten(start_dim=1), nn.Linear((self.n_patches + 1) * d_model, pred_len), nn.Dropout(dropout)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, channels = x.shape
        if self.use_norm:
            x, mean, std = normalise(x)
        series = x.transpose(1, 2)  # [B, C, L]
        patches = series[:, :, : self.n_patches * self.patch_len].reshape(
            batch, channels, self.n_patches, self.patch_len
        )
        tokens = self.patch_embedding(patches) + self.positions  # [B, C, P, d]
        tokens = torch.cat([tokens, self.global_token.expand(batch, -1, -1, -1)], dim=2)
        tokens = self.dropout(tokens.reshape(batch * channels, self.n_patches + 1, -1))
        exogenous = self.dropout(self.variate_embedding(series))  # [B, C, d]
        for layer in self.layers:
            tokens = layer(tokens, exogenous, channels)
        forecast = self.head(self.norm(tokens)).reshape(batch, channels, -1).transpose(1, 2)
        return denormalise(forecast, mean, std) if self.use_norm else forecast
