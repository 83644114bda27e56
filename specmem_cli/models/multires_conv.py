"""MultiresConv: a wavelet-tree sequence layer (Shi et al., 2023), as a causal convolution (a layer of the
``multires`` forecaster, not a memory that the trainer manages).

Learnable low-pass ``h0`` and high-pass ``h1`` filters (one pair per channel) are applied again and
again with dilations 1, 2, 4, ... (an undecimated wavelet transform): level ``j`` holds detail
coefficients of the history at scale ``2^j``, and the last level's approximation summarises all of
it. A learned selection of those coefficients is the layer's output:

- ``fading``: at each step, the newest coefficient of every level - fine detail for the recent
  past, coarser and coarser summaries further back (resolution fades with age);
- ``uniform``: the deepest level's coefficients at evenly spaced past steps ``t, t - 2^J, ...`` -
  one resolution across the whole window.

Everything is causal: left padding only, so an output never depends on later inputs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

SELECTIONS = ("fading", "uniform")
_SQRT3 = math.sqrt(3.0)
# Decomposition filters (low, high) in the usual convolution convention, for the built-in wavelets.
WAVELETS = {
    "haar": ([1 / math.sqrt(2), 1 / math.sqrt(2)], [-1 / math.sqrt(2), 1 / math.sqrt(2)]),
    "db2": (
        [
            (1 - _SQRT3) / (4 * math.sqrt(2)),
            (3 - _SQRT3) / (4 * math.sqrt(2)),
            (3 + _SQRT3) / (4 * math.sqrt(2)),
            (1 + _SQRT3) / (4 * math.sqrt(2)),
        ],
        [
            -(1 + _SQRT3) / (4 * math.sqrt(2)),
            (3 + _SQRT3) / (4 * math.sqrt(2)),
            -(3 - _SQRT3) / (4 * math.sqrt(2)),
            (1 - _SQRT3) / (4 * math.sqrt(2)),
        ],
    ),
}


def wavelet_filters(name: str) -> tuple[list[float], list[float]]:
    """Decomposition (low, high) filters of a named wavelet: built in for haar/db2, else from pywavelets."""
    if name in WAVELETS:
        return WAVELETS[name]
    try:
        import pywt
    except ImportError:
        raise ValueError(
            f"wavelet '{name}' needs pywavelets (pip install PyWavelets); built in: {sorted(WAVELETS)}"
        ) from None
    wavelet = pywt.Wavelet(name)
    return list(wavelet.dec_lo), list(wavelet.dec_hi)


def tree_depth(seq_len: int, kernel_size: int) -> int:
    """Levels needed for the coarsest coefficient to see the whole window: ``1 + (k-1)(2^J - 1) >= L``."""
    if kernel_size < 2:
        raise ValueError("kernel_size must be at least 2")
    return max(1, math.ceil(math.log2((seq_len - 1) / (kernel_size - 1) + 1)))


class MultiresConv(nn.Module):
    """Depthwise multiresolution convolution over ``[B, channels, L]``.

    Args:
        channels: independent series (each has its own filters and selection weights).
        seq_len: the length the tree must cover (sets the depth, :func:`tree_depth`).
        kernel_size: filter length (ignored when ``wavelet`` fixes it).
        selection: ``fading`` or ``uniform`` (see module docstring).
        wavelet: initialise the filters from a named wavelet (``haar``, ``db2``, ...); random otherwise.
    """

    def __init__(
        self, channels: int, seq_len: int, kernel_size: int = 2, selection: str = "fading", wavelet: str | None = None
    ):
        super().__init__()
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, got '{selection}'")
        if wavelet is not None:
            low, high = wavelet_filters(wavelet)
            kernel_size = len(low)
            # conv1d cross-correlates, so the convolution filters are stored reversed.
            low_pass = torch.tensor(low[::-1]).repeat(channels, 1, 1)
            high_pass = torch.tensor(high[::-1]).repeat(channels, 1, 1)
        else:
            scale = 1.0 / math.sqrt(kernel_size)
            low_pass = torch.randn(channels, 1, kernel_size) * scale
            high_pass = torch.randn(channels, 1, kernel_size) * scale
        self.kernel_size, self.selection = kernel_size, selection
        self.depth = tree_depth(seq_len, kernel_size)
        self.low_pass = nn.Parameter(low_pass)
        self.high_pass = nn.Parameter(high_pass)
        n_terms = self.depth + 2 if selection == "fading" else 2 * math.ceil(seq_len / 2**self.depth) + 1
        self.weights = nn.Parameter(torch.randn(channels, n_terms) / math.sqrt(n_terms))

    def decompose(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """Undecimated, causal transform of ``x`` ``[B, C, L]``: details per level (finest first) and the last approximation."""
        details, approximation = [], x
        for level in range(self.depth):
            dilation = 2**level
            padded = F.pad(approximation, (dilation * (self.kernel_size - 1), 0))
            details.append(F.conv1d(padded, self.high_pass, dilation=dilation, groups=x.shape[1]))
            approximation = F.conv1d(padded, self.low_pass, dilation=dilation, groups=x.shape[1])
        return details, approximation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The tree's output as one causal depthwise convolution with its impulse response.

        Every step of the tree (dilated filters, left padding, shifts, the weighted selection) is linear,
        causal and shift-invariant, so the whole layer is the convolution with its response to a unit
        impulse. One ``[L, L]`` Toeplitz product per channel replaces ``2 x depth`` dilated depthwise
        convolutions, whose CPU backward dominated a multires training step (the tree is about 20x slower:
        ``benchmarks/multires_layer.py``).
        """
        length = x.shape[-1]
        kernel = self.impulse_response(length)  # [C, L]: kernel[c, k] weighs the input k steps back
        lags = torch.arange(length, device=x.device)
        lags = lags[:, None] - lags[None, :]  # [t, s] -> t - s
        toeplitz = kernel[:, lags.clamp(min=0)] * (lags >= 0)  # [C, t, s], zero where s is after t
        return torch.matmul(x.transpose(0, 1), toeplitz.transpose(1, 2)).transpose(0, 1)

    def impulse_response(self, length: int) -> torch.Tensor:
        """The layer's kernel ``[channels, length]``: the tree (:meth:`transform`) applied to a unit impulse."""
        impulse = torch.zeros(1, self.low_pass.shape[0], length, dtype=self.low_pass.dtype, device=self.low_pass.device)
        impulse[..., 0] = 1.0
        return self.transform(impulse)[0]

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The tree itself, step by step: the definition :meth:`forward` computes in one product."""
        details, approximation = self.decompose(x)
        w = self.weights[None, :, :, None]  # [1, C, terms, 1]
        if self.selection == "fading":
            terms = torch.stack([approximation, *details[::-1], x], dim=2)  # coarse to fine, then the input itself
            return (terms * w).sum(dim=2)
        stride = 2**self.depth
        n_taps = (self.weights.shape[1] - 1) // 2
        coarse_detail = details[-1]
        taps = []
        for tap in range(n_taps):  # coefficients at t, t - 2^J, t - 2 * 2^J, ... (zeros before the start)
            shift = tap * stride
            taps += [
                F.pad(approximation, (shift, 0))[..., : x.shape[-1]],
                F.pad(coarse_detail, (shift, 0))[..., : x.shape[-1]],
            ]
        terms = torch.stack([*taps, x], dim=2)
        return (terms * w).sum(dim=2)
