"""Load a CSV as people have them into a validated table of series on one clock.

Accepted: wide files (a date column, one numeric column per series) and long files (an id column,
a date column and value column(s), series stacked: neuralforecast's ``unique_id,ds,y``, AutoGluon's
``item_id,timestamp,target``); comma, semicolon, tab or pipe separated, decimal points or commas.
The date column is found by content (:mod:`specmem_cli.data.dates`); text columns that are not
the clock or the id are left out with a note. Every choice made for the user is logged as a
one-line note (logger ``specmem_cli``), and every failure is a one-line :class:`DataError` with the
fix, because a run that starts on misread data wastes an hour and reports a meaningless number.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
from dataclasses import astuple, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from specmem_cli.data.calendar import TimeAxis
from specmem_cli.data.dates import find_dates, shown, written_format
from specmem_cli.errors import DataError

FILL_METHODS = ("ffill", "interpolate")
SEPARATORS = (",", ";", "\t", "|")
_DECIMAL_COMMA = re.compile(r"(^|[;\t|])\s*-?\d+,\d+\s*($|[;\t|])", re.MULTILINE)
_GROUPED_NUMBER = r"[-+]?([1-9]\d{0,2}(,\d{3})+|\d+)(\.\d+)?"  # "12,345.6": commas group (never "0,125")
_GROUPED_DECIMAL_COMMA = r"[-+]?([1-9]\d{0,2}(\.\d{3})+|\d+)(,\d+)?"  # "30.531,00": dots group, a comma decimals
log = logging.getLogger("specmem_cli.data")


@dataclass(frozen=True)
class Reading:
    """How to read a file; a checkpoint keeps its training file's reading so `forecast` reads alike.

    ``date_col``, ``id_col`` and ``value_cols`` name the clock, the series id of a long file and its
    value columns (None: found from the content); ``columns`` keeps only those series; ``fill``
    ('ffill' or 'interpolate') repairs missing values and puts missing clock steps back.
    """

    date_col: str | None = None
    id_col: str | None = None
    value_cols: list[str] | None = None
    columns: list[str] | None = None
    fill: str | None = None

    def key(self) -> tuple:
        """A hashable identity (the column lists as tuples): one read serves every run reading alike."""
        return tuple(tuple(value) if isinstance(value, list) else value for value in astuple(self))


@dataclass(frozen=True)
class LongLayout:
    """A long file's shape, so forecasts can be written back in it: series ``i`` of the table is
    ``value_columns[...]`` of the rows whose ``id_column`` is ``keys[i][0]``."""

    id_column: str
    keys: list[tuple[str, str]]  # per table column: (series id, value column)
    names: list[str]  # the table's column names: the id, or ``id/value`` where a file has several value columns

    def select(self, index: list[int]) -> LongLayout:
        return LongLayout(self.id_column, [self.keys[i] for i in index], [self.names[i] for i in index])

    def to_state(self) -> dict:
        return {"id_column": self.id_column, "keys": [list(key) for key in self.keys], "names": self.names}

    @classmethod
    def from_state(cls, state: dict) -> LongLayout:
        return cls(state["id_column"], [tuple(key) for key in state["keys"]], list(state["names"]))


@dataclass(frozen=True)
class SeriesTable:
    """A validated multivariate series: increasing timestamps (a record repeated whole may stand twice)
    and float values, finite unless read with ``allow_missing``."""

    dates: pd.DatetimeIndex  # naive; UTC where the file gave time zones
    values: np.ndarray  # [rows, columns], float64
    columns: list[str]
    date_column: str
    source: str
    timezone: str | None = None  # the file's zone, so forecasts are stamped in it
    layout: LongLayout | None = None
    sha256: str | None = None  # of the file's bytes: part of a run's identity
    reading: Reading = field(default_factory=Reading)
    date_reading: str | None = None  # how the clock was written ('years', 'YYYYMMDD integers', 'ISO dates', ...)
    date_format: str | None = None  # the strftime pattern of text dates ('%Y-%m'), for forecasts to write them so

    @property
    def n_rows(self) -> int:
        return self.values.shape[0]

    @property
    def time_axis(self) -> TimeAxis:
        return TimeAxis.of(self.dates)

    def to_frame(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.values, columns=self.columns)
        frame.insert(0, self.date_column, self.dates)
        return frame


def read_table(path: str | Path, reading: Reading | None = None, allow_missing: bool = False) -> SeriesTable:
    """Read and validate ``path``; ``allow_missing`` keeps NaN cells (a forecast checks only the rows it reads)."""
    path = Path(path)
    reading = reading or Reading()
    if path.is_dir():
        raise DataError(f"{path}: a directory, not a data file; give the CSV file inside it")
    if not path.is_file():
        raise DataError(f"{path}: file not found; check the path, or fetch a known set with `specmem download NAME`")
    raw = path.read_bytes()
    frame = parse_csv(raw, str(path))
    table = table_from_frame(frame, str(path), reading, allow_missing)
    return replace(table, sha256=hashlib.sha256(raw).hexdigest())


def parse_csv(raw: bytes, source: str) -> pd.DataFrame:
    """Parse CSV bytes, detecting the separator and a decimal comma from the first lines."""
    if b"\x00" in raw[:4096]:  # text files hold no NUL byte; Parquet, Excel, gzip and UTF-16 files do
        raise DataError(
            f"{source}: a binary file (Parquet, Excel, compressed or UTF-16?), not CSV text; save it as a UTF-8 CSV"
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
        log.info("note: %s is not UTF-8; read it as Latin-1", source)
    head = "\n".join(line for line in text[:20_000].splitlines()[:20] if line.strip())
    separator = _separator(head)
    decimal = "," if separator != "," and _DECIMAL_COMMA.search(head) else "."
    if separator != "," or decimal != ".":
        log.info("note: %s read with separator %r and decimal %r", source, separator, decimal)
    header = next(csv.reader(io.StringIO(text), delimiter=separator), [])
    repeated = next((name for index, name in enumerate(header) if name.strip() and name in header[:index]), None)
    if repeated is not None:  # pandas would rename the second 'x.1' and both would be trained on, unnoticed
        raise DataError(f"{source}: the header names column '{repeated}' twice; give each column its own name")
    try:
        frame = pd.read_csv(io.StringIO(text), sep=separator, decimal=decimal)
        frame.attrs["decimal"] = decimal  # how quoted numbers with group separators are to be read
        return frame
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"{source}: not a readable CSV ({first_line}); save it as text with a header row, "
            "one record per line, separated by commas, semicolons or tabs"
        ) from None


def _separator(head: str) -> str:
    """The separator that splits every one of the first lines into the same number (> 0) of fields."""
    lines = head.splitlines()
    best, best_count = ",", 0
    for separator in SEPARATORS:
        counts = {line.count(separator) for line in lines}
        if len(counts) == 1 and (count := counts.pop()) > best_count:
            best, best_count = separator, count
    return best


def table_from_frame(
    frame: pd.DataFrame, source: str, reading: Reading | None = None, allow_missing: bool = False
) -> SeriesTable:
    """Validate an in-memory frame exactly as :func:`read_table` validates a file."""
    reading = reading or Reading()
    if frame.shape[0] < 2 or frame.shape[1] < 1:
        raise DataError(
            f"{source}: needs a header row, at least one numeric column (and a date column, unless the rows are "
            f"evenly spaced steps) and at least two rows (found {frame.shape[1]} column(s), {frame.shape[0]} row(s))"
        )
    frame = frame.rename(columns=str)
    parsed = find_dates(frame, source, reading.date_col)
    rest = frame.drop(columns=[parsed.column]) if parsed.column in frame.columns else frame
    for option, named in (("--id-col", [reading.id_col]), ("--value-col", reading.value_cols or [])):
        if parsed.column in named:
            raise DataError(
                f"{source}: '{parsed.column}' is the date column; {option} names "
                + ("the column that tells the series apart" if option == "--id-col" else "the value column(s)")
            )
    id_column = _long_format_id(rest, parsed.dates, source, reading)
    if id_column is not None:
        dates, values, columns, layout = _pivot(rest, parsed.dates, id_column, source, reading)
    else:
        numeric = _numeric_columns(rest, source, reading.value_cols or list(rest.columns), reading.value_cols is None)
        dates, values, columns, layout = (
            parsed.dates,
            numeric.to_numpy(np.float64, copy=True),
            list(numeric.columns),
            None,
        )
    values, columns, layout = _select(values, columns, layout, reading.columns, source)
    if layout is None:
        _check_order(dates, values, source)
    dates, values = _fill_gaps(dates, values, reading.fill, source)
    if not allow_missing:
        values = _check_finite(values, columns, source, reading.fill)
    axis = TimeAxis.of(dates)
    if parsed.reading == "row order":
        log.info(
            "note: %s: no date column: the %d rows are taken in order as evenly spaced steps (forecasts are "
            "numbered in a '%s' column; --date-col names a column of step numbers); %d series",
            source,
            len(dates),
            parsed.column,
            len(columns),
        )
    elif axis.counted:
        log.info(
            "note: %s: steps numbered by column '%s' (no clock); %d rows x %d series",
            source,
            parsed.column,
            len(dates),
            len(columns),
        )
    else:
        log.info(
            "note: %s: dates from column '%s' (%s, %s steps%s); %d rows x %d series",
            source,
            parsed.column,
            parsed.reading,
            axis.describe(),
            f", time zone {parsed.timezone}, held in UTC" if parsed.timezone else "",
            len(dates),
            len(columns),
        )
    date_format = (
        written_format(frame[parsed.column], parsed.dates, parsed.reading, parsed.timezone)
        if parsed.column in frame.columns
        else None
    )
    return SeriesTable(
        dates,
        values,
        columns,
        parsed.column,
        source,
        parsed.timezone,
        layout,
        None,
        reading,
        parsed.reading,
        date_format,
    )


def _numeric_columns(frame: pd.DataFrame, source: str, names: list[str], guessing: bool = False) -> pd.DataFrame:
    """The numeric columns among ``names``; text columns are left out with a note, a numeric column
    with a few non-numeric cells is an error naming the first (silently dropping it would hide a typo).
    When ``guessing`` (no column was named), a row counter (0, 1, 2, … as a saved index writes) is left
    out too: it is the row's number, not a series to forecast."""
    kept, text, counters = {}, [], {}
    for name in names:
        if name not in frame.columns:
            raise DataError(
                f"{source}: no column named '{name}' (columns: {', '.join(frame.columns)}); fix --value-col"
            )
        column = frame[name]
        decimal = frame.attrs.get("decimal", ".")
        converted = column if pd.api.types.is_numeric_dtype(column) else _to_numbers(column, decimal)
        if pd.api.types.is_bool_dtype(column):
            converted = column.astype(np.float64)
        bad = converted.isna() & column.notna()
        if bad.any() and bad.sum() > 0.5 * column.notna().sum():
            text.append(name)
            continue
        if bad.any():
            row = int(np.nonzero(bad.to_numpy())[0][0])
            raise DataError(
                f"{source}: column '{name}' holds numbers and text, first {column.iloc[row]!r} at data row {row + 1}; "
                "fix that cell, or leave the column out with --columns"
            )
        if guessing and _is_row_counter(converted):
            counters[name] = converted.astype(np.float64)
            continue
        kept[name] = converted.astype(np.float64)
    if counters and kept:
        log.info(
            "note: %s: left out row counter column(s) %s (not series; name them with --value-col to keep)",
            source,
            ", ".join(counters),
        )
    elif counters:
        kept = counters  # a lone counter is all there is: keep it rather than refuse the file
    if text:
        log.info("note: %s: left out text column(s) %s (not series)", source, ", ".join(text))
    if not kept:
        raise DataError(f"{source}: no numeric column to forecast (text only: {', '.join(text)})")
    return pd.DataFrame(kept, index=frame.index)


