"""TSL-exact train/val/test splits, scaling and feature modes.

The borders reproduce the Time-Series-Library loaders the published numbers come from:
ETT hourly files use 12/4/4 months of 30 days (rows past 14,400 are never used), ETT 15-minute
files the same in quarter-hours, any other CSV 70% / 10% / 20%. Validation and test start
``seq_len`` rows before their border so their first window's target begins right at it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from specmem_cli.data.calendar import TimeAxis
from specmem_cli.data.registry import protocol_for
from specmem_cli.data.scaler import StandardScaler
from specmem_cli.data.table import SeriesTable
from specmem_cli.data.windows import WindowSet
from specmem_cli.errors import DataError

SPLIT_SCHEMES = ("auto", "ett_hour", "ett_minute", "ratio")
FEATURE_MODES = ("M", "S", "MS")
SPLIT_NAMES = ("train", "val", "test")
_HOURS_PER_MONTH = 30 * 24


def infer_split_scheme(name: str) -> str:
    """ETT files keep TSL's fixed month borders; every other set uses the 70/10/20 ratio."""
    return protocol_for(name).split


def split_borders(n_rows: int, seq_len: int, scheme: str) -> list[tuple[int, int]]:
    """Row ranges ``[start, end)`` of train, val and test for a series of ``n_rows`` rows."""
    if scheme in ("ett_hour", "ett_minute"):
        unit = _HOURS_PER_MONTH * (4 if scheme == "ett_minute" else 1)
        train_end, val_end, test_end = 12 * unit, 16 * unit, 20 * unit
        if n_rows < test_end:
            raise DataError(
                f"the {scheme} split needs {test_end} rows but the file has {n_rows}; use --set data.split=ratio"
            )
    elif scheme == "ratio":
        train_end = int(n_rows * 0.7)
        test_rows = int(n_rows * 0.2)
        val_end, test_end = n_rows - test_rows, n_rows
    else:
        raise DataError(f"unknown split scheme '{scheme}'; use one of: {', '.join(SPLIT_SCHEMES)}")
    return [(0, train_end), (train_end - seq_len, val_end), (val_end - seq_len, test_end)]


@dataclass(frozen=True)
class Windows:
    """Look-back and horizons of a sweep."""

    seq_len: int
    pred_lens: list[int]


def split_sizes(n_rows: int, scheme: str) -> tuple[int, int, int]:
    """Rows of train, validation and test that belong to each split (before the look-back reaches back)."""
    borders = split_borders(n_rows, 0, scheme)
    return borders[0][1], borders[1][1] - borders[1][0], borders[2][1] - borders[2][0]


MIN_VALIDATION_WINDOWS = 10  # a horizon chosen for a short file leaves this many: early stopping, the head's
# choice and the 0.1 / 0.9 interval levels (which need 9 windows) are not decided by one window


