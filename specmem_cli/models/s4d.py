"""A small diagonal state-space forecaster (S4D, Gu et al., 2022), our own implementation.

Each channel of the hidden state runs ``N/2`` complex diagonal linear recurrences
``s' = A s + B u``, discretised with a learned step and applied as one long causal convolution
whose kernel is computed in closed form (a Vandermonde product), so a whole window costs one FFT.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from specmem_cli.models.memory_backbone import MemoryOptions
from specmem_cli.models.residual import ResidualMixerForecaster


class S4DLayer(nn.Module):
    """Diagonal SSM with S4D-Lin initialisation (``A_n = -1/2 + i pi n``) over ``[B, d, L]``."""

    def __init__(self, d_model: int, state_size: int = 32, dt_min: float = 1e-3, dt_max: float = 1e-1):
        super().__init__()
        half = state_size // 2
        self.log_dt = nn.Parameter(torch.rand(d_model) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.log_a_real = nn.Parameter(torch.log(0.5 * torch.ones(d_model, half)))
        self.a_imag = nn.Parameter(math.pi * torch.arange(half, dtype=torch.float32).repeat(d_model, 1))
        self.c = nn.Parameter(torch.view_as_real(torch.randn(d_model, half, dtype=torch.cfloat) * math.sqrt(0.5)))
        self.skip = nn.Parameter(torch.randn(d_model))

    def kernel(self, length: int) -> torch.Tensor:
        dt = torch.exp(self.log_dt)[:, None]
        a = -torch.exp(self.log_a_real) + 1j * self.a_imag  # [d, N/2]
        dta = a * dt
        c = torch.view_as_complex(self.c) * (torch.exp(dta) - 1.0) / a
        powers = torch.exp(dta[..., None] * torch.arange(length, device=a.device))  # [d, N/2, L]
        return 2 * torch.einsum("dn,dnl->dl", c, powers).real

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        length = u.shape[-1]
        kernel = self.kernel(length)
        y = torch.fft.irfft(torch.fft.rfft(u, n=2 * length) * torch.fft.rfft(kernel, n=2 * length), n=2 * length)
        return y[..., :length] + u * self.skip[:, None]


class S4DForecaster(ResidualMixerForecaster):
    """Residual S4D blocks over each channel's embedded points, flatten head.

    Args: ``d_model``, ``state_size``, ``e_layers``, ``dropout`` and ``memory_options``
    (:class:`~specmem_cli.models.memory_backbone.MemoryOptions`; a spectral memory conditions every step,
    an analog memory is blended in after training).
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        d_model: int = 32,
        state_size: int = 32,
        e_layers: int = 2,
        dropout: float = 0.1,
        memory_options: MemoryOptions | None = None,
    ):
        super().__init__()
        mixers = [S4DLayer(d_model, state_size) for _ in range(e_layers)]
        self.build(seq_len, pred_len, d_model, mixers, dropout, memory_options)