def _to_numbers(column: pd.Series, decimal: str = ".") -> pd.Series:
    """Numbers from text cells, reading thousands separators where every number in the column is written
    with them or plainly: "12,345.6" (as spreadsheets export them quoted) in a file with decimal points,
    "12.345,6" in one whose decimal mark is the comma (the file's mark decides: "1.500" is 1.5 in the one
    and 1500 in the other)."""
    text = column.astype("string").str.strip()
    present = text.dropna()
    grouping, grouped = (_GROUPED_DECIMAL_COMMA, ".") if decimal == "," else (_GROUPED_NUMBER, ",")
    if present.str.fullmatch(grouping).all() and text.str.contains(grouped, regex=False).any():
        text = text.str.replace(grouped, "", regex=False)
        if decimal == ",":
            text = text.str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce")


def _is_row_counter(column: pd.Series) -> bool:
    """Integers rising by exactly one on every row: a row index, whatever its name (a float column
    such as 0.0, 1.0, … was written as measurements, so it stays)."""
    if not pd.api.types.is_integer_dtype(column):
        return False
    values = column.to_numpy(np.int64)  # an integer column has no NaN to guard against
    return len(values) > 2 and bool((np.diff(values) == 1).all())


def _long_format_id(frame: pd.DataFrame, dates: pd.DatetimeIndex, source: str, reading: Reading) -> str | None:
    """The id column of a long file: named, or the column that makes (id, date) unique where dates repeat."""
    if reading.id_col is not None:
        if reading.id_col not in frame.columns:
            raise DataError(
                f"{source}: no column named '{reading.id_col}' (columns: {', '.join(frame.columns)}); fix --id-col"
            )
        return reading.id_col
    repeated = dates.duplicated()
    if not repeated.any():
        return None
    keyed = pd.DataFrame({"date": dates.asi8}, index=frame.index)
    text = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    whole_numbers = [  # integer ids (1, 2, 3): only a few values, each repeated, in a file of some length
        c
        for c in frame.columns
        if pd.api.types.is_integer_dtype(frame[c]) and len(frame) >= 20 and frame[c].nunique() <= len(frame) // 10
    ]
    for candidate in [*text, *whole_numbers]:
        column = frame[candidate]
        if column.isna().any() or column.nunique() < 2 or column.value_counts().min() < 2:
            continue
        if not keyed.assign(id=column.to_numpy()).duplicated().any():
            return candidate
    return None


