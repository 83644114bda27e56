"""The shared body of the convolution-like forecasters (S4D, MultiresConv): residual sequence-mixing blocks."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.memory_backbone import MemoryBackbone, MemoryOptions


class ResidualMixerForecaster(MemoryBackbone):
    """Normalise, embed points, blocks ``x + Dropout(Linear(GELU(mixer(LN(x)))))``, flatten head.

    Subclasses supply ``mixers``: modules mapping ``[n, d_model, L]`` to the same shape along time.
    With spectral memory the mean memory token is added to every step as a conditioning vector; the
    analog memory is blended into the forecast after training.
    """

    def build(
        self,
        seq_len: int,
        pred_len: int,
        d_model: int,
        mixers: list[nn.Module],
        dropout: float,
        memory_options: MemoryOptions | None,
    ) -> None:
        self.pred_len = pred_len
        self.embedding = nn.Linear(1, d_model)
        self.mixers = nn.ModuleList(mixers)
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in mixers)
        self.outputs = nn.ModuleList(nn.Linear(d_model, d_model) for _ in mixers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(seq_len * d_model, pred_len)
        self.attach_memory(d_model, memory_options, dropout, seq_len, pred_len)

    def _network(self, x: torch.Tensor, write_memory: bool | None) -> torch.Tensor:
        batch, length, channels = x.shape
        hidden = self.embedding(x.transpose(1, 2).reshape(batch * channels, length, 1))  # [n, L, d]
        tokens = self.read_memory(hidden.shape[0])
        if tokens is not None:
            hidden = hidden + tokens.mean(dim=1, keepdim=True)
        for mixer, norm, output in zip(self.mixers, self.norms, self.outputs, strict=True):
            mixed = mixer(norm(hidden).transpose(1, 2)).transpose(1, 2)
            hidden = hidden + self.dropout(output(nn.functional.gelu(mixed)))
        self.write_memory(hidden, write_memory)
        forecast = self.head(hidden.reshape(batch * channels, -1)).reshape(batch, channels, self.pred_len)
        return forecast.transpose(1, 2)
