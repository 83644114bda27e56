"""The published ``T x T`` formulation of the K-L step, written plainly.

The baseline ``benchmarks/memory.py`` times and the oracle the tests compare :mod:`specmem_cli.memory.kl`
against (pytest finds it through ``pythonpath`` in pyproject.toml); not part of the installed package.
"""

from __future__ import annotations

import torch

from specmem_cli.memory.kl import canonical_signs, kernel_matrix


def textbook_components(
    history: torch.Tensor,
    n_components: int,
    lambda_scaling: bool,
    strategy: str = "empirical",
    tau: float = 64.0,
    kernel: str = "exp",
) -> torch.Tensor:
    """``(K, d)`` components: eigenpairs of the ``T x T`` matrix, then ``phi_k^T Hc``."""
    history = history.double()
    n_rows = history.shape[0]
    centred = history - history.mean(dim=0)
    matrix = centred @ centred.T / n_rows if strategy == "empirical" else kernel_matrix(n_rows, tau, kernel)
    values, vectors = torch.linalg.eigh(matrix)
    values, vectors = values.flip(0)[:n_components], vectors.flip(1)[:, :n_components]
    components = vectors.T @ centred
    if lambda_scaling:
        components = components * torch.sqrt(values.clamp(min=0) + 1e-12)[:, None]
    return components * canonical_signs(components)[:, None]