def _pivot(
    frame: pd.DataFrame, dates: pd.DatetimeIndex, id_column: str, source: str, reading: Reading
) -> tuple[pd.DatetimeIndex, np.ndarray, list[str], LongLayout]:
    """Stacked series side by side on the union of their dates; a series' missing start or end is cut
    to the span all series share (or, with ``fill``, filled), and the note says which."""
    ids = frame[id_column].astype(str)
    if pd.DataFrame({"id": ids.to_numpy(), "date": dates.asi8}).duplicated().any():
        raise DataError(f"{source}: series '{id_column}' has a date twice; remove or aggregate the duplicate rows")
    others = frame.drop(columns=[id_column])
    numeric = _numeric_columns(others, source, reading.value_cols or list(others.columns))
    numeric.index = pd.MultiIndex.from_arrays([dates, ids.to_numpy()])
    wide = numeric.unstack(level=1).sort_index()
    order = list(dict.fromkeys(ids))  # series in the file's order
    keys = [(series, value) for series in order for value in numeric.columns]
    wide = wide[[(value, series) for series, value in keys]]
    names = [series if len(numeric.columns) == 1 else f"{series}/{value}" for series, value in keys]
    layout = LongLayout(id_column, keys, names)
    values = wide.to_numpy(np.float64)
    present = np.isfinite(values)
    starts = [int(np.argmax(col)) for col in present.T]
    ends = [len(values) - int(np.argmax(col[::-1])) for col in present.T]
    first, last = max(starts), min(ends)
    if first >= last - 1:
        spans = ", ".join(
            f"{n} {wide.index[s].date()}..{wide.index[e - 1].date()}"
            for n, s, e in zip(names, starts, ends, strict=True)
        )
        raise DataError(
            f"{source}: the series share no stretch of dates ({spans}); keep overlapping ones with --columns"
        )
    uneven = [n for n, s, e in zip(names, starts, ends, strict=True) if s != first or e != last]
    if uneven and reading.fill is None:
        limits = [f"{n} starts {_stamp(wide.index[s])}" for n, s in zip(names, starts, strict=True) if s == first]
        limits += [f"{n} ends {_stamp(wide.index[e - 1])}" for n, e in zip(names, ends, strict=True) if e == last]
        log.info(
            "note: %s: series cover different dates; kept %s..%s (%d dates), the stretch all %d share (%s); "
            "--fill fills the others' missing dates instead, --columns leaves series out",
            source,
            _stamp(wide.index[first]),
            _stamp(wide.index[last - 1]),
            last - first,
            len(names),
            ", ".join(limits[:4]) + (" ..." if len(limits) > 4 else ""),
        )
        wide, values = wide.iloc[first:last], values[first:last]
    elif uneven:
        log.info("note: %s: filled the missing start or end of %s (--fill %s)", source, ", ".join(uneven), reading.fill)
    log.info("note: %s: long format, %d series from column '%s'", source, len(order), id_column)
    return pd.DatetimeIndex(wide.index), values, names, layout


