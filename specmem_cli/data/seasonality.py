"""Which seasonal cycle a series has, read from its training rows: a day, a week, a year, or none.

Why: a cycle-aware model needs its period in steps, and "a day" means nothing on weekly data.
The candidates come from the clock (a day, a week and a year in whole steps of the data's step)
and, where the clock offers none, from the periodogram; each candidate is scored by the share of
the variance, once the slow trend (a moving average over one period) is removed and each series
standardised, that a per-phase mean profile explains, adjusted for the profile's own degrees of
freedom (the classic seasonal strength). Longer periods nest shorter ones (a week holds seven
days), so a longer one is taken only when it leaves clearly less unexplained than the shorter one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

NATURAL_PERIODS = (pd.Timedelta(days=1), pd.Timedelta(weeks=1), pd.Timedelta(days=365.25))
MIN_CYCLES = 4  # a profile needs this many full cycles in the training rows to be estimated
MIN_EXPLAINED = 0.05  # below this adjusted share of variance there is no cycle worth modelling
NESTED_CUT = 0.25  # a longer period must leave 25% less variance unexplained than the shorter one
_ROUNDING = 0.02  # 52.18 weeks in a year counts as 52


def clock_periods(step: pd.Timedelta) -> list[int]:
    """A day, a week and a year in whole steps of ``step`` (within 2%), each at least 2 steps."""
    periods = []
    for natural in NATURAL_PERIODS:
        steps = natural / step
        whole = round(steps)
        if whole >= 2 and abs(steps - whole) <= _ROUNDING * steps and whole not in periods:
            periods.append(whole)
    return periods


def spectral_period(values: np.ndarray) -> int | None:
    """The period (in steps) of the strongest periodogram peak averaged over series, or None."""
    rows = values.shape[0]
    if rows < 8:
        return None
    centred = values - values.mean(axis=0)
    power = (np.abs(np.fft.rfft(centred, axis=0)) ** 2).mean(axis=1)
    frequencies = np.fft.rfftfreq(rows)
    usable = frequencies >= MIN_CYCLES / rows  # at least MIN_CYCLES cycles
    usable[0] = False
    if not usable.any():
        return None
    peak = frequencies[usable][np.argmax(power[usable])]
    return round(1 / peak)


def explained_share(values: np.ndarray, positions: np.ndarray, period: int) -> float:
    """Adjusted share of variance explained by a per-phase mean (one profile per series)."""
    detrended = values - _moving_average(values, period)
    standardised = (detrended - detrended.mean(axis=0)) / (detrended.std(axis=0) + 1e-12)
    phase = positions % period
    counts = np.bincount(phase, minlength=period)
    profile = np.zeros((period, values.shape[1]))
    np.add.at(profile, phase, standardised)
    profile /= np.maximum(counts, 1)[:, None]
    residual = standardised - profile[phase]
    rows = values.shape[0]
    unexplained = residual.var() * (rows - 1) / max(rows - period, 1)
    return float(1 - unexplained / max(standardised.var(), 1e-12))


def _moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` rows (edges averaged over what exists): the slow trend."""
    padded = np.vstack([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    rows = values.shape[0]
    low = np.clip(np.arange(rows) - window // 2, 0, rows)
    high = np.clip(np.arange(rows) + (window - window // 2), 0, rows)
    return (padded[high] - padded[low]) / (high - low)[:, None]


def detect_cycle(values: np.ndarray, positions: np.ndarray, step: pd.Timedelta | None) -> int:
    """The cycle length in steps for ``values`` ``[rows, series]`` at clock ``positions``; 1 means none."""
    rows = values.shape[0]
    candidates = clock_periods(step) if step is not None else []
    if not candidates:
        found = spectral_period(values)
        candidates = [found] if found else []
    candidates = sorted(p for p in candidates if 2 <= p <= rows // MIN_CYCLES)
    chosen, chosen_share = 1, 0.0
    for period in candidates:
        share = explained_share(values, positions, period)
        better = share >= MIN_EXPLAINED if chosen == 1 else 1 - share <= (1 - NESTED_CUT) * (1 - chosen_share)
        if better:
            chosen, chosen_share = period, share
    return chosen
