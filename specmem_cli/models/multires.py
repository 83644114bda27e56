"""A MultiresConv forecaster: stacked wavelet-tree memory layers over each channel's hidden state."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.memory.multires import MultiresConv
from specmem_cli.models.layers import denormalise, normalise
from specmem_cli.models.memory_backbone import MemoryBackbone


class MultiresForecaster(MemoryBackbone):
    """Normalise, embed points, residual blocks ``x + Dropout(Mix(GELU(MultiresConv(LN(x)))))``, flatten head.

    With ``memory='spectral'`` the mean memory token is added to every step as a conditioning vector.

    Args:
        d_model, e_layers, dropout: width, blocks, dropout.
        kernel_size, selection, wavelet: the :class:`~specmem_cli.memory.multires.MultiresConv` settings
            (``wavelet`` = ``haar``, ``db2``, ... initialises the filters; ``null`` for random).
        memory, memory_depth, n_components, memory_tokens, strategy, projection: spectral memory options.
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        d_model: int = 32,
        e_layers: int = 2,
        dropout: float = 0.1,
        kernel_size: int = 2,
        selection: str = "fading",
        wavelet: str | None = "haar",
        memory: str = "off",
        memory_depth: int = 512,
        n_components: int = 8,
        memory_tokens: int = 1,
        strategy: str = "empirical",
        projection: str = "bottleneck",
    ):
        super().__init__()
        self.pred_len = pred_len
        self.embedding = nn.Linear(1, d_model)
        self.layers = nn.ModuleList(
            MultiresConv(d_model, seq_len, kernel_size, selection, wavelet) for _ in range(e_layers)
        )
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(e_layers))
        self.mixers = nn.ModuleList(nn.Linear(d_model, d_model) for _ in range(e_layers))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(seq_len * d_model, pred_len)
        self.attach_memory(
            d_model,
            memory,
            dropout,
            memory_depth=memory_depth,
            n_components=n_components,
            memory_tokens=memory_tokens,
            strategy=strategy,
            projection=projection,
        )

    def forward(self, x: torch.Tensor, write_memory: bool | None = None) -> torch.Tensor:
        batch, length, channels = x.shape
        x, mean, std = normalise(x)
        hidden = self.embedding(x.transpose(1, 2).reshape(batch * channels, length, 1))  # [n, L, d]
        tokens = self.read_memory(hidden.shape[0])
        if tokens is not None:
            hidden = hidden + tokens.mean(dim=1, keepdim=True)
        for layer, norm, mixer in zip(self.layers, self.norms, self.mixers, strict=True):
            mixed = layer(norm(hidden).transpose(1, 2)).transpose(1, 2)
            hidden = hidden + self.dropout(mixer(nn.functional.gelu(mixed)))
        self.write_memory(hidden, write_memory)
        forecast = self.head(hidden.reshape(batch * channels, -1)).reshape(batch, channels, self.pred_len)
        return denormalise(forecast.transpose(1, 2), mean, std)
