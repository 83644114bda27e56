"""Row positions on a regular clock, so that a phase-aware model (a learned daily cycle, say) sees
the same phase for the same clock time in training and in ``specmem forecast`` on another file."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch


@dataclass(frozen=True)
class TimeAxis:
    """Position ``p`` of a timestamp ``t`` is ``round((t - origin) / step)``."""

    origin: pd.Timestamp
    step: pd.Timedelta

    @classmethod
    def of(cls, dates: pd.DatetimeIndex) -> TimeAxis:
        """The axis of a series: its first timestamp and its median spacing (robust to a few gaps)."""
        nanoseconds = np.diff(dates.values.astype("datetime64[ns]")).astype(np.int64)
        spacing = pd.Timedelta(int(np.median(nanoseconds)), unit="ns") if len(dates) > 1 else pd.Timedelta(hours=1)
        return cls(dates[0], spacing)

    def positions(self, dates: pd.DatetimeIndex) -> torch.Tensor:
        offsets = (dates - self.origin) / self.step
        return torch.from_numpy(np.rint(np.asarray(offsets, dtype=np.float64)).astype(np.int64))

    def to_state(self) -> dict[str, str]:
        return {"origin": self.origin.isoformat(), "step": self.step.isoformat()}

    @classmethod
    def from_state(cls, state: dict[str, str]) -> TimeAxis:
        return cls(pd.Timestamp(state["origin"]), pd.Timedelta(state["step"]))
