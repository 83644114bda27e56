"""K-L analog memory: the training trajectory, compressed to its dominant K-L modes, read by similarity.

Why it exists: a look-back-96 forecaster sees four days of a series. This memory keeps training
windows (instance-normalised, one row per window and series) as K-L coefficients: the input
window's coefficients on the top ``key_modes`` modes are its *key*, its future's coefficients on
the top ``value_modes`` modes of the futures are its *value*. A new window's key selects the
``top_k`` nearest stored keys and the read-out is the softmax-weighted mean of their futures
(weights from squared distance divided by ``temperature``): an analog forecast from the whole
training history.

Why it stays bounded: at most ``max_entries`` rows are stored (the training windows are thinned
evenly when there are more, as on data sets of hundreds of series), and a read scans the keys in
blocks, keeping a running top-k per query, so neither the time per query nor the memory of a read
grows past what ``max_entries`` and the block sizes allow, whatever the data's width.

While training, a window must not read its own future: :meth:`read` takes each query's start
position and ignores every stored window whose span overlaps the query's (``exclude_within``).
Stored in the ``state_dict`` (a checkpoint carries the memory), and built from data, not learned.
"""

from __future__ import annotations

import torch
from torch.nn import functional

from specmem_cli.memory import kl
from specmem_cli.memory.contract import ForecastMemory

QUERY_BLOCK = 128  # queries scored together (a 128 x 32,768 score block stays in cache better than 512 rows: 1.3x)
KEY_BLOCK = 65_536  # stored keys scored together: a read's temporaries are QUERY_BLOCK x KEY_BLOCK floats


