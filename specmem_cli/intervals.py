"""Forecast intervals: split-conformal quantiles, calibrated on the validation windows and kept in the checkpoint.

One recipe for every model, so that comparing two models' interval scores compares their forecasts and not
two interval methods. A validation window's residual (actual minus point forecast, scaled units) is divided
by a *scale*: its input's spread (each output series' standard deviation over the look-back the model
read) shrunk toward that series' mean spread, ``(1 - a) * spread + a * mean``. Calm inputs then get
narrower intervals and turbulent ones wider. How far to trust the input's spread (``a``, from
:data:`SHRINKS`) is chosen per run on validation alone: calibrated on the first 70% of the validation
windows, scored by pinball loss on the last 30% (after a gap of one horizon, so no target overlaps).
On ETT the spread helps (their validation months are more volatile than what follows); on weather's
near-flat rain series, trusting it fully would give intervals too narrow.

Per horizon step and per series (pooled over series when there are fewer than
:data:`MIN_WINDOWS_PER_SERIES` windows), the empirical quantiles of those normalised residuals are kept
on a fixed grid of levels (:data:`LEVEL_GRID`); a requested level is interpolated on that grid, so any
level can be asked for later without the training data. Each grid level is widened by the split-conformal
finite-sample factor ``(n + 1) / n`` about the median. Wide, long horizons keep the table at a subset of
steps (at most :data:`STORED_VALUES` numbers) and interpolate between them.

Validation months need not look like the months that follow them (ETTh1's and ETTm1's test months are calmer,
so the validation quantiles cover 86-88% of them instead of 80%). Wherever forecasts are scored as
their actuals arrive (the test split, ``forecast --rolling`` backtests), :class:`LevelTracker` therefore
moves the levels the table is read at, by adaptive conformal inference: the 0.1 and 0.9 levels follow
the share of actuals that fell below them, once a forecast's whole horizon is known (the median stays).
Where the test split was scored, the levels it ended with are kept for forecasts from the end of a file that
reaches past the test split's last actual (an earlier end reads the validation levels: no look-ahead).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace

import numpy as np
import torch

from specmem_cli.errors import SpecmemError

LEVEL_GRID = np.concatenate([[0.001, 0.0025], np.linspace(0.005, 0.995, 199), [0.9975, 0.999]])
MIN_WINDOWS_PER_SERIES = 100  # below this, one series' quantiles at 1% resolution would be mostly noise
STORED_VALUES = 2**22  # 16 MiB of float32: the table's size cap (steps are thinned beyond it)
SHRINKS = (0.1, 0.3, 0.6, 1.0)  # candidate weights of the mean spread in the scale (1.0: plain residual quantiles)
FALLBACK_SHRINK = 0.3  # too few validation windows to choose: the middle of the candidates
SELECTION_LEVELS = np.linspace(0.05, 0.95, 19)  # the pinball loss that picks the shrink averages these
DEFAULT_LEVELS = (0.1, 0.5, 0.9)  # what `train` reports: the median and the 80% central interval
TRACKED_LEVELS = (0.1, 0.9)  # the levels :class:`LevelTracker` follows; others move with them (:func:`adapted_levels`)
# How fast the tracked levels move: over a stretch as long as the validation split the run was calibrated on, a
# level moves by up to ADAPT_SPAN times its miscoverage. Tied to the calibration's own length rather than to rows,
# so a file with four times the rows per day (ETTm1 against ETTh1) adapts at the same pace in time. A forecast's
# outcome arrives a horizon late, and a level keeps moving on older outcomes meanwhile: over one horizon it moves by
# at most DELAY_GAIN times its miscoverage, or it would overshoot and swing (integral control with a delay).
ADAPT_SPAN = 6.0
DELAY_GAIN = 0.5
MAX_ADAPT_RATE = 0.01  # a file with a handful of validation windows


class IntervalError(SpecmemError):
    """Quantile levels that cannot be given, or a run that has no interval calibration."""


def input_spread(inputs: torch.Tensor, n_outputs: int) -> torch.Tensor:
    """Each window's output-series standard deviation over its look-back ``[B, C_out]`` (scaled units)."""
    return inputs[:, :, -n_outputs:].double().std(dim=1, unbiased=False)


