"""K-L analog memory: the training trajectory, compressed to its dominant K-L modes, read by similarity.

Why it exists: a look-back-96 forecaster sees four days of a series. This memory keeps every
training window it was given (instance-normalised, one row per channel) as K-L coefficients: the
input window's coefficients on the top ``key_modes`` modes are its *key*, its future's
coefficients on the top ``value_modes`` modes of the futures are its *value*. A new window's
key selects the stored windows that looked like it (softmax over squared distance divided by
``temperature``) and the read-out is the weighted mean of their futures: an analog forecast
from the whole training history, at the cost of ``K``-dimensional distances.

While training, a window must not read its own future: :meth:`read` takes each query's start
position and ignores every stored window whose span overlaps the query's (``exclude_within``).
Stored in the ``state_dict`` (a checkpoint carries the memory), and built from data, not learned.
A read depends only on the query window and the stored windows, so reads are memoised by
(position, key): each training or validation window is read once per run, not once per epoch.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

from specmem_cli.memory import kl

_CHUNK = 1024  # queries per distance block: bounds the [chunk, entries] temporaries
_MEMO_LIMIT = 2_000_000  # memoised reads kept (32 floats each); past it the memo starts over


class AnalogMemory(nn.Module):
    """Retrieval memory over K-L coefficients of (window, future) pairs.

    Args:
        input_len, horizon: lengths of the stored windows and of their futures.
        key_modes: K-L modes of the input windows kept as keys (the similarity space; at most ``input_len``).
        value_modes: K-L modes of the futures kept as values (the read-out's resolution; at most ``horizon``).
        temperature: softmax temperature on squared key distances; larger averages more analogs.
        stride: keep every ``stride``-th window start (neighbouring hourly windows are near copies).
    """

    _BUFFERS = (
        "key_basis",
        "key_eigenvalues",
        "key_total_variance",
        "value_basis",
        "value_mean",
        "keys",
        "values",
        "positions",
    )

    def __init__(
        self,
        input_len: int,
        horizon: int,
        key_modes: int = 16,
        value_modes: int = 32,
        temperature: float = 8.0,
        stride: int = 1,
    ):
        super().__init__()
        if key_modes < 1 or value_modes < 1:
            raise ValueError(f"need key_modes >= 1 and value_modes >= 1 (got {key_modes}, {value_modes})")
        if temperature <= 0 or stride < 1:
            raise ValueError(f"need temperature > 0 and stride >= 1 (got {temperature}, {stride})")
        self.input_len, self.horizon = input_len, horizon
        self.key_modes, self.value_modes = min(key_modes, input_len), min(value_modes, horizon)
        self.temperature, self.stride = temperature, stride
        self.reset()

    def reset(self) -> None:
        """Forget every stored window (the read-out becomes None)."""
        for name in self._BUFFERS:
            self.register_buffer(name, torch.zeros(0), persistent=True)
        self._memo: dict[tuple[int, bytes, int], torch.Tensor] = getattr(self, "_memo", {})  # valid per content
        self._memo_content = getattr(self, "_memo_content", None)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the buffers' sizes depend on the data the memory was built from: take the stored ones
        for name in self._BUFFERS:
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self._check_memo()

    @property
    def n_entries(self) -> int:
        return self.keys.shape[0]

    @property
    def ready(self) -> bool:
        return self.n_entries > 0

    @torch.no_grad()
    def build(self, windows: torch.Tensor, futures: torch.Tensor, positions: torch.Tensor) -> None:
        """Store ``windows`` ``[N, input_len]`` with their ``futures`` ``[N, horizon]`` and start ``positions`` ``[N]``.

        Rows are already normalised by the caller (one row per window and channel). The K-L modes
        come from :func:`kl.empirical_decomposition` (through the ``d x d`` Gram matrix); the key modes'
        eigenvalues are kept for ``specmem inspect-modes``.
        """
        keep = (positions - positions.min()) % self.stride == 0
        order = torch.argsort(positions[keep], stable=True)  # sorted: a query's overlap is one index range
        windows, futures, positions = windows[keep][order], futures[keep][order], positions[keep][order]
        key_decomposition = kl.empirical_decomposition(windows, self.key_modes, lambda_scaling=False)
        key_basis = _orthonormal(key_decomposition)
        value_basis = _orthonormal(kl.empirical_decomposition(futures, self.value_modes, lambda_scaling=False))
        value_mean = futures.double().mean(dim=0)
        self.key_basis = key_basis.float()
        self.key_eigenvalues = key_decomposition.eigenvalues.float()
        self.key_total_variance = torch.tensor([key_decomposition.total_variance])
        self.value_basis = value_basis.float()
        self.value_mean = value_mean.float()
        self.keys = (windows.double() @ key_basis).float()
        self.values = ((futures.double() - value_mean) @ value_basis).float()
        self.positions = positions.long().clone()
        self._check_memo()

    def _check_memo(self) -> None:
        """Keep the memo only if the memory holds what it held when the memo was filled (a rebuild from the
        same windows after a ``reset`` does; other data does not)."""
        content = (self.n_entries, float(self.keys.double().sum()), float(self.values.double().sum()))
        if content != self._memo_content:
            self._memo, self._memo_content = {}, content

    @torch.no_grad()
    def read(self, windows: torch.Tensor, positions: torch.Tensor | None = None, exclude_within: int = 0):
        """The analog forecast ``[n, horizon]`` for normalised ``windows`` ``[n, input_len]``, or None when empty.

        With ``positions`` and ``exclude_within > 0``, stored windows starting fewer than
        ``exclude_within`` steps from a query's start are ignored (no reading one's own future).
        """
        if not self.ready:
            return None
        queries = windows.to(self.keys.dtype) @ self.key_basis
        if positions is None:
            return self._decode(self._retrieve(queries, None, 0))
        # the key of the memo: position, key coefficients to 4 decimals (batching changes the last bits)
        rounded = torch.round(queries * 1e4).to(torch.int64).numpy()
        labels = [(int(p), row.tobytes(), exclude_within) for p, row in zip(positions.tolist(), rounded, strict=True)]
        if len(self._memo) > _MEMO_LIMIT:
            self._memo = {}
        missing = [i for i, label in enumerate(labels) if label not in self._memo]
        if missing:
            index = torch.tensor(missing)
            fresh = self._retrieve(queries[index], positions[index], exclude_within)
            for i, row in zip(missing, fresh, strict=True):
                self._memo[labels[i]] = row
        return self._decode(torch.stack([self._memo[label] for label in labels]))

    def _retrieve(self, queries: torch.Tensor, positions: torch.Tensor | None, exclude_within: int) -> torch.Tensor:
        """Softmax-weighted mean of the stored value coefficients ``[n, value_modes]``.

        ``-|q - k|^2 / T`` equals ``(2 q.k - |k|^2) / T`` up to a per-query constant the softmax ignores,
        so the scores are one matrix product. Stored positions are sorted, so each query's excluded
        entries are one contiguous range; a query that excludes every entry reads the mean future.
        """
        key_norms = self.keys.square().sum(dim=1)
        if positions is not None and exclude_within > 0:
            low = torch.searchsorted(self.positions, positions - exclude_within, right=True).tolist()
            high = torch.searchsorted(self.positions, positions + exclude_within, right=False).tolist()
        coefficients = []
        for start in range(0, queries.shape[0], _CHUNK):
            block = queries[start : start + _CHUNK]
            scores = torch.addmm(key_norms, block, self.keys.T, beta=-1.0, alpha=2.0).div_(self.temperature)
            if positions is not None and exclude_within > 0:
                for row in range(block.shape[0]):
                    scores[row, low[start + row] : high[start + row]] = float("-inf")
            weights = torch.softmax(scores, dim=1).nan_to_num_(0.0)  # nothing admissible: the mean future
            coefficients.append(weights @ self.values)
        return torch.cat(coefficients)

    def _decode(self, coefficients: torch.Tensor) -> torch.Tensor:
        return coefficients @ self.value_basis.T + self.value_mean


def _orthonormal(decomposition: kl.Decomposition) -> torch.Tensor:
    """The K-L directions ``[d, K]`` as unit columns (the components come scaled by ``sqrt(T lambda)``)."""
    return functional.normalize(decomposition.components, dim=1).T
