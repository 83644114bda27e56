"""Karhunen-Loeve (K-L) decomposition of a hidden-state history, computed the cheap way.

The published method diagonalises a ``T x T`` time-axis matrix. For the empirical strategy the
same non-zero eigenvalues and the same components come out of whichever Gram matrix is smaller
(``T x T`` or ``d x d``): with ``Hc = U S V^T``, the time covariance ``Hc Hc^T / T`` has
eigenvalues ``S^2 / T`` and its components ``phi_k^T Hc`` equal ``sqrt(T lambda_k) v_k^T``.
For the kernel strategy the ``T x T`` kernel depends only on ``(T, tau, kernel)``, so its
eigenpairs are computed once and cached. Everything runs in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch

STRATEGIES = ("empirical", "kernel")
# Up to this size a CPU eigensolve runs on one thread. On the quiet 2-core machine one thread is
# within about 1 ms of two at 265 x 265 (two win at 512: 28 vs 39 ms); beside one busy process two
# threads took 2.3x longer at 265 with stalls up to 160 ms (and once 3 s). `python
# benchmarks/eigh_threads.py` measures both side by side.
SINGLE_THREAD_EIGH = 300
KERNELS = ("exp", "gauss", "matern")


def symmetric_eigh(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.linalg.eigh``, on one CPU thread for small matrices (see :data:`SINGLE_THREAD_EIGH`)."""
    if matrix.device.type != "cpu" or matrix.shape[-1] > SINGLE_THREAD_EIGH or torch.get_num_threads() == 1:
        return torch.linalg.eigh(matrix)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(matrix)
    finally:
        torch.set_num_threads(threads)


@dataclass
class Decomposition:
    """Top-K K-L eigenpairs of a history of ``T`` rows (float64, eigenvalues descending).

    ``components`` are the ``(K, d)`` rows the memory projects (sign-canonical, optionally scaled
    by ``sqrt(lambda)``); ``modes`` are the matching ``(T, K)`` temporal eigenvectors in
    chronological order, and ``total_variance`` is the trace the eigenvalues are a share of.
    """

    eigenvalues: torch.Tensor
    total_variance: float
    components: torch.Tensor
    modes: torch.Tensor


def canonical_signs(components: torch.Tensor) -> torch.Tensor:
    """+1/-1 per row so that each row's entry of largest magnitude becomes positive.

    An eigenvector's sign is arbitrary (LAPACK's choice), so without this the projection's input
    could flip sign from one step to the next for the same subspace.
    """
    largest = components.abs().argmax(dim=1, keepdim=True)
    signs = torch.sign(components.gather(1, largest)).squeeze(1)
    return torch.where(signs == 0, torch.ones_like(signs), signs)


def _finish(
    eigenvalues: torch.Tensor,
    coefficients: torch.Tensor,
    modes: torch.Tensor,
    total_variance: float,
    lambda_scaling: bool,
) -> Decomposition:
    signs = canonical_signs(coefficients)
    coefficients = coefficients * signs[:, None]
    modes = modes * signs[None, :]
    if lambda_scaling:
        coefficients = coefficients * torch.sqrt(eigenvalues.clamp(min=0) + 1e-12)[:, None]
    return Decomposition(eigenvalues, total_variance, coefficients, modes)


def empirical_decomposition(history: torch.Tensor, n_components: int, lambda_scaling: bool) -> Decomposition:
    """Empirical K-L of ``history`` ``(T, d)`` through the smaller of its two Gram matrices."""
    history = history.double()
    n_rows, width = history.shape
    centred = history - history.mean(dim=0)
    if n_rows > width:
        gram = centred.T @ centred / n_rows
        return decomposition_from_gram(gram, centred, n_components, lambda_scaling)
    values, vectors = symmetric_eigh(centred @ centred.T / n_rows)
    values, modes = values.flip(0)[:n_components], vectors.flip(1)[:, :n_components]
    total = float((centred * centred).sum() / n_rows)  # trace of the time covariance
    return _finish(values, modes.T @ centred, modes, total, lambda_scaling)


