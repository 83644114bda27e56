"""Find a table's date column by its content and parse it, whatever its name or encoding.

Why by content: real files call the clock ``month``, ``datetime_gmt``, ``YEAR`` or ``ds``, and write
it as ISO text (with or without a time zone), ``Jan 1 2000``, day-first ``13/01/2020``, ``YYYYMMDD``
integers, bare years, or Unix seconds in a column named like a clock. Integers become dates only when
they read as dates (eight-digit days, six-digit months, four-digit years, seconds or milliseconds since
1970 in a clock-named column), never as nanoseconds since 1970. Time-zone-aware stamps are held in UTC
(a regular clock, even across daylight-saving changes) and written back in their own zone.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from specmem_cli.data.calendar import COUNTED_ORIGIN, COUNTED_STEP, MAX_COUNTED_SPACING
from specmem_cli.errors import DataError

_SAMPLE = 64  # values tried before a whole column is parsed
_NUMBER = re.compile(r"^\s*[-+]?\d+(\.\d*)?\s*$")
_NUMERIC_DATE = r"^(\d{1,2})[/.-](\d{1,2})[/.-]\d{2,4}\b"
_CLOCK_WORDS = ("date", "time", "year", "month", "day", "week", "period", "epoch", "unix", "stamp")
_CLOCK_TOKENS = ("ds", "ts", "t", "dt")  # short names count only as a whole word ('ds', not 'records')
_UNIX_SECONDS = (3e8, 4.2e9)  # 1979 to 2103: seconds since 1970 as exported by databases and APIs


@dataclass(frozen=True)
class ParsedDates:
    """A parsed date column: naive timestamps (UTC where the file gave zones) and how they were read."""

    column: str
    dates: pd.DatetimeIndex
    timezone: str | None  # the file's zone ('UTC', '+01:00', 'Europe/London'); None for naive stamps
    reading: str  # how the cells were read, for the one-line note


INTEGER_READINGS = {"years": "%Y", "YYYYMMDD integers": "%Y%m%d", "YYYYMM integers": "%Y%m"}
UNIX_READINGS = {"Unix seconds": "s", "Unix milliseconds": "ms"}
STEP_READINGS = ("step numbers", "row order")  # no clock: numbered steps (a named column) or the rows themselves
ROW_ORDER_COLUMN = "step"  # the step column a forecast of a file without one is written with


def written_like(dates: pd.DatetimeIndex, reading: str | None) -> pd.Index:
    """Timestamps in the file's own encoding where it used integers (2009, 20090131, 1577836800), so
    a forecast file reads like its input; other encodings are written as ISO timestamps."""
    if reading in INTEGER_READINGS:
        return pd.Index(dates.strftime(INTEGER_READINGS[reading]).astype(np.int64), name=dates.name)
    if reading in UNIX_READINGS:
        since_1970 = (dates - pd.Timestamp(0)) // pd.Timedelta(1, unit=UNIX_READINGS[reading])
        return pd.Index(np.asarray(since_1970, dtype=np.int64), name=dates.name)
    if reading in STEP_READINGS:
        return pd.Index(np.asarray((dates - COUNTED_ORIGIN) // COUNTED_STEP, dtype=np.int64), name=dates.name)
    return dates


TEXT_READINGS = ("ISO dates", "text dates", "text dates, day first")


def written_format(cells: pd.Series, dates: pd.DatetimeIndex, reading: str, timezone: str | None) -> str | None:
    """The ``strftime`` pattern a file wrote its text dates in ('%Y-%m' for '1961-01', '%d/%m/%Y'), where
    it reproduces the first and last cells exactly, so that forecasts read like their input; None keeps
    ISO timestamps (zoned stamps, or a pattern that does not round-trip)."""
    if reading not in TEXT_READINGS or timezone is not None or len(cells) == 0:
        return None
    text = cells.astype(str).str.strip().to_numpy()
    pattern = guess_datetime_format(text[0], dayfirst=reading.endswith("day first"))
    if pattern is None:
        return None
    sample = np.unique(np.r_[0 : min(64, len(text)), max(0, len(text) - 64) : len(text)])
    return pattern if (pd.DatetimeIndex(dates[sample]).strftime(pattern) == text[sample]).all() else None


def shown(stamp: pd.Timestamp) -> str:
    """A timestamp in a message: ``step 299`` where it is a step number (see :func:`counted_steps`)."""
    offset = stamp - COUNTED_ORIGIN
    return f"step {offset // COUNTED_STEP}" if pd.Timedelta(0) <= offset < pd.Timedelta(1, unit="s") else str(stamp)


def counted_steps(steps: np.ndarray) -> pd.DatetimeIndex:
    """Step numbers held on the counted axis (:data:`~specmem_cli.data.calendar.COUNTED_STEP`)."""
    return pd.DatetimeIndex(COUNTED_ORIGIN + pd.to_timedelta(np.asarray(steps, dtype=np.int64), unit="ns"))


NO_CLOCK_FIX = (
    "name a column of rising step numbers with --date-col (a file of numbers only, none rising on every row, is "
    "read in row order)"
)


def find_dates(frame: pd.DataFrame, source: str, date_col: str | None = None) -> ParsedDates:
    """The date column (``date_col``, else the leftmost column whose content reads as dates), parsed."""
    if date_col is not None:
        if date_col not in frame.columns:
            raise DataError(
                f"{source}: no column named '{date_col}' (columns: {', '.join(map(str, frame.columns))}); fix --date-col"
            )
        parsed = parse_date_column(frame[date_col], accept_years=True, accept_unix=True)
        if parsed is None and _integer_coded(frame[date_col]):
            # named as the clock, whole numbers: step numbers (their order is checked with the rows, per series
            # in a long file)
            steps = frame[date_col].to_numpy(np.int64)
            spacing = np.diff(np.unique(steps))
            if spacing.size and np.median(spacing) > MAX_COUNTED_SPACING:
                raise DataError(
                    f"{source}: step numbers in '{date_col}' are {int(np.median(spacing))} apart; number the steps "
                    f"1, 2, 3 (or at most {MAX_COUNTED_SPACING} apart)"
                )
            return ParsedDates(str(date_col), counted_steps(steps), None, "step numbers")
        if parsed is None:
            _report_unparseable(frame[date_col], source, date_col)
        return ParsedDates(str(date_col), *parsed)
    fallback = None
    for column in frame.columns:
        named = _names_a_clock(str(column))
        if _integer_coded(frame[column]) and not (named or _sorted(frame[column])):
            parsed = parse_date_column(frame[column], accept_years=False)
        else:
            parsed = parse_date_column(frame[column], accept_years=True, accept_unix=named)
        if parsed is None:
            continue
        if parsed[2] != "years":
            return ParsedDates(str(column), *parsed)
        fallback = fallback or ParsedDates(str(column), *parsed)
    if fallback is not None:
        return fallback
    for column in frame.columns:  # a clock column with a few bad cells: name the first one
        if not pd.api.types.is_numeric_dtype(frame[column]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                parsed = pd.to_datetime(frame[column].astype(str), errors="coerce", format="mixed")
            if parsed.notna().mean() >= 0.5:
                _report_unparseable(frame[column], source, str(column))
    if not any(_could_be_a_clock(frame[column], str(column)) for column in frame.columns):
        # numbers only, none of them a clock that did not read: evenly spaced rows without a clock
        return ParsedDates(ROW_ORDER_COLUMN, counted_steps(np.arange(len(frame))), None, "row order")
    raise DataError(
        f"{source}: no column reads as dates (ISO text, 'Jan 1 2000', YYYYMMDD or year integers, "
        f"or Unix seconds in a column named like a clock); name the clock column with --date-col, or {NO_CLOCK_FIX}"
    )


def parse_date_column(
    column: pd.Series, accept_years: bool = True, accept_unix: bool = False
) -> tuple[pd.DatetimeIndex, str | None, str] | None:
    """``(dates, timezone, reading)`` if every cell of ``column`` is a date, else None. Unix seconds
    are accepted only where the column is known to be a clock (its name, or ``--date-col``): a
    column of ten-digit numbers is otherwise just as likely to be counts."""
    if column.isna().any() or len(column) == 0:
        return None
    if pd.api.types.is_datetime64_any_dtype(column):
        return _with_zone(pd.DatetimeIndex(column), "timestamps")
    if pd.api.types.is_bool_dtype(column):
        return None
    if pd.api.types.is_numeric_dtype(column) or column.astype(str).str.match(_NUMBER).all():
        return _integer_dates(column, accept_years, accept_unix)
    text = column.astype(str).str.strip()
    if _parse_text(text.head(_SAMPLE)) is None:
        return None
    return _parse_text(text)


def _parse_text(text: pd.Series) -> tuple[pd.DatetimeIndex, str | None, str] | None:
    """ISO text is read as ISO (fast, never day-first). Numeric dates such as ``01/02/2020`` are read
    day-first when a first field exceeds 12 (or month-first leaves the rows out of time order), one
    reading for the whole column, so no cell is read one way and its neighbour the other."""
    iso = _to_datetime(text, {"format": "ISO8601"})
    if iso is not None:
        return (*iso, "ISO dates")
    fields = text.str.extract(_NUMERIC_DATE)
    day_first = None
    if fields.notna().all().all():
        first, second = fields[0].astype(int), fields[1].astype(int)
        if (first > 12).any() and (second > 12).any():
            return None
        day_first = bool((first > 12).any()) or (None if not (second > 12).any() else False)
    if day_first is not None:
        parsed = _to_datetime(text, {"format": "mixed", "dayfirst": day_first})
        return None if parsed is None else (*parsed, "text dates, day first" if day_first else "text dates")
    # Every field <= 12: both readings parse; keep the one in time order with the most regular steps.
    candidates = []
    for dayfirst in (False, True):
        parsed = _to_datetime(text, {"format": "mixed", "dayfirst": dayfirst})
        if parsed is not None:
            ordered = parsed[0].is_monotonic_increasing or _monotonic_within_runs(parsed[0])
            irregularity = len(np.unique(np.diff(parsed[0].asi8)))
            candidates.append((not ordered, irregularity, dayfirst, parsed))
    if not candidates:
        return None
    *_, dayfirst, parsed = min(candidates, key=lambda c: c[:3])
    return (*parsed, "text dates, day first" if dayfirst else "text dates")


def _to_datetime(text: pd.Series, options: dict) -> tuple[pd.DatetimeIndex, str | None] | None:
    with warnings.catch_warnings():  # pandas warns when it guesses a format per element; we check the result
        warnings.simplefilter("ignore")
        try:
            parsed = pd.to_datetime(text, errors="coerce", **options)
        except (ValueError, TypeError, OverflowError):
            # Several UTC offsets in one column (daylight saving): one clock in UTC.
            try:
                parsed = pd.to_datetime(text, errors="coerce", utc=True, **options)
            except (ValueError, TypeError, OverflowError):
                return None
            if parsed.isna().any():
                return None
            return pd.DatetimeIndex(parsed).tz_localize(None).as_unit("ns"), "UTC"
    if parsed.isna().any():
        return None
    dates, zone, _ = _with_zone(pd.DatetimeIndex(parsed), "")
    return dates, zone


def _with_zone(dates: pd.DatetimeIndex, reading: str) -> tuple[pd.DatetimeIndex, str | None, str]:
    if dates.tz is None:
        return dates.as_unit("ns"), None, reading
    return dates.tz_convert("UTC").tz_localize(None).as_unit("ns"), str(dates.tz), reading


def _integer_coded(column: pd.Series) -> bool:
    if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column) or column.isna().any():
        return False
    values = column.to_numpy(dtype=np.float64)
    return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))


def _integer_dates(
    column: pd.Series, accept_years: bool, accept_unix: bool
) -> tuple[pd.DatetimeIndex, str | None, str] | None:
    numbers = pd.to_numeric(column, errors="coerce")
    if not _integer_coded(numbers):
        return None
    values = numbers.to_numpy(dtype=np.int64)
    if np.all((values >= 10000101) & (values <= 29991231)):
        text, reading = values.astype(str), "YYYYMMDD integers"
    elif np.all((values >= 100001) & (values <= 299912)) and np.all((values % 100 >= 1) & (values % 100 <= 12)):
        text, reading = values.astype(str), "YYYYMM integers"
    elif accept_years and np.all((values >= 1000) & (values <= 2999)):
        text, reading = values.astype(str), "years"
    elif accept_unix:
        return _unix_dates(values)
    else:
        return None
    parsed = pd.to_datetime(pd.Series(text), format=INTEGER_READINGS[reading], errors="coerce")
    if parsed.isna().any():
        return None
    return pd.DatetimeIndex(parsed).as_unit("ns"), None, reading


def _unix_dates(values: np.ndarray) -> tuple[pd.DatetimeIndex, str | None, str] | None:
    low, high = _UNIX_SECONDS
    for reading, unit, scale in (("Unix seconds", "s", 1), ("Unix milliseconds", "ms", 1000)):
        if np.all((values >= low * scale) & (values <= high * scale)):
            return pd.DatetimeIndex(pd.to_datetime(values, unit=unit)).as_unit("ns"), None, reading
    return None


def _could_be_a_clock(column: pd.Series, name: str) -> bool:
    """Whether a column that did not read as dates may still be the file's clock, so that reading the rows in
    order would train on it as a series: text, a clock's name, numbers that rise on every row (Unix seconds
    with fractions, Excel serial days; a row counter 0, 1, 2, ... excepted), or whole numbers most of which
    read as dates (YYYYMMDD with a typo)."""
    if not pd.api.types.is_numeric_dtype(column) or _names_a_clock(name):
        return True
    values = column.to_numpy(dtype=np.float64)
    steps = np.diff(values)
    if len(values) >= 3 and np.all(np.isfinite(values)) and (steps > 0).all() and (steps != 1).any():
        return True
    whole = values[np.isfinite(values) & (values == np.round(values))]
    dated = ((whole >= 10000101) & (whole <= 29991231)) | ((whole >= _UNIX_SECONDS[0]) & (whole <= _UNIX_SECONDS[1]))
    return bool(len(values) and dated.sum() >= 0.5 * len(values))


def _sorted(column: pd.Series) -> bool:
    """A sorted integer column may be a clock (years); an unsorted one of values 1000-2999 is data."""
    return bool(np.all(np.diff(column.to_numpy(dtype=np.float64)) >= 0))


def _names_a_clock(name: str) -> bool:
    lowered = name.strip().lower()
    return any(word in lowered for word in _CLOCK_WORDS) or any(
        token in _CLOCK_TOKENS for token in re.split(r"[^a-z0-9]+", lowered)
    )


def _monotonic_within_runs(dates: pd.DatetimeIndex) -> bool:
    """Sorted within each stacked series of a long-format file (time goes back only where a series begins)."""
    steps = np.diff(dates.asi8)
    resets = int((steps < 0).sum())
    return 0 < resets < len(dates) // 4


def _report_unparseable(column: pd.Series, source: str, name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(column.astype(str), errors="coerce", format="mixed")
    bad = (parsed.isna() | column.isna()).to_numpy().nonzero()[0]
    row = int(bad[0]) if bad.size else 0
    if _integer_coded(column) and bad.size == len(column):
        raise DataError(
            f"{source}: date column '{name}' holds whole numbers that are neither dates nor rising step numbers "
            f"(first '{column.iloc[0]}'); sort the file by it, or choose another column with --date-col"
        )
    raise DataError(
        f"{source}: date column '{name}' has {max(bad.size, 1)} value(s) that are not dates, first "
        f"'{column.iloc[row]}' at data row {row + 1}; fix those cells or choose another column with --date-col"
    )
