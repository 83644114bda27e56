"""The plug-in contract between a backbone and a memory, in one small base class.

A backbone
1. calls :meth:`MemoryBackbone.attach_memory` in ``__init__`` (``memory='off'`` attaches nothing),
2. implements ``_network(normalised, write_memory)``: per-window normalised input ``[B, L, C]`` to a
   forecast in the same units ``[B, H, C]`` (the base class normalises and maps back);
3. with spectral memory, reads ``self.read_memory(n)`` -> ``[n, M, d_model]`` tokens before encoding
   and injects them however suits it: prefix tokens (attention), initial state (recurrent), a
   conditioning vector added to every step (convolutional, state-space); and calls
   ``self.write_memory(hidden, write)`` with its ``[n, T, d_model]`` output: in training (or when
   ``write`` is True) one attention-pooled summary of the batch is appended to the history.
With ``memory='analog'`` nothing in the backbone changes: after training the analog memory's forecast
is blended into the network's per step, where validation says it helps
(:mod:`specmem_cli.models.analog_blend`). The trainer finds either memory as ``model.memory``.

The memory settings travel as one group, :class:`MemoryOptions`: a backbone's constructor takes
``memory_options`` and declares its own defaults once (``memory_defaults``); configs keep writing them as
flat ``model.`` keys (``model.memory=spectral``, ``model.memory_depth=512``), which the registry gathers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from specmem_cli.memory import SpectralMemory
from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.models.analog_blend import AnalogBlend
from specmem_cli.models.layers import denormalise, normalise

MEMORIES = ("off", "spectral", "analog")


@dataclass(frozen=True)
class MemoryOptions:
    """Which memory a backbone carries (``memory``: off, spectral or analog) and the spectral memory's
    settings (see :class:`SpectralMemory`); an analog memory takes its defaults, as klcycle's does."""

    memory: str = "off"
    memory_depth: int = 512
    n_components: int = 8
    memory_tokens: int = 1
    strategy: str = "empirical"
    kernel: str = "exp"
    tau: float = 64.0
    lambda_scaling: bool = True
    projection: str = "bottleneck"
    bottleneck_width: int = 64
    memory_update: str = "batch"


class MemoryBackbone(AnalogBlend):
    """Base class giving a forecaster ``memory`` (a :class:`SpectralMemory`, an :class:`AnalogMemory` or None)."""

    memory: SpectralMemory | AnalogMemory | None
    memory_defaults = MemoryOptions()  # a backbone whose defaults differ (the published model) overrides this
    normalises = True  # the network sees per-window normalised inputs (a backbone may make it optional)

    def attach_memory(
        self, d_model: int, options: MemoryOptions | None, dropout: float, seq_len: int, pred_len: int
    ) -> None:
        """Attach the memory ``options`` name (the class's :attr:`memory_defaults` when None)."""
        options = options or self.memory_defaults
        if options.memory not in MEMORIES:
            raise ValueError(f"memory must be one of {', '.join(MEMORIES)}, got '{options.memory}'")
        self.memory = None
        if options.memory == "spectral":
            self.memory = SpectralMemory(
                d_model,
                memory_depth=options.memory_depth,
                n_components=options.n_components,
                memory_tokens=options.memory_tokens,
                strategy=options.strategy,
                kernel=options.kernel,
                tau=options.tau,
                lambda_scaling=options.lambda_scaling,
                projection=options.projection,
                bottleneck_width=options.bottleneck_width,
                dropout=dropout,
                update=options.memory_update,
            )
        elif options.memory == "analog":
            if not self.normalises:
                raise ValueError(
                    "the analog memory compares normalised windows; turn normalisation on (use_norm: true)"
                )
            self.memory = AnalogMemory(seq_len, pred_len, stride=2)
            self.register_buffer("blend", torch.zeros(pred_len))  # per-step memory weight; zero: never read
        self.pooling = nn.Linear(d_model, 1)  # made whatever the memory, so every variant starts from the same weights
        if not isinstance(self.memory, SpectralMemory):
            # only a spectral memory's writes read it: checkpoints saved before a backbone took a memory
            # (PatchTST, iTransformer) lack it, and such a run keeps the layer's fresh, unused weights
            self.pooling.register_load_state_dict_pre_hook(_keep_weights_not_given)

    @property
    def uses_positions(self) -> bool:
        """The analog memory needs each window's position (a window never reads its own span)."""
        return self.analog is not None

    def read_memory(self, n: int) -> torch.Tensor | None:
        return self.memory(batch_size=n) if isinstance(self.memory, SpectralMemory) else None

    def write_memory(self, hidden: torch.Tensor, write: bool | None = None) -> None:
        """Append the batch's attention-pooled summary of ``hidden`` ``[n, T, d]`` (in training, or if ``write``)."""
        if not isinstance(self.memory, SpectralMemory) or not (self.training if write is None else write):
            return
        weights = torch.softmax(self.pooling(hidden), dim=1)
        self.memory.write((weights * hidden).sum(dim=1).mean(dim=0))

    def encode_with_memory(self, encoder: nn.Module, hidden: torch.Tensor, write_memory: bool | None) -> torch.Tensor:
        """The attention backbones' way in: spectral memory tokens prepended to ``hidden`` ``[n, T, d]``, the
        ``encoder`` run over both, the memory positions dropped from its output, and that output written."""
        tokens = self.read_memory(hidden.shape[0])
        n_memory = 0 if tokens is None else tokens.shape[1]
        if tokens is not None:
            hidden = torch.cat([tokens, hidden], dim=1)
        encoded = encoder(hidden)[:, n_memory:]
        self.write_memory(encoded, write_memory)
        return encoded

    def _network(self, normalised: torch.Tensor, write_memory: bool | None) -> torch.Tensor:
        raise NotImplementedError

    def _base(self, x: torch.Tensor, positions: torch.Tensor | None):
        normalised, mean, std = normalise(x)
        return normalised, self._network(normalised, None), mean, std

    def forward(
        self, x: torch.Tensor, positions: torch.Tensor | None = None, write_memory: bool | None = None
    ) -> torch.Tensor:
        """``x`` ``[B, seq_len, C]`` -> forecast ``[B, pred_len, C]`` in the input's units.

        A spectral memory is written in training mode (as published), or whenever ``write_memory`` is
        True (rebuilding a memory from data in eval mode); an analog memory is read where it was kept.
        """
        if not self.normalises:
            return self._network(x, write_memory)
        normalised, mean, std = normalise(x)
        forecast = self._network(normalised, write_memory)
        return denormalise(self.blended(normalised, forecast, positions), mean, std)


def _keep_weights_not_given(module: nn.Module, state_dict: dict, prefix: str, *_) -> None:
    for name, value in module.state_dict().items():
        state_dict.setdefault(prefix + name, value)