def _stamp(timestamp: pd.Timestamp) -> str:
    return str(timestamp.date()) if timestamp == timestamp.normalize() else str(timestamp)


def _select(
    values: np.ndarray, columns: list[str], layout: LongLayout | None, wanted: list[str] | None, source: str
) -> tuple[np.ndarray, list[str], LongLayout | None]:
    if wanted is None:
        return values, columns, layout
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise DataError(f"{source}: no series {', '.join(unknown)} (series: {', '.join(columns)}); fix --columns")
    index = [columns.index(c) for c in wanted]
    kept_layout = None if layout is None else layout.select(index)
    return values[:, index], list(wanted), kept_layout


def _fill_gaps(
    dates: pd.DatetimeIndex, values: np.ndarray, fill: str | None, source: str
) -> tuple[pd.DatetimeIndex, np.ndarray]:
    """Report missing clock steps; with ``fill``, put them back as missing rows for the fill to repair."""
    axis = TimeAxis.of(dates)
    gaps = axis.gaps(dates) if len(dates) > 2 else []
    if not gaps:
        return dates, values
    missing = sum(length for _, length in gaps)
    where, longest = max(gaps, key=lambda gap: gap[1])
    if fill is None:
        log.info(
            "note: %s: %d gap(s) in the %s clock, %d step(s) missing, longest %d after %s; windows across a gap "
            "join its two sides (`specmem train --fill interpolate` puts the missing steps back)",
            source,
            len(gaps),
            axis.describe(),
            missing,
            longest,
            shown(where),
        )
        return dates, values
    positions = axis.positions(dates).numpy()
    complete = axis.after(dates[0], int(positions[-1]))
    if not np.array_equal(axis.positions(complete).numpy(), np.arange(1, positions[-1] + 1)):
        return dates, values
    full_dates = dates[:1].append(complete)
    full = np.full((len(full_dates), values.shape[1]), np.nan)
    full[positions] = values
    log.info(
        "note: %s: put %d missing %s step(s) back in %d gap(s), to be filled (--fill %s)",
        source,
        missing,
        axis.describe(),
        len(gaps),
        fill,
    )
    return full_dates, full