def stored_steps(pred_len: int, n_series: int) -> np.ndarray:
    """The horizon steps the table keeps: all of them unless that would exceed :data:`STORED_VALUES`."""
    count = min(pred_len, max(2, STORED_VALUES // (len(LEVEL_GRID) * n_series)))
    return np.unique(np.round(np.linspace(0, pred_len - 1, count)).astype(np.int64))


@dataclass(frozen=True)
class IntervalCalibration:
    """Quantiles of validation residuals in units of the window's scale, per grid level, stored step and series."""

    steps: np.ndarray  # [K] 0-based horizon steps the table holds
    table: np.ndarray  # [len(LEVEL_GRID), K, C] float32
    mean_spread: np.ndarray  # [C] each series' mean input spread over the validation windows
    shrink: float  # the weight of the mean spread in a window's scale
    windows: int  # validation windows it was calibrated on
    pooled: bool  # series shared one set of quantiles (too few windows per series)
    pred_len: int
    adapted: tuple[float, float] | None = None  # the tracked levels where scoring the test split left them
    adapted_through: int | None = None  # the time (ns) of the last test actual they used

    def with_adapted(self, tracked: np.ndarray, through: int) -> IntervalCalibration:
        return replace(self, adapted=(float(tracked[0]), float(tracked[1])), adapted_through=int(through))

    def levels_from_end(self, last_time: int) -> tuple[float, float] | None:
        """The adapted levels for a forecast from an input ending at ``last_time`` (ns), or None (the validation
        levels) where the input ends before the last actual they were adapted on."""
        if self.adapted is None or self.adapted_through is None or last_time < self.adapted_through:
            return None
        return self.adapted

    def read_levels(self, levels: np.ndarray, tracked) -> np.ndarray:
        """Where the table is read for ``levels`` then for the two tracked levels themselves, kept within what
        the validation windows can resolve."""
        low, high = self.resolution()
        return np.clip(
            np.concatenate([adapted_levels(levels, tracked), np.asarray(tracked, dtype=np.float64)]), low, high
        )

    def to_state(self) -> dict:
        return {
            "levels": torch.from_numpy(LEVEL_GRID.copy()),
            "steps": torch.from_numpy(self.steps),
            "table": torch.from_numpy(self.table),
            "mean_spread": torch.from_numpy(self.mean_spread),
            "shrink": self.shrink,
            "windows": self.windows,
            "pooled": self.pooled,
            "pred_len": self.pred_len,
            **(
                {"adapted": list(self.adapted), "adapted_through": self.adapted_through}
                if self.adapted is not None
                else {}
            ),
        }

    @classmethod
    def from_state(cls, state: dict) -> IntervalCalibration:
        if not np.allclose(state["levels"].numpy(), LEVEL_GRID):
            raise IntervalError("the checkpoint's interval calibration uses another level grid; recalibrate the run")
        return cls(
            state["steps"].numpy(),
            state["table"].numpy(),
            state["mean_spread"].numpy(),
            float(state["shrink"]),
            int(state["windows"]),
            bool(state["pooled"]),
            int(state["pred_len"]),
            tuple(float(v) for v in state["adapted"]) if "adapted" in state else None,
            int(state["adapted_through"]) if "adapted_through" in state else None,
        )

    def describe(self, reading: str = "fixed") -> str:
        """How the intervals of a forecast are made: ``adapted`` (the levels the test split ended with),
        ``online`` (a backtest: levels adapting as it goes) or ``fixed`` (the validation calibration alone)."""
        per = "pooled over series" if self.pooled else "per series"
        levels = {
            "online": "; the 0.1/0.9 levels adapt to the backtest's errors as its actuals arrive",
            "adapted": (
                f"; the 0.1/0.9 levels read at {self.adapted[0]:.3f}/{self.adapted[1]:.3f}, where the test "
                "split's errors moved them"
                if self.adapted is not None
                else ""
            ),
            "fixed": "",
        }[reading]
        return (
            f"split-conformal on {self.windows} validation windows, per horizon step and {per}, "
            f"scaled by each input's spread (shrink {self.shrink:g} toward the mean){levels}"
        )

    def adapt_rate(self) -> float:
        """How far a tracked level moves per row of time for each unit of miscoverage (:class:`LevelTracker`)."""
        return min(ADAPT_SPAN / self.windows, DELAY_GAIN / self.pred_len, MAX_ADAPT_RATE)

    def resolution(self) -> tuple[float, float]:
        """The most extreme levels the calibration can tell apart: ``1/(n+1)`` and ``n/(n+1)``."""
        n = self.windows * (self.table.shape[2] if self.pooled else 1)
        return max(1 / (n + 1), LEVEL_GRID[0]), min(n / (n + 1), LEVEL_GRID[-1])

    def beyond(self, levels) -> list[float]:
        """Those of ``levels`` finer than :meth:`resolution`: they would all read the same extreme residual."""
        low, high = self.resolution()
        return [float(v) for v in levels if v < low - 1e-12 or v > high + 1e-12]

    def quantiles(self, levels: np.ndarray) -> np.ndarray:
        """The normalised residual quantiles at ``levels`` for every step ``[len(levels), pred_len, C]``: computed
        once per set of levels, then scaled per window by :meth:`offsets`."""
        at_levels = _interpolate(LEVEL_GRID, self.table, levels, axis=0)  # [Q, K, C]
        if len(self.steps) == self.pred_len:  # every step stored (all but wide, long horizons)
            return at_levels
        return _interpolate(self.steps.astype(np.float64), at_levels, np.arange(self.pred_len), axis=1)

    def offsets(self, quantiles: np.ndarray, spread: torch.Tensor) -> np.ndarray:
        """Residual quantiles ``[B, Q, pred_len, C]`` (scaled units): :meth:`quantiles` ``[Q, pred_len, C]`` for
        windows of input ``spread`` ``[B, C]``."""
        scale = _scale(spread.cpu().numpy(), self.mean_spread, self.shrink)  # [B, C]
        return quantiles[None] * scale[:, None, None, :]


def adapted_levels(levels: np.ndarray, tracked) -> np.ndarray:
    """``levels`` read where the tracked levels moved: piecewise linear through (0, 0), (0.1, tracked low),
    (0.5, 0.5), (0.9, tracked high), (1, 1), so every level moves with its nearer tracked one and order holds."""
    known = [0.0, TRACKED_LEVELS[0], 0.5, TRACKED_LEVELS[1], 1.0]
    return np.interp(np.asarray(levels, dtype=np.float64), known, [0.0, tracked[0], 0.5, tracked[1], 1.0])


class LevelTracker:
    """Adaptive conformal inference (Gibbs and Candes, 2021) for forecasts scored as their actuals arrive.

    After each forecast whose whole horizon has been seen, each tracked level moves by
    ``rate * rows * (level - share of actuals below its bound)``: too many actuals inside the 80%
    interval narrow it, too many outside widen it. A forecast's errors are used only from the origin one
    horizon later, when all its actuals are known, so no interval depends on values after its origin."""

    def __init__(self, pred_len: int, rate: float, start=TRACKED_LEVELS):
        self.pred_len, self.rate = pred_len, rate
        self.tracked = np.array(start, dtype=np.float64)
        self._pending: deque[tuple[int, np.ndarray, int]] = deque()  # (origin it is known at, shares below, rows)

    def catch_up(self, origin: int) -> np.ndarray:
        """The tracked levels for a forecast from ``origin``: every outcome known by then applied."""
        while self._pending and self._pending[0][0] <= origin:
            _, below, rows = self._pending.popleft()
            moved = self.tracked + self.rate * rows * (np.asarray(TRACKED_LEVELS) - below)
            self.tracked = np.clip(moved, [LEVEL_GRID[0], 0.5 + 1e-3], [0.5 - 1e-3, LEVEL_GRID[-1]])
        return self.tracked

    def observe(self, origin: int, below: np.ndarray, rows: int = 1) -> None:
        """The share of the forecast from ``origin``'s actuals below each tracked level's bound; ``rows``: the
        rows of time this forecast stands for (the step between backtest origins; no more than the horizon its
        actuals cover)."""
        self._pending.append((origin + self.pred_len, np.asarray(below, dtype=np.float64), min(rows, self.pred_len)))


def _scale(spread: np.ndarray, mean_spread: np.ndarray, shrink: float) -> np.ndarray:
    return (1 - shrink) * spread + shrink * mean_spread


def _interpolate(known_x: np.ndarray, values: np.ndarray, x: np.ndarray, axis: int) -> np.ndarray:
    """Piecewise-linear interpolation of ``values`` along ``axis`` (monotone in ``x`` where ``values`` are)."""
    right = np.clip(np.searchsorted(known_x, x, side="right"), 1, len(known_x) - 1)
    left = right - 1
    weight = np.clip((x - known_x[left]) / (known_x[right] - known_x[left]), 0.0, 1.0)
    shape = [1] * values.ndim
    shape[axis] = len(x)
    weight = weight.reshape(shape)
    return np.take(values, left, axis=axis) * (1 - weight) + np.take(values, right, axis=axis) * weight


class CalibrationCollector:
    """Gathers validation residuals batch by batch (only at the stored steps), then fits the table."""

    def __init__(self, pred_len: int, n_series: int):
        self.pred_len = pred_len
        self.steps = stored_steps(pred_len, n_series)
        self.residuals: list[np.ndarray] = []
        self.spreads: list[np.ndarray] = []

    def add(self, prediction: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor) -> None:
        residual = (target - prediction)[:, self.steps, :]
        self.residuals.append(residual.float().cpu().numpy())
        self.spreads.append(input_spread(inputs, prediction.shape[2]).cpu().numpy())

    def finish(self) -> IntervalCalibration:
        # float32 and in place from here on: on wide data the residuals are the calibration's largest array
        # ([windows, stored steps, series]; 200 MB on electricity's shape), and each copy would cost as much again
        residuals, spreads = np.concatenate(self.residuals), np.concatenate(self.spreads)
        self.residuals.clear()
        windows, n_series = residuals.shape[0], residuals.shape[2]
        mean_spread = spreads.mean(axis=0)
        mean_spread[mean_spread <= 0] = 1.0  # a series flat over every validation input: any scale will do
        pooled = windows < MIN_WINDOWS_PER_SERIES and n_series > 1
        shrink = _choose_shrink(residuals, spreads, mean_spread, self.pred_len, pooled)
        residuals /= _scale(spreads, mean_spread, shrink)[:, None, :].astype(np.float32)  # now the scores
        table = _quantile_table(residuals, LEVEL_GRID, pooled)
        return IntervalCalibration(
            self.steps, table.astype(np.float32), mean_spread, shrink, windows, pooled, self.pred_len
        )


def _quantile_table(scores: np.ndarray, levels: np.ndarray, pooled: bool) -> np.ndarray:
    """Conformal quantiles of ``scores`` ``[N, K, C]`` at ``levels``: ``[len(levels), K, C]``. Sorts ``scores``
    in place (callers pass an array they no longer need)."""
    n_series = scores.shape[2]
    if pooled:  # one set of quantiles over every series' windows, kept once per series
        scores = scores.transpose(0, 2, 1).reshape(-1, scores.shape[1], 1)
    n = scores.shape[0]
    widened = np.clip(0.5 + (levels - 0.5) * (n + 1) / n, 0.0, 1.0)
    # np.quantile's linear rule from one sort (np.quantile partitions again per call: 8x slower on wide data)
    scores.sort(axis=0)
    position = widened * (n - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    weight = (position - below)[:, None, None]
    table = scores[below] * (1 - weight) + scores[above] * weight
    return np.repeat(table, n_series, axis=2) if pooled else table


def held_out_split(windows: int, pred_len: int) -> tuple[int, int]:
    """``(fit_end, cut)``: of ``windows`` validation windows in time order, ``[0, fit_end)`` calibrate and
    ``[cut, windows)`` (the last 30%) score, one horizon apart so that no target of the two parts overlaps."""
    cut = int(0.7 * windows)
    return cut - pred_len, cut


def _choose_shrink(
    residuals: np.ndarray, spreads: np.ndarray, mean_spread: np.ndarray, pred_len: int, pooled: bool
) -> float:
    """The :data:`SHRINKS` value whose quantiles, fitted on the first 70% of the validation windows, have
    the lowest pinball loss on the last 30% (targets of the two parts never overlap)."""
    fit_end, cut = held_out_split(len(residuals), pred_len)
    if fit_end < 20 or len(residuals) - cut < 10:
        return FALLBACK_SHRINK
    # one number is chosen: a few steps across the horizon and a few dozen series decide it as well as all
    # of them, in a fraction of the time on wide data
    steps = np.unique(np.linspace(0, residuals.shape[1] - 1, min(residuals.shape[1], 24)).astype(int))
    series = np.unique(np.linspace(0, residuals.shape[2] - 1, min(residuals.shape[2], 64)).astype(int))
    residuals, spreads, mean_spread = residuals[:, steps][:, :, series], spreads[:, series], mean_spread[series]
    losses = []
    for shrink in SHRINKS:
        fit_scale = _scale(spreads[:fit_end], mean_spread, shrink)[:, None, :]
        table = _quantile_table(residuals[:fit_end] / fit_scale, SELECTION_LEVELS, pooled)
        held_scale = _scale(spreads[cut:], mean_spread, shrink)[:, None, :]
        loss = 0.0
        for level, quantile in zip(SELECTION_LEVELS, table, strict=True):
            error = residuals[cut:] - quantile[None] * held_scale
            loss += float(np.maximum(level * error, (level - 1) * error).mean())
        losses.append(loss)
    return SHRINKS[int(np.argmin(losses))]


def check_levels(levels: list[float] | tuple[float, ...], calibration: IntervalCalibration | None = None) -> np.ndarray:
    """``levels`` sorted, or a one-line error: each inside (0, 1), none repeated, none finer than the calibration."""
    values = np.asarray(levels, dtype=np.float64)
    if values.size == 0:
        raise IntervalError("give at least one quantile level, e.g. --quantiles 0.1 0.5 0.9")
    outside = [f"{v:g}" for v in values if not 0 < v < 1]
    if outside:
        raise IntervalError(f"quantile level(s) {', '.join(outside)} outside (0, 1); give levels such as 0.1 0.5 0.9")
    if len(np.unique(values)) < len(values):
        raise IntervalError("quantile levels repeat; give each level once")
    finer = calibration.beyond(values) if calibration is not None else []
    if finer:
        low, high = calibration.resolution()
        raise IntervalError(
            f"quantile level(s) {', '.join(f'{v:g}' for v in finer)} are beyond what {calibration.windows} "
            f"validation windows can calibrate; give levels within [{low:.4g}, {high:.4g}]"
        )
    return np.sort(values)


def central_pairs(levels: np.ndarray) -> list[tuple[float, float]]:
    """The central intervals the levels form: ``(q, 1 - q)`` for each given ``q < 0.5`` whose partner is given
    (both as given, so they can be looked up)."""
    return [
        (float(q), float(levels[np.isclose(levels, 1 - q)][0]))
        for q in levels
        if q < 0.5 and np.isclose(levels, 1 - q).any()
    ]


def interval_name(low: float) -> str:
    """``0.1`` -> ``"80"``: the nominal coverage of the central interval starting at ``low``, in percent."""
    return f"{round((1 - 2 * low) * 100, 6):g}"


def level_name(level: float) -> str:
    return f"{level:g}"


class IntervalScorer:
    """Coverage and mean width of each central interval, and the pinball loss averaged over levels,
    accumulated batch by batch over a split in time order (scaled units, like MSE).

    ``adapt``: the levels follow the split's own errors as they become known (:class:`LevelTracker`), as a
    forecaster would recalibrate while the actuals arrive; otherwise the validation calibration alone."""

    def __init__(self, calibration: IntervalCalibration, levels: np.ndarray, adapt: bool = True):
        self.calibration, self.levels = calibration, levels
        self.pairs = central_pairs(levels)
        self.tracker = LevelTracker(calibration.pred_len, calibration.adapt_rate()) if adapt else None
        self.fixed = None if adapt else calibration.quantiles(levels)  # the validation levels: computed once
        self.index = {float(level): i for i, level in enumerate(levels)}
        self.covered = np.zeros(len(self.pairs))
        self.width = np.zeros(len(self.pairs))
        self.pinball = 0.0
        self.count = 0
        self.windows = 0

    def add(self, prediction: torch.Tensor, target: torch.Tensor, inputs: torch.Tensor) -> None:
        spread = input_spread(inputs, prediction.shape[2]).cpu().numpy()
        scale = _scale(spread, self.calibration.mean_spread, self.calibration.shrink)  # [B, C]
        points, actuals = prediction.double().cpu().numpy(), target.double().cpu().numpy()
        # window by window: where the levels adapt, each window reads the table at its own levels
        for point, actual, window_scale in zip(points, actuals, scale, strict=True):
            if self.tracker is None:
                quantiles = self.fixed
            else:
                quantiles = self.calibration.quantiles(
                    self.calibration.read_levels(self.levels, self.tracker.catch_up(self.windows))
                )
            bounds = point[None] + quantiles * window_scale[None, None, :]  # [Q(+2), H, C]
            error = actual[None] - bounds[: len(self.levels)]
            weights = self.levels[:, None, None]
            self.pinball += float(np.maximum(weights * error, (weights - 1) * error).sum()) / len(self.levels)
            for i, (low, high) in enumerate(self.pairs):
                lower, upper = bounds[self.index[low]], bounds[self.index[high]]
                self.covered[i] += float(((actual >= lower) & (actual <= upper)).sum())
                self.width[i] += float((upper - lower).sum())
            if self.tracker is not None:
                self.tracker.observe(self.windows, (actual[None] < bounds[len(self.levels) :]).mean(axis=(1, 2)))
            self.count += actual.size
            self.windows += 1

    def result(self) -> dict:
        names = [interval_name(low) for low, _ in self.pairs]
        result = {
            "levels": [float(level) for level in self.levels],
            "coverage": {name: float(c / self.count) for name, c in zip(names, self.covered, strict=True)},
            "width": {name: float(w / self.count) for name, w in zip(names, self.width, strict=True)},
            "pinball": self.pinball / self.count,
            "adapting": self.tracker is not None,
        }
        if self.tracker is not None:
            result["adapted_levels"] = [
                float(v) for v in self.tracker.catch_up(self.windows + self.calibration.pred_len)
            ]
        return result
