"""Per-column standardisation fitted on the training rows only (TSL's protocol)."""

from __future__ import annotations

import numpy as np


class StandardScaler:
    """Population-std standardiser; fitted state lives in ``mean_`` and ``scale_`` (sklearn style).

    A constant column gets scale 1 rather than a division by zero, as scikit-learn does.
    """

    def fit(self, values: np.ndarray) -> StandardScaler:
        self.mean_ = values.mean(axis=0)
        std = values.std(axis=0, ddof=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        return self

    @classmethod
    def from_state(cls, mean: np.ndarray, scale: np.ndarray) -> StandardScaler:
        scaler = cls()
        scaler.mean_ = np.asarray(mean, dtype=np.float64)
        scaler.scale_ = np.asarray(scale, dtype=np.float64)
        return scaler

    def transform(self, values: np.ndarray) -> np.ndarray:
        return (values - self.mean_) / self.scale_

    def inverse_transform(self, values: np.ndarray, columns: slice | list[int] | None = None) -> np.ndarray:
        """Undo :meth:`transform`; ``columns`` selects the statistics when only some columns are given."""
        index = slice(None) if columns is None else columns
        return values * self.scale_[index] + self.mean_[index]
