"""SpectralMemory: K-L compression of a hidden-state history into learned memory tokens.

Any backbone can use it: write pooled summaries of its hidden states with :meth:`write`, read
``(M, d_model)`` tokens with ``memory()`` and inject them however suits the architecture
(prefix tokens, initial state, conditioning vector).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

from specmem_cli.memory import kl
from specmem_cli.memory.contract import ForecastMemory

PROJECTIONS = ("dense", "bottleneck")
UPDATES = ("batch", "online")


class SpectralMemory(ForecastMemory):
    """History of at most ``memory_depth`` rows -> top ``n_components`` K-L components -> tokens.

    Args:
        d_model: width of the rows written and of the tokens returned.
        memory_depth: rows kept; the oldest row is evicted first (a ring buffer).
        n_components: K, the number of K-L components kept.
        memory_tokens: M, the number of tokens produced.
        strategy: ``empirical`` (time-axis covariance of the history) or ``kernel`` (a fixed time
            kernel's eigenfunctions applied to the history).
        kernel, tau: the kernel strategy's kernel (``exp``, ``gauss``, ``matern``) and length scale.
        lambda_scaling: scale each component by ``sqrt(lambda_k)`` (the published v4 does).
        projection: ``dense`` (``K*d -> 2*K*d -> GELU -> Dropout -> M*d``, published v4) or
            ``bottleneck`` (``K*d -> bottleneck_width -> GELU -> Dropout -> M*d``, published v1-v3).
        update: ``batch`` recomputes the decomposition from the history; ``online`` (empirical
            only) keeps a running mean and Gram matrix so an append plus components costs the
            same whatever the depth.

    Rows are stored detached, so the components never carry gradient (the published
    ``detach_kl=True``); only the projection and its LayerNorm learn. With fewer than
    ``max(4, n_components)`` rows the tokens are zeros, as published.
    """

    def __init__(
        self,
        d_model: int,
        memory_depth: int = 3000,
        n_components: int = 16,
        memory_tokens: int = 1,
        strategy: str = "empirical",
        kernel: str = "exp",
        tau: float = 64.0,
        lambda_scaling: bool = True,
        projection: str = "dense",
        bottleneck_width: int = 64,
        dropout: float = 0.1,
        update: str = "batch",
    ):
        super().__init__()
        if strategy not in kl.STRATEGIES:
            raise ValueError(f"strategy must be one of {kl.STRATEGIES}, got '{strategy}'")
        if kernel not in kl.KERNELS:
            raise ValueError(f"kernel must be one of {kl.KERNELS}, got '{kernel}'")
        if projection not in PROJECTIONS:
            raise ValueError(f"projection must be one of {PROJECTIONS}, got '{projection}'")
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got '{update}'")
        if update == "online" and strategy != "empirical":
            raise ValueError(
                "update='online' applies to the empirical strategy (the kernel strategy is already cached)"
            )
        if min(d_model, memory_depth, n_components, memory_tokens) < 1:
            raise ValueError("d_model, memory_depth, n_components and memory_tokens must be positive")
        self.d_model, self.memory_depth = d_model, memory_depth
        self.n_components, self.memory_tokens = n_components, memory_tokens
        self.strategy, self.kernel, self.tau = strategy, kernel, float(tau)
        self.lambda_scaling, self.update = lambda_scaling, update
        hidden = 2 * n_components * d_model if projection == "dense" else bottleneck_width
        self.projection_mlp = nn.Sequential(
            nn.Linear(n_components * d_model, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, memory_tokens * d_model),
        )
        self.norm = nn.LayerNorm(d_model)
        self.register_buffer("history", torch.zeros(memory_depth, d_model))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("head", torch.zeros((), dtype=torch.long))
        self.register_buffer("frozen_tokens", torch.zeros(memory_tokens, d_model))
        self.register_buffer("is_frozen", torch.zeros((), dtype=torch.bool))
        if update == "online":
            self.register_buffer("running_sum", torch.zeros(d_model, dtype=torch.float64))
            self.register_buffer("running_gram", torch.zeros(d_model, d_model, dtype=torch.float64))
            self.register_buffer("writes_since_refresh", torch.zeros((), dtype=torch.long))
        self._basis: torch.Tensor | None = None  # warm start for the online eigensolver

    # ----------------------------------------------------------------- state
    @property
    def min_rows(self) -> int:
        return max(4, self.n_components)

    @property
    def n_rows(self) -> int:
        return int(self.filled)

    @property
    def ready(self) -> bool:
        """Whether enough history exists for non-zero tokens."""
        return self.n_rows >= self.min_rows

    def ordered_history(self) -> torch.Tensor:
        """The stored rows, oldest first, ``(T, d_model)``."""
        if self.n_rows < self.memory_depth:
            return self.history[: self.n_rows]
        return torch.roll(self.history, -int(self.head), dims=0)

    @torch.no_grad()
    def write(self, rows: torch.Tensor) -> None:
        """Append ``rows`` (``(d_model,)`` or ``(n, d_model)``) oldest first; evicts beyond ``memory_depth``.

        Frozen memory ignores writes, so frozen tokens stay exactly what they were.
        """
        if bool(self.is_frozen):
            return
        rows = rows.detach().reshape(-1, self.d_model).to(self.history)
        for row in rows:
            slot = int(self.head)
            if self.update == "online":
                evicted = self.history[slot] if self.n_rows == self.memory_depth else None
                self._update_statistics(row, evicted)
            self.history[slot] = row
            self.head.fill_((slot + 1) % self.memory_depth)
            self.filled.fill_(min(self.n_rows + 1, self.memory_depth))
            if self.update == "online" and int(self.writes_since_refresh) >= self.memory_depth:
                self._refresh_statistics()

    def _update_statistics(self, row: torch.Tensor, evicted: torch.Tensor | None) -> None:
        added = row.double()
        self.running_sum += added
        self.running_gram += torch.outer(added, added)
        if evicted is not None:
            removed = evicted.double()
            self.running_sum -= removed
            self.running_gram -= torch.outer(removed, removed)
        self.writes_since_refresh += 1

    def _refresh_statistics(self) -> None:
        """Recompute the running sums exactly (amortised O(d^2) per write) so rounding never drifts."""
        rows = self.ordered_history().double()
        self.running_sum.copy_(rows.sum(dim=0))
        self.running_gram.copy_(rows.T @ rows)
        self.writes_since_refresh.zero_()

    @torch.no_grad()
    def reset(self) -> None:
        """Forget everything: empty history, zero statistics, not frozen."""
        for buffer in self.buffers(recurse=False):
            buffer.zero_()
        self._basis = None

    def _load_from_state_dict(self, *args, **kwargs):
        self._basis = None  # a restored history invalidates the solver's warm start
        super()._load_from_state_dict(*args, **kwargs)

    # ----------------------------------------------------------------- decomposition
    @torch.no_grad()
    def decompose(self) -> kl.Decomposition | None:
        """Top-K K-L decomposition of the current history (float64, CPU when the device lacks float64)."""
        if not self.ready:
            return None
        device = self.history.device
        compute_device = torch.device("cpu") if device.type == "mps" else device
        if self.update == "online":
            return self._online_decomposition(compute_device)
        rows = self.ordered_history().to(compute_device)
        if self.strategy == "empirical":
            return kl.empirical_decomposition(rows, self.n_components, self.lambda_scaling)
        return kl.kernel_decomposition(rows, self.n_components, self.lambda_scaling, self.tau, self.kernel)

    def _online_decomposition(self, device: torch.device) -> kl.Decomposition:
        n_rows = self.n_rows
        mean = self.running_sum.to(device) / n_rows
        gram = self.running_gram.to(device) / n_rows - torch.outer(mean, mean)
        values, vectors, self._basis = kl.top_eigenpairs(gram, self.n_components, self._basis)
        return kl.decomposition_from_gram(
            gram, None, self.n_components, self.lambda_scaling, n_rows=n_rows, eigenpairs=(values, vectors)
        )

    def spectrum(self) -> kl.Decomposition | None:
        """The decomposition with temporal modes, for inspection (never the ``T x T`` problem when T > d)."""
        if not self.ready:
            return None
        if self.update == "online":
            rows = self.ordered_history()
            return kl.empirical_decomposition(rows, self.n_components, self.lambda_scaling)
        return self.decompose()

    # ----------------------------------------------------------------- tokens
    def forward(self, batch_size: int | None = None) -> torch.Tensor:
        """Memory tokens ``(M, d_model)``, or ``(batch_size, M, d_model)`` broadcast over a batch."""
        tokens = self.frozen_tokens if bool(self.is_frozen) else self._tokens()
        return tokens if batch_size is None else tokens.unsqueeze(0).expand(batch_size, -1, -1)

    def _tokens(self) -> torch.Tensor:
        weight = self.projection_mlp[0].weight
        decomposition = self.decompose()
        if decomposition is None:
            return weight.new_zeros(self.memory_tokens, self.d_model)
        flat = decomposition.components.reshape(-1).to(device=weight.device, dtype=weight.dtype)
        projected = self.projection_mlp(flat).view(self.memory_tokens, self.d_model)
        return self.norm(projected)

    @torch.no_grad()
    def snapshot(self) -> torch.Tensor:
        """The current tokens, detached, as evaluation would see them (dropout off)."""
        with _eval_mode(self):
            return self._tokens().detach().clone()

    @torch.no_grad()
    def freeze(self) -> None:
        """Fix the current tokens: later reads return them and writes are ignored, until :meth:`unfreeze`."""
        self.frozen_tokens.copy_(self.snapshot())
        self.is_frozen.fill_(True)

    def unfreeze(self) -> None:
        self.is_frozen.fill_(False)

    # ----------------------------------------------------------------- the memory contract
    changes_while_read = True  # every training-mode forward pass writes a row

    def start_epoch(self) -> None:
        """The published loop empties the memory at the start of every epoch."""
        self.reset()

    def prepare_for_evaluation(self, policy: str) -> None:
        if policy == "reset":
            self.reset()
        else:
            self.freeze()

    def resume_training(self) -> None:
        self.unfreeze()

    def describe(self, policy: str) -> str:
        if bool(self.is_frozen):
            return f"frozen: tokens fixed from {self.n_rows} history rows at the end of training"
        if not self.ready:
            return f"{policy}: empty, so the memory tokens are zero (as in the published evaluation)"
        return f"{policy}: {self.n_rows} history rows"


@contextmanager
def _eval_mode(module: nn.Module):
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)
