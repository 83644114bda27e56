"""A built-in synthetic data set, so `specmem train` and the fast tests need no download.

Seven hourly channels mixing daily and weekly cycles, a slow trend, cross-channel coupling and
AR(1) noise: enough structure that a forecaster has something to learn and a spectral memory has
modes to find, deterministic from a seed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from specmem_cli.data.table import SeriesTable

SYNTHETIC_NAME = "synthetic"
SYNTHETIC_COLUMNS = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]


def synthetic_table(n_rows: int = 3000, seed: int = 0) -> SeriesTable:
    """The synthetic series as a validated table (same shape as ETTh1: date + 7 channels)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(n_rows, dtype=np.float64)
    n_channels = len(SYNTHETIC_COLUMNS)
    daily = np.sin(2 * np.pi * hours[:, None] / 24 + rng.uniform(0, 2 * np.pi, n_channels))
    weekly = np.sin(2 * np.pi * hours[:, None] / 168 + rng.uniform(0, 2 * np.pi, n_channels))
    trend = np.outer(hours / n_rows, rng.normal(0, 1.5, n_channels))
    noise = np.zeros((n_rows, n_channels))
    shocks = rng.normal(0, 0.3, (n_rows, n_channels))
    for t in range(1, n_rows):
        noise[t] = 0.8 * noise[t - 1] + shocks[t]
    mix = np.eye(n_channels) + 0.2 * rng.normal(0, 1, (n_channels, n_channels))
    base = (rng.uniform(0.5, 2.0, n_channels) * daily + rng.uniform(0.2, 1.0, n_channels) * weekly) @ mix
    values = base + trend + noise + rng.normal(5, 2, n_channels)
    dates = pd.date_range("2020-01-01", periods=n_rows, freq="h")
    return SeriesTable(pd.DatetimeIndex(dates), values, list(SYNTHETIC_COLUMNS), "date", SYNTHETIC_NAME)
