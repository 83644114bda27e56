"""Row positions on a regular clock, so that a phase-aware model (a learned daily cycle, say) sees
the same phase for the same clock time in training and in ``specmem forecast`` on another file.

Positions come from the timestamps, never from row counts: a gap in a file moves every later row's
position by the gap's length. Months and business days are calendar steps (a month is 28 to 31
days, a business week skips the weekend), counted on the calendar rather than divided by a mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

MEAN_MONTH = pd.Timedelta(days=365.2425 / 12)
# A file without a clock (numbered steps, or rows in order) is held as nanoseconds from 1970, step number n
# at n ns: a spacing no real clock has (under a microsecond), so the axis knows it counts steps and has no
# day, week or year.
COUNTED_STEP = pd.Timedelta(1, unit="ns")
COUNTED_ORIGIN = pd.Timestamp(0)
MAX_COUNTED_SPACING = 999  # step numbers further apart would read as a microsecond clock
_MONTH_STEPS = {1: (27.5, 31.5), 3: (88.0, 93.0), 6: (180.0, 185.0), 12: (364.0, 367.0)}  # months: days per step
_NAMED = {
    pd.Timedelta(minutes=1): "minutely",
    pd.Timedelta(hours=1): "hourly",
    pd.Timedelta(days=1): "daily",
    pd.Timedelta(days=7): "weekly",
}
_MONTH_NAMES = {1: "monthly", 3: "quarterly", 6: "half-yearly", 12: "yearly"}


@dataclass(frozen=True)
class TimeAxis:
    """A regular clock: ``origin`` plus whole steps of ``step``, of ``months`` calendar months, or of business days.

    ``step`` is exact for a fixed clock and the mean step of a calendar one (a month, 7/5 of a day),
    which is what seasonal arithmetic (how many steps make a year) needs.
    """

    origin: pd.Timestamp
    step: pd.Timedelta
    months: int = 0
    business_days: bool = False

    @classmethod
    def of(cls, dates: pd.DatetimeIndex) -> TimeAxis:
        """The clock of a series: its first timestamp and its typical spacing (robust to a few gaps)."""
        if len(dates) < 2:
            return cls(dates[0] if len(dates) else pd.Timestamp(0), pd.Timedelta(hours=1))
        spacing = np.diff(dates.values.astype("datetime64[ns]")).astype(np.int64)
        spacing = spacing[spacing > 0]
        median = pd.Timedelta(int(np.median(spacing)) if spacing.size else 3_600_000_000_000, unit="ns")
        days = median / pd.Timedelta(days=1)
        for months, (low, high) in _MONTH_STEPS.items():
            if low <= days <= high:
                return cls(dates[0], MEAN_MONTH * months, months=months)
        if median == pd.Timedelta(days=1) and _business_days(dates):
            return cls(dates[0], pd.Timedelta(days=7) / 5, business_days=True)
        return cls(dates[0], median)

    def positions(self, dates: pd.DatetimeIndex) -> torch.Tensor:
        if self.months:
            months = (dates.year - self.origin.year) * 12 + (dates.month - self.origin.month)
            steps = np.floor_divide(np.asarray(months, dtype=np.int64), self.months)
        elif self.business_days:
            begin = np.datetime64(self.origin.date(), "D")
            steps = np.busday_count(begin, dates.values.astype("datetime64[D]")).astype(np.int64)
        else:
            steps = np.rint(np.asarray((dates - self.origin) / self.step, dtype=np.float64)).astype(np.int64)
        return torch.from_numpy(np.asarray(steps, dtype=np.int64))

    def after(self, last: pd.Timestamp, count: int) -> pd.DatetimeIndex:
        """The ``count`` timestamps that follow ``last`` on this clock."""
        if self.months:
            month_end = last.is_month_end and self.origin.is_month_end
            offsets = [
                pd.offsets.MonthEnd(self.months * k) if month_end else pd.DateOffset(months=self.months * k)
                for k in range(1, count + 1)
            ]
            return pd.DatetimeIndex([last + offset for offset in offsets])
        if self.business_days:
            return pd.DatetimeIndex([last + pd.offsets.BDay(k) for k in range(1, count + 1)])
        return pd.DatetimeIndex([last + self.step * k for k in range(1, count + 1)])

    def gaps(self, dates: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, int]]:
        """``(timestamp before the gap, missing steps)`` wherever consecutive rows skip clock steps."""
        jumps = np.diff(self.positions(dates).numpy())
        return [(dates[i], int(jumps[i]) - 1) for i in np.nonzero(jumps > 1)[0]]

    @property
    def counted(self) -> bool:
        """Numbered steps without a clock (see :data:`COUNTED_STEP`)."""
        return counted(self.step) and not self.months and not self.business_days

    def describe(self) -> str:
        """The step in words: 'hourly', '15-minute', 'monthly', 'business-daily', 'numbered'."""
        if self.counted:
            return "numbered"
        if self.months:
            return _MONTH_NAMES[self.months]
        if self.business_days:
            return "business-daily"
        if self.step in _NAMED:
            return _NAMED[self.step]
        for unit, name in (
            (pd.Timedelta(days=1), "day"),
            (pd.Timedelta(hours=1), "hour"),
            (pd.Timedelta(minutes=1), "minute"),
        ):
            count = self.step / unit
            if count >= 1 and count == int(count):
                return f"{int(count)}-{name}"
        return f"{self.step.total_seconds():g}-second"

    def to_state(self) -> dict[str, object]:
        return {
            "origin": self.origin.isoformat(),
            "step": self.step.isoformat(),
            "months": self.months,
            "business_days": self.business_days,
        }

    @classmethod
    def from_state(cls, state: dict[str, object]) -> TimeAxis:
        return cls(
            pd.Timestamp(state["origin"]),
            pd.Timedelta(state["step"]),
            int(state.get("months", 0)),
            bool(state.get("business_days", False)),
        )


def counted(step: pd.Timedelta) -> bool:
    """Whether a clock's step is that of numbered steps (see :data:`COUNTED_STEP`), not of time."""
    return step <= MAX_COUNTED_SPACING * COUNTED_STEP


def _business_days(dates: pd.DatetimeIndex) -> bool:
    """A daily series that never falls on a weekend but skips weekends (stock prices, office loads)."""
    if len(dates) < 10 or (dates.day_of_week >= 5).any():
        return False
    steps = np.diff(dates.normalize().values.astype("datetime64[D]")).astype(np.int64)
    return bool((steps == 3).any())