def _check_finite(values: np.ndarray, columns: list[str], source: str, fill: str | None) -> np.ndarray:
    bad = ~np.isfinite(values)
    if not bad.any():
        return values
    if fill is None:
        row, col = (int(i) for i in np.argwhere(bad)[0])
        raise DataError(
            f"{source}: {int(bad.sum())} missing or NaN/inf value(s), first in column '{columns[col]}' at data row "
            f"{row + 1}; clean the file or pass --fill ffill|interpolate"
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
    conflicting = [row for row in repeated if not np.array_equal(values[row], values[row - 1], equal_nan=True)]
    if conflicting:
        first = dates[conflicting[0]]
        raise DataError(
            f"{source}: duplicated timestamp {shown(first)} with different values; remove or aggregate the duplicate rows "
            "(several series stacked in one file? name their id column with --id-col)"
        )
    if repeated.size:
        log.info(
            "note: %s: %d row(s) repeated whole (same time, same values; first at %s) are kept, as the TSL "
            "protocol counts them; remove them from the file if they are mistakes",
            source,
            repeated.size,
            dates[repeated[0]],
        )
    if not dates.is_monotonic_increasing:  # repeated rows were adjacent: still non-decreasing
        steps = np.diff(dates.asi8)
        row = int(np.nonzero(steps < 0)[0][0]) + 1
        raise DataError(
            f"{source}: timestamps are not sorted (data row {row + 1}, {shown(dates[row])}, comes before the row above it); "
            "sort the file by date"
        )