def windows_that_fit(
    n_rows: int, scheme: str, protocol: Windows, seq_len: int | None, pred_lens: list[int] | None, source: str
) -> tuple[Windows, str | None]:
    """The look-back and horizons to use on a series of ``n_rows``, and a note when they differ from ``protocol``.

    Settings given explicitly (``seq_len``, ``pred_lens`` not None) are kept, and an error names values
    that would fit if they do not. Protocol defaults that do not fit shrink to what the data supports:
    horizons that leave the validation and test splits :data:`MIN_VALIDATION_WINDOWS` windows each (else
    one horizon that leaves that many, but never shorter than half the shorter split), and a look-back that
    leaves at least half the training rows as window starts.
    """
    train, val, test = split_sizes(n_rows, scheme)
    longest = min(val, test)
    if train < 3 or longest < 1:
        raise DataError(
            f"{source}: {n_rows} rows is too short to split into train, validation and test windows; give a longer series"
        )
    roomy = longest - MIN_VALIDATION_WINDOWS + 1  # the longest horizon that leaves that many windows
    if pred_lens is not None:
        horizons = list(pred_lens)
    else:
        horizons = [h for h in protocol.pred_lens if h <= roomy and train - h >= 2] or [
            max(1, min(max(longest // 2, roomy), train // 3))
        ]
    if seq_len is not None:
        look_back = seq_len
    elif train - protocol.seq_len - max(horizons) + 1 >= train // 4:
        look_back = protocol.seq_len
    else:
        look_back = max(1, (train - max(horizons)) // 2)
    too_long = [h for h in horizons if h > longest or train - look_back - h + 1 < 1]
    if too_long:
        room = min(longest, train - look_back)
        shorter = (
            f"horizons up to {room} fit with look-back {look_back}"
            if room >= 1
            else f"look-back {look_back} leaves no room"
        )
        other = (
            f", or look-back up to {train - max(too_long)} for horizon {max(too_long)}"
            if max(too_long) <= longest and train - max(too_long) >= 1
            else ""
        )
        raise DataError(
            f"{source}: splits of {train}/{val}/{test} rows cannot hold horizon {max(too_long)} with look-back "
            f"{look_back}; {shorter}{other} (--pred-len, --set data.seq_len=N)"
        )
    chosen = Windows(look_back, horizons)
    shrunk_look_back = seq_len is None and look_back != protocol.seq_len
    shrunk_horizons = pred_lens is None and horizons != list(protocol.pred_lens)
    if not (shrunk_look_back or shrunk_horizons):
        return chosen, None
    note = (
        f"note: {source}: {n_rows} rows (train {train}, validation {val}, test {test}) do not fit look-back "
        f"{protocol.seq_len} and horizons {', '.join(map(str, protocol.pred_lens))}; using look-back {look_back} and "
        f"horizon(s) {', '.join(map(str, horizons))} (the longest leaves {val - max(horizons) + 1} validation "
        f"window(s); set them with --set data.seq_len=N --pred-len N)"
    )
    return chosen, note


@dataclass
class PreparedData:
    """Scaled windows of every split, plus everything needed to map forecasts back to the CSV."""

    train: WindowSet
    val: WindowSet
    test: WindowSet
    scaler: StandardScaler
    columns: list[str]  # input channel names, in model order (target last)
    output_columns: list[str]
    borders: list[tuple[int, int]]
    table: SeriesTable
    time_axis: TimeAxis

    def training_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """The training split's raw values ``[rows, series]`` (model channel order) and clock positions ``[rows]``."""
        start, end = self.borders[0]
        order = [self.table.columns.index(c) for c in self.columns]
        return self.table.values[start:end, order], self.time_axis.positions(self.table.dates[start:end]).numpy()

    def split(self, name: str) -> WindowSet:
        return {"train": self.train, "val": self.val, "test": self.test}[name]

    @property
    def n_inputs(self) -> int:
        return len(self.columns)

    @property
    def n_outputs(self) -> int:
        return len(self.output_columns)


def resolve_target(columns: list[str], target: str | None, source: str) -> str:
    """The named target, else ``OT`` when present (the ETT convention), else the last column."""
    if target is None:
        return "OT" if "OT" in columns else columns[-1]
    if target not in columns:
        raise DataError(
            f"{source}: unknown target column '{target}' (columns: {', '.join(columns)}); fix --target (data.target in a config)"
        )
    return target


def channel_layout(columns: list[str], target: str, features: str) -> tuple[list[str], list[str]]:
    """Input and output channel names for a feature mode; the target always goes last, as in TSL."""
    if features not in FEATURE_MODES:
        raise DataError(f"unknown features mode '{features}'; use one of: {', '.join(FEATURE_MODES)}")
    ordered = [c for c in columns if c != target] + [target]
    inputs = [target] if features == "S" else ordered
    outputs = [target] if features in ("S", "MS") else ordered
    return inputs, outputs


def prepare(
    table: SeriesTable,
    seq_len: int,
    pred_len: int,
    features: str = "M",
    target: str | None = None,
    scheme: str = "auto",
) -> PreparedData:
    """Split, scale (train statistics only) and window ``table`` as TSL does."""
    if min(seq_len, pred_len) < 1:
        raise DataError(f"need seq_len >= 1 and pred_len >= 1 (got {seq_len}, {pred_len})")
    target = resolve_target(table.columns, target, table.source)
    inputs, outputs = channel_layout(table.columns, target, features)
    order = [table.columns.index(c) for c in inputs]
    values = table.values[:, order]
    if scheme == "auto":
        scheme = infer_split_scheme(table.source)
    borders = split_borders(table.n_rows, seq_len, scheme)
    scaler = StandardScaler().fit(values[borders[0][0] : borders[0][1]])
    scaled = torch.from_numpy(scaler.transform(values)).float()
    time_axis = TimeAxis.of(table.dates)
    output_channels = slice(len(inputs) - len(outputs), len(inputs))
    windows = []
    for name, (start, end) in zip(SPLIT_NAMES, borders, strict=True):
        rows = end - start
        if rows - seq_len - pred_len + 1 < 1:
            longest = f"the longest horizon that fits is {rows - seq_len}" if rows > seq_len else "shorten seq_len"
            raise DataError(
                f"{table.source}: the {name} split has {rows} rows, too few for seq_len {seq_len} + pred_len {pred_len}; "
                f"{longest} (--pred-len), or use a longer series"
            )
        positions = time_axis.positions(table.dates[start:end])
        windows.append(WindowSet(scaled[start:end], seq_len, pred_len, output_channels, positions))
    return PreparedData(*windows, scaler, inputs, outputs, borders, table, time_axis)