class AnalogMemory(ForecastMemory):
    """Retrieval memory over K-L coefficients of (window, future) pairs.

    Args:
        input_len, horizon: lengths of the stored windows and of their futures.
        key_modes: K-L modes of the input windows kept as keys (the similarity space; at most ``input_len``).
        value_modes: K-L modes of the futures kept as values (the read-out's resolution; at most ``horizon``).
        temperature: softmax temperature on squared key distances; larger averages more analogs.
        stride: keep at least every ``stride``-th window start (neighbouring windows are near copies).
        top_k: analogs averaged per read (the nearest keys; the rest would get negligible weight).
        max_entries: most rows stored; more windows are thinned by a larger stride.
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
        key_modes: int = 32,
        value_modes: int = 32,
        temperature: float = 8.0,
        stride: int = 1,
        top_k: int = 64,
        max_entries: int = 32_768,
    ):
        super().__init__()
        if key_modes < 1 or value_modes < 1:
            raise ValueError(f"need key_modes >= 1 and value_modes >= 1 (got {key_modes}, {value_modes})")
        if temperature <= 0 or stride < 1:
            raise ValueError(f"need temperature > 0 and stride >= 1 (got {temperature}, {stride})")
        if top_k < 1 or max_entries < 1:
            raise ValueError(f"need top_k >= 1 and max_entries >= 1 (got {top_k}, {max_entries})")
        self.input_len, self.horizon = input_len, horizon
        self.key_modes, self.value_modes = min(key_modes, input_len), min(value_modes, horizon)
        self.temperature, self.stride, self.top_k, self.max_entries = temperature, stride, top_k, max_entries
        self.reset()

    def reset(self) -> None:
        """Forget every stored window (the read-out becomes None)."""
        for name in self._BUFFERS:
            self.register_buffer(name, torch.zeros(0), persistent=True)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the buffers' sizes depend on the data the memory was built from: take the stored ones
        for name in self._BUFFERS:
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name]))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ----------------------------------------------------------------- the memory contract
    changes_while_read = False  # built once from the training windows, after training

    def start_epoch(self) -> None:
        """Nothing to do: the network trains without it, and it is built after training."""

    def prepare_for_evaluation(self, policy: str) -> None:
        """``reset`` empties it; ``frozen`` keeps it as built (reading never changes it)."""
        if policy == "reset":
            self.reset()

    def resume_training(self) -> None:
        """Nothing to undo: ``frozen`` changed nothing."""

    def describe(self, policy: str) -> str:
        if self.ready:
            return f"analog: {self.n_entries} training window rows as K-L keys ({self.key_modes} modes)"
        if policy == "reset":
            return "reset: empty, so the forecasts are the network's own"
        return "dropped: reading it did not lower the validation error, so the forecasts are the network's own"

    @property
    def n_entries(self) -> int:
        return self.keys.shape[0]

    @property
    def ready(self) -> bool:
        return self.n_entries > 0

    def starts_to_store(self, n_starts: int, rows_per_start: int) -> torch.Tensor:
        """Indices of the window starts to store: every ``stride``-th, thinned further so that
        ``rows_per_start`` rows each (one per series) stay within ``max_entries``."""
        stride = max(self.stride, -(-n_starts * rows_per_start // self.max_entries))
        return torch.arange(0, n_starts, stride)

    @torch.no_grad()
    def build(self, windows: torch.Tensor, futures: torch.Tensor, positions: torch.Tensor) -> None:
        """Store ``windows`` ``[N, input_len]`` with their ``futures`` ``[N, horizon]`` and start ``positions`` ``[N]``.

        Rows are already normalised and thinned by the caller (see :meth:`starts_to_store`). The K-L
        modes come from :func:`kl.empirical_decomposition` (through the ``d x d`` Gram matrix); the key
        modes' eigenvalues are kept for ``specmem inspect-modes``.
        """
        if windows.shape[0] > self.max_entries:
            raise ValueError(f"{windows.shape[0]} rows exceed max_entries={self.max_entries}; thin them first")
        order = torch.argsort(positions, stable=True)  # sorted: a query's overlap is one index range
        windows, futures, positions = windows[order], futures[order], positions[order]
        key_decomposition = kl.empirical_decomposition(windows, self.key_modes, lambda_scaling=False)
        key_basis = _orthonormal(key_decomposition)
        value_basis = _orthonormal(kl.empirical_decomposition(futures, self.value_modes, lambda_scaling=False))
        value_mean = futures.double().mean(dim=0)
        self.key_basis = key_basis.float()
        self.key_eigenvalues = key_decomposition.eigenvalues.float()
        self.key_total_variance = torch.tensor([key_decomposition.total_variance], device=windows.device)
        self.value_basis = value_basis.float()
        self.value_mean = value_mean.float()
        self.keys = (windows.double() @ key_basis).float()
        self.values = ((futures.double() - value_mean) @ value_basis).float()
        self.positions = positions.long().clone()

    @torch.no_grad()
    def read(self, windows: torch.Tensor, positions: torch.Tensor | None = None, exclude_within: int = 0):
        """The analog forecast ``[n, horizon]`` for normalised ``windows`` ``[n, input_len]``, or None when empty.

        With ``positions`` and ``exclude_within > 0``, stored windows starting fewer than
        ``exclude_within`` steps from a query's start are ignored (no reading one's own future).
        A query that excludes every entry reads the mean future.
        """
        if not self.ready:
            return None
        queries = windows.to(self.keys.dtype) @ self.key_basis
        if positions is None or exclude_within <= 0:
            positions, exclude_within = None, 0
        # written in place: a list of small per-block results kept alive between the large score
        # blocks would split the freed score buffers, and a heap that is not trimmed (see
        # training/allocator.py) would grow by a score block per query block
        coefficients = queries.new_empty(queries.shape[0], self.values.shape[1])
        for start in range(0, queries.shape[0], QUERY_BLOCK):
            block_positions = None if positions is None else positions[start : start + QUERY_BLOCK]
            scores, index = self.nearest(queries[start : start + QUERY_BLOCK], block_positions, exclude_within)
            weights = torch.softmax(scores, dim=1).nan_to_num_(0.0)  # nothing admissible: the mean future
            coefficients[start : start + QUERY_BLOCK] = torch.einsum("qk,qkv->qv", weights, self.values[index])
        return coefficients @ self.value_basis.T + self.value_mean

    def nearest(
        self, queries: torch.Tensor, positions: torch.Tensor | None, exclude_within: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``-|q - k|^2 / T`` of each query's ``top_k`` admissible keys and their indices ``[q, k]``.

        ``-|q - k|^2`` equals ``2 q.k - |k|^2`` up to a per-query constant the softmax ignores, so a
        block's scores are one matrix product; each block's top-k is merged into the running top-k.
        """
        best_scores = queries.new_empty(queries.shape[0], 0)
        best_index = torch.empty(queries.shape[0], 0, dtype=torch.long, device=queries.device)
        for start in range(0, self.n_entries, KEY_BLOCK):
            keys = self.keys[start : start + KEY_BLOCK]
            scores = torch.addmm(keys.square().sum(dim=1), queries, keys.T, beta=-1.0, alpha=2.0).div_(self.temperature)
            stored = self.positions[start : start + KEY_BLOCK]
            if positions is not None and _may_overlap(positions, stored, exclude_within):
                for row, (first, end) in enumerate(_overlap_ranges(positions, stored, exclude_within)):
                    scores[row, first:end] = float("-inf")
            block_scores, block_index = scores.topk(min(self.top_k, scores.shape[1]), dim=1)
            merged_scores = torch.cat([best_scores, block_scores], dim=1)
            merged_index = torch.cat([best_index, block_index + start], dim=1)
            best_scores, pick = merged_scores.topk(min(self.top_k, merged_scores.shape[1]), dim=1)
            best_index = merged_index.gather(1, pick)
        return best_scores, best_index


def _overlap_ranges(positions: torch.Tensor, stored: torch.Tensor, exclude_within: int) -> list[tuple[int, int]]:
    """Per query, the index range ``[first, end)`` of the sorted ``stored`` starts within ``exclude_within``
    steps of its start (``|stored - position| < exclude_within``), found by binary search.

    Why ranges: ``stored`` is sorted, so each query's overlap is one slice, and filling slices touches
    only the excluded scores, where a full ``[q, k]`` mask cost three passes over the score block
    (about an eighth of the analog memory's calibration on weather)."""
    first = torch.searchsorted(stored, positions - exclude_within, right=True)
    end = torch.searchsorted(stored, positions + exclude_within)
    return list(zip(first.tolist(), end.tolist(), strict=True))


def _may_overlap(positions: torch.Tensor, stored: torch.Tensor, exclude_within: int) -> bool:
    """Whether any query span can overlap the sorted ``stored`` starts (never for a test split after training)."""
    return bool(positions.min() - exclude_within < stored[-1]) and bool(positions.max() + exclude_within > stored[0])


def _orthonormal(decomposition: kl.Decomposition) -> torch.Tensor:
    """The K-L directions ``[d, K]`` as unit columns (the components come scaled by ``sqrt(T lambda)``)."""
    return functional.normalize(decomposition.components, dim=1).T
