"""Load a wide CSV (one date column, one numeric column per series) into a validated table.

Every check here exists because a forecasting run that starts on bad data wastes an hour and
then reports a meaningless number; each failure is a one-line :class:`DataError` with the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from specmem_cli.errors import DataError

FILL_METHODS = ("ffill", "interpolate")


@dataclass(frozen=True)
class SeriesTable:
    """A validated multivariate series: increasing timestamps (a record repeated whole may stand twice) and finite float values."""

    dates: pd.DatetimeIndex
    values: np.ndarray  # [rows, columns], float64
    columns: list[str]
    date_column: str
    source: str

    @property
    def n_rows(self) -> int:
        return self.values.shape[0]

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.values, columns=self.columns)
        frame.insert(0, self.date_column, self.dates)
        return frame


def read_table(path: str | Path, date_col: str | None = None, fill: str | None = None) -> SeriesTable:
    """Read and validate ``path``; ``fill`` ('ffill' or 'interpolate') repairs NaN/inf values."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path, or fetch a known set with `specmem download NAME`")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{path}: not a readable CSV ({first_line}); save it as comma-separated text with a header row"
        ) from None
    return table_from_frame(frame, source=str(path), date_col=date_col, fill=fill)


def table_from_frame(
    frame: pd.DataFrame, source: str, date_col: str | None = None, fill: str | None = None
) -> SeriesTable:
    """Validate an in-memory frame exactly as :func:`read_table` validates a file."""
    if frame.shape[0] == 0 or frame.shape[1] < 2:
        raise DataError(
            f"{source}: needs a header, a date column and at least one numeric column, and at least one row"
        )
    date_column = _find_date_column(frame, source, date_col)
    dates = _parse_dates(frame[date_column], source, date_column)
    numeric = frame.drop(columns=[date_column])
    values = _numeric_values(numeric, source)
    values = _check_finite(values, list(numeric.columns), source, fill)
    _check_order(dates, values, source)
    return SeriesTable(dates, values, [str(c) for c in numeric.columns], date_column, source)


def _find_date_column(frame: pd.DataFrame, source: str, date_col: str | None) -> str:
    if date_col is not None:
        if date_col not in frame.columns:
            raise DataError(
                f"{source}: no column named '{date_col}' (columns: {', '.join(map(str, frame.columns))}); fix --date-col"
            )
        return date_col
    for column in frame.columns:
        if str(column).strip().lower() in ("date", "datetime", "timestamp", "time", "ds"):
            return column
    for column in frame.columns:
        if frame[column].dtype == object and _parses_as_dates(frame[column]):
            return column
    raise DataError(f"{source}: no parseable date column found; name it with --date-col")


def _parses_as_dates(column: pd.Series) -> bool:
    parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    return bool(parsed.notna().all())


def _parse_dates(column: pd.Series, source: str, name: str) -> pd.DatetimeIndex:
    parsed = pd.to_datetime(column, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy().nonzero()[0]
    if bad.size:
        row = int(bad[0])
        raise DataError(
            f"{source}: date column '{name}' has {bad.size} unparseable value(s), first {column.iloc[row]!r} "
            f"at data row {row + 1}; fix those cells or choose another column with --date-col"
        )
    return pd.DatetimeIndex(parsed)


def _numeric_values(numeric: pd.DataFrame, source: str) -> np.ndarray:
    bad_columns = []
    for column in numeric.columns:
        if not pd.api.types.is_numeric_dtype(numeric[column]):
            converted = pd.to_numeric(numeric[column], errors="coerce")
            # A cell that was present but is not a number makes the column non-numeric.
            if (converted.isna() & numeric[column].notna()).any():
                bad_columns.append(str(column))
            else:
                numeric[column] = converted
    if bad_columns:
        raise DataError(
            f"{source}: non-numeric column(s) {', '.join(bad_columns)}; drop them or convert them to numbers"
        )
    return numeric.to_numpy(dtype=np.float64, copy=True)


def _check_finite(values: np.ndarray, columns: list[str], source: str, fill: str | None) -> np.ndarray:
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    if fill is None:
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{source}: {int(bad.sum())} NaN/inf value(s), first in column '{columns[col]}' at data row {row + 1}; "
            "clean the file or pass --fill ffill|interpolate"
        )
    if fill not in FILL_METHODS:
        raise DataError(f"unknown fill method '{fill}'; use one of: {', '.join(FILL_METHODS)}")
    frame = pd.DataFrame(np.where(bad, np.nan, values))
    frame = frame.ffill() if fill == "ffill" else frame.interpolate(limit_direction="both")
    frame = frame.bfill()  # leading gaps have nothing before them to carry forward
    if frame.isna().to_numpy().any():
        empty = [columns[i] for i in np.nonzero(frame.isna().all().to_numpy())[0]]
        raise DataError(f"{source}: column(s) {', '.join(empty)} hold no finite value to fill from; drop them")
    return frame.to_numpy(dtype=np.float64)


def _check_order(dates: pd.DatetimeIndex, values: np.ndarray, source: str) -> None:
    """Timestamps must increase; a row repeated whole (same time, same values: one record written twice,
    as once in the benchmark weather file) is kept, since the TSL protocol counts it, but a timestamp
    that carries two different records is ambiguous."""
    repeated = np.nonzero(dates.duplicated())[0]
    conflicting = [row for row in repeated if not np.array_equal(values[row], values[row - 1])]
    if conflicting:
        first = dates[conflicting[0]]
        raise DataError(
            f"{source}: duplicated timestamp {first} with different values; remove or aggregate the duplicate rows"
        )
    if not dates.is_monotonic_increasing:  # repeated rows were adjacent: still non-decreasing
        steps = np.diff(dates.asi8)
        row = int(np.nonzero(steps < 0)[0][0]) + 1
        raise DataError(
            f"{source}: timestamps are not sorted (data row {row + 1}, {dates[row]}, comes before the row above it); "
            "sort the file by date"
        )
