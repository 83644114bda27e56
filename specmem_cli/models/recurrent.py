"""Channel-independent recurrent forecasters (GRU, LSTM) with optional spectral memory as initial state."""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.models.memory_backbone import MemoryBackbone, MemoryOptions


class _RecurrentForecaster(MemoryBackbone):
    """Normalise each window, embed each point, run the RNN over the window, map the last state to the horizon.

    With ``memory='spectral'`` the mean memory token is the initial hidden state of every layer, and
    each training batch writes its pooled outputs into the memory; ``memory='analog'`` blends the analog
    memory's forecast in after training, where validation says it helps.

    Args: ``d_model`` (hidden size), ``e_layers``, ``dropout``, and ``memory_options``
    (:class:`~specmem_cli.models.memory_backbone.MemoryOptions`).
    """

    cell: type[nn.RNNBase]

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        d_model: int = 64,
        e_layers: int = 1,
        dropout: float = 0.1,
        memory_options: MemoryOptions | None = None,
    ):
        super().__init__()
        self.pred_len, self.e_layers = pred_len, e_layers
        self.embedding = nn.Linear(1, d_model)
        self.rnn = self.cell(d_model, d_model, e_layers, batch_first=True, dropout=dropout if e_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, pred_len))
        self.attach_memory(d_model, memory_options, dropout, seq_len, pred_len)

    def _initial_state(self, tokens: torch.Tensor | None):
        if tokens is None:
            return None
        hidden = tokens.mean(dim=1)[None].expand(self.e_layers, -1, -1).contiguous()
        return (hidden, torch.zeros_like(hidden)) if isinstance(self.rnn, nn.LSTM) else hidden

    def _network(self, x: torch.Tensor, write_memory: bool | None) -> torch.Tensor:
        batch, length, channels = x.shape
        series = self.embedding(x.transpose(1, 2).reshape(batch * channels, length, 1))
        outputs, _ = self.rnn(series, self._initial_state(self.read_memory(batch * channels)))
        self.write_memory(outputs, write_memory)
        return self.head(outputs[:, -1]).reshape(batch, channels, self.pred_len).transpose(1, 2)


class GRUForecaster(_RecurrentForecaster):
    __doc__ = _RecurrentForecaster.__doc__
    cell = nn.GRU


class LSTMForecaster(_RecurrentForecaster):
    __doc__ = _RecurrentForecaster.__doc__
    cell = nn.LSTM