def decomposition_from_gram(
    gram: torch.Tensor,
    centred: torch.Tensor | None,
    n_components: int,
    lambda_scaling: bool,
    n_rows: int | None = None,
    eigenpairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Decomposition:
    """Components from the ``d x d`` Gram matrix ``Hc^T Hc / T`` (or its given top eigenpairs).

    ``centred`` (the ``T x d`` centred history, chronological) is only needed for the temporal
    modes; when it is None (the online path) ``modes`` is empty.
    """
    if eigenpairs is None:
        values, vectors = symmetric_eigh(gram)
        values, vectors = values.flip(0)[:n_components], vectors.flip(1)[:, :n_components]
    else:
        values, vectors = eigenpairs
    n_rows = n_rows if n_rows is not None else centred.shape[0]
    positive = values.clamp(min=0)
    coefficients = torch.sqrt(n_rows * positive)[:, None] * vectors.T
    if centred is None:
        modes = values.new_zeros((0, values.shape[0]))
    else:
        modes = centred @ vectors / torch.sqrt(n_rows * positive).clamp(min=1e-300)[None, :]
    return _finish(values, coefficients, modes, float(torch.trace(gram)), lambda_scaling)


def kernel_matrix(n_rows: int, tau: float, kernel: str) -> torch.Tensor:
    """The published ``T x T`` time kernel on the grid ``linspace(0, 1, T)`` (float64)."""
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel '{kernel}'; use one of {KERNELS}")
    grid = torch.linspace(0, 1, n_rows, dtype=torch.float64)
    distance = grid[:, None] - grid[None, :]
    tau_eff = tau / n_rows
    if kernel == "exp":
        matrix = torch.exp(-distance.abs() / (tau_eff + 1e-12))
    elif kernel == "gauss":
        matrix = torch.exp(-(distance**2) / (2 * tau_eff**2 + 1e-12))
    else:
        scaled = distance.abs() / (tau_eff + 1e-12)
        matrix = (1 + scaled) * torch.exp(-scaled)
    matrix = matrix * (tau * (1.0 / (n_rows - 1)))
    matrix = (matrix + matrix.T) / 2
    jitter = 1e-6 if n_rows > 2048 else 1e-8
    return matrix + jitter * torch.eye(n_rows, dtype=torch.float64)


@lru_cache(maxsize=64)
def kernel_eigenpairs(
    n_rows: int, tau: float, kernel: str, n_components: int
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Top eigenvalues, ``(T, K)`` eigenvectors and trace of the kernel; cached, as it ignores the data."""
    matrix = kernel_matrix(n_rows, tau, kernel)
    values, vectors = symmetric_eigh(matrix)
    return (
        values.flip(0)[:n_components].clone(),
        vectors.flip(1)[:, :n_components].contiguous(),
        float(torch.trace(matrix)),
    )


def kernel_decomposition(
    history: torch.Tensor, n_components: int, lambda_scaling: bool, tau: float, kernel: str
) -> Decomposition:
    """Kernel K-L of a chronological ``history`` ``(T, d)``: cached eigenpairs, projections ``phi^T Hc``."""
    history = history.double()
    centred = history - history.mean(dim=0)
    values, modes, trace = kernel_eigenpairs(history.shape[0], float(tau), kernel, n_components)
    modes = modes.to(history.device)
    return _finish(values.to(history.device), modes.T @ centred, modes, trace, lambda_scaling)


def top_eigenpairs(
    matrix: torch.Tensor,
    n_components: int,
    start: torch.Tensor | None,
    tolerance: float = 1e-11,
    max_iterations: int = 40,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top-K eigenpairs of a symmetric PSD matrix by warm-started subspace iteration.

    ``start`` is a ``(d, p)`` basis from the previous call (``p > K`` guard vectors speed
    convergence). One rank-two change of the matrix moves the subspace very little, so a few
    ``d x d x p`` products replace a full ``O(d^3)`` eigensolve. Falls back to ``eigh`` when
    there is no start or it does not converge. Returns values, vectors ``(d, K)`` and the new basis.
    """
    width = matrix.shape[0]
    block = min(width, n_components + 8)
    if start is not None and start.shape == (width, block):
        basis = start
        scale = float(matrix.diagonal().sum().clamp(min=1e-300))
        for _ in range(max_iterations):
            basis, _ = torch.linalg.qr(matrix @ basis)
            values, rotation = symmetric_eigh(basis.T @ matrix @ basis)
            basis = basis @ rotation.flip(1)
            values = values.flip(0)
            top = basis[:, :n_components]
            residual = matrix @ top - top * values[:n_components]
            if float(residual.norm(dim=0).max()) <= tolerance * scale:
                return values[:n_components], top, basis
    values, vectors = symmetric_eigh(matrix)
    basis = vectors.flip(1)[:, :block].contiguous()
    return values.flip(0)[:n_components], basis[:, :n_components], basis


def explained_variance(decomposition: Decomposition) -> torch.Tensor:
    """Share of the total variance (trace) carried by each of the top eigenvalues."""
    total = decomposition.total_variance
    if not math.isfinite(total) or total <= 0:
        return torch.zeros_like(decomposition.eigenvalues)
    return decomposition.eigenvalues.clamp(min=0) / total
