"""Forecasts from a checkpoint for a user's CSV, in the original units, with future timestamps.

The checkpoint alone rebuilds the model and its scaler; the CSV must carry the same columns the
model was trained on. A forecast "from" a timestamp reads the ``seq_len`` rows before it.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from specmem_cli.checkpoint import LoadedRun, atomic_write, is_stdout, link_target, load_run
from specmem_cli.data.calendar import TimeAxis
from specmem_cli.data.dates import STEP_READINGS, counted_steps, written_like
from specmem_cli.data.table import LongLayout, Reading, SeriesTable, read_table
from specmem_cli.errors import DataError
from specmem_cli.intervals import TRACKED_LEVELS, LevelTracker, check_levels, input_spread, level_name
from specmem_cli.memory import memory_of
from specmem_cli.models import forecast as run_model


@dataclass
class WindowForecast:
    """One forecast: its origin row, timestamps, values (original units) and actuals where known."""

    origin: int
    dates: pd.Index  # timestamps, in the input's zone; integers where the input wrote years or YYYYMMDD
    forecast: np.ndarray  # [pred_len, outputs]
    actual: np.ndarray | None  # same shape, NaN past the end of the file
    mse: float | None = None  # on scaled values, as in training, when every actual exists
    mae: float | None = None
    quantiles: dict[float, np.ndarray] = field(default_factory=dict)  # level -> [pred_len, outputs], original units


@dataclass
class ForecastResult:
    columns: list[str]
    windows: list[WindowForecast]
    metadata: dict = field(default_factory=dict)
    layout: LongLayout | None = None  # the input was long format: write the forecasts back in it
    date_column: str = "date"
    history: pd.DataFrame | None = None  # the last window's input rows (outputs, original units), for plots
    date_format: str | None = None  # how the input wrote its text dates ('%Y-%m'): files are written the same way

    def stamps(self, dates: pd.Index) -> pd.Index:
        """``dates`` as the files write them: in the input's own text pattern where it has one."""
        return (
            pd.Index(dates.strftime(self.date_format))
            if self.date_format and isinstance(dates, pd.DatetimeIndex)
            else dates
        )


def memory_description(run: LoadedRun) -> str:
    """What memory the forecasts use: off, reset (empty), frozen from training, or built from data."""
    memory = memory_of(run.model)
    return "off (model has no memory)" if memory is None else memory.describe(run.checkpoint.memory_at_eval)


def time_axis(run: LoadedRun, table: SeriesTable) -> TimeAxis:
    """The training clock, so a learned cycle keeps its phase on any file; a file on another clock (daily
    rows for an hourly model) is an error, not a silent misreading."""
    trained = TimeAxis.from_state(run.checkpoint.time_axis)
    if table.n_rows > 2:
        own = table.time_axis
        if (own.step, own.months, own.business_days) != (trained.step, trained.months, trained.business_days):
            raise DataError(
                f"{table.source}: {own.describe()} steps, but the model was trained on {trained.describe()} data; "
                "give a file on the training clock"
            )
    return trained


def check_columns(table: SeriesTable, run: LoadedRun) -> None:
    expected = run.checkpoint.table_columns
    missing = [c for c in expected if c not in table.columns]
    extra = [c for c in table.columns if c not in expected]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"extra {', '.join(extra)}"] if extra else []
        )
        raise DataError(
            f"{table.source}: series differ from the training data ({'; '.join(parts)}); give the same series"
        )


def check_frequency(axis: TimeAxis, last: pd.Timestamp, freq: str | None) -> None:
    """``--freq`` may only say what the data's clock says (it documents it; it never overrides it)."""
    if freq is None:
        return
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        raise DataError(f"--freq '{freq}' is not a pandas frequency; use e.g. h, 15min, D, W, MS") from None
    claimed = pd.date_range(last, periods=4, freq=offset)[1:]
    if not claimed.equals(axis.after(last, 3)):
        raise DataError(
            f"--freq {freq} contradicts the data's {axis.describe()} steps; leave --freq out (the step comes from the data)"
        )


def reading_of(run: LoadedRun) -> Reading:
    """Read a forecast's input as the training file was read (same clock column, long-format id, series)."""
    stored = dict(run.checkpoint.reading)
    stored["date_col"] = run.checkpoint.date_column or stored.get("date_col")
    stored["fill"] = None  # a forecast reports missing input rows rather than inventing them
    return Reading(**stored)


def forecast(
    checkpoint: Path,
    input_csv: Path,
    start: str | None = None,
    rolling: int | None = None,
    freq: str | None = None,
    quantiles: list[float] | None = None,
) -> ForecastResult:
    """Forecast from the end of ``input_csv``, from ``start``, or every ``rolling`` rows from ``start``.

    Forecast timestamps follow the training clock from each origin's last input row; actuals are
    matched by timestamp (a gap in the file leaves them empty, never shifted). ``quantiles`` adds each
    level's forecast beside the point forecast, from the run's validation calibration
    (:mod:`specmem_cli.intervals`).
    """
    run = load_run(checkpoint)
    calibration = run.calibration() if quantiles is not None else None
    levels = check_levels(quantiles, calibration) if quantiles is not None else None
    # a backtest's levels adapt as its actuals arrive, starting from the validation calibration's
    tracker = LevelTracker(run.spec.pred_len, calibration.adapt_rate()) if levels is not None and rolling else None
    table = read_table(input_csv, reading_of(run), allow_missing=True)
    check_columns(table, run)
    seq_len, pred_len = run.config.data.seq_len, run.spec.pred_len
    columns = run.checkpoint.columns
    outputs = run.checkpoint.output_columns
    values = table.values[:, [table.columns.index(c) for c in columns]]
    axis = time_axis(run, table)
    check_frequency(axis, table.dates[-1], freq)
    first = _origin_row(table, start) if start is not None else table.n_rows
    if rolling is not None and rolling < 1:
        raise DataError("--rolling needs a positive step (rows between forecast origins)")
    if rolling is not None and start is None:  # from the end there is one origin: no backtest
        raise DataError("--rolling backtests from --start to the end of the file; add --start TIMESTAMP")
    origins = list(range(first, table.n_rows + 1, rolling)) if rolling else [first]
    if origins[0] < seq_len:
        raise DataError(
            f"{table.source}: a forecast from row {origins[0] + 1} needs {seq_len} rows before it, there are {origins[0]}; "
            "give more history or a later --start"
        )
    scaled = run.scaler.transform(values)
    # the forecast from the file's end reads the levels the test split ended with, if the file reaches its last actual
    from_end = calibration.levels_from_end(table.dates[-1].value) if levels is not None and start is None else None
    positions = axis.positions(table.dates)
    n_out = len(outputs)
    windows = []
    for origin in origins:
        window = scaled[origin - seq_len : origin]
        if not np.isfinite(window).all():
            bad_row, bad_column = np.argwhere(~np.isfinite(window))[-1]
            where = f"last at data row {origin - seq_len + bad_row + 1}, column '{columns[bad_column]}'"
            later = "" if origin >= table.n_rows else ", or forecast from a later --start"
            raise DataError(
                f"{table.source}: missing or NaN/inf values in the {seq_len} rows before data row {origin + 1} "
                f"({where}); fill those cells in the file{later}"
            )
        with torch.no_grad():
            inputs = torch.from_numpy(window).float()[None]
            prediction = run_model(run.model, inputs, positions[origin - seq_len : origin - seq_len + 1])
            prediction = prediction[0, :, -n_out:].double().numpy()
        dates = axis.after(table.dates[origin - 1], pred_len)
        known = _actuals(table, scaled[:, -n_out:], dates)
        result = WindowForecast(
            origin,
            written_like(_in_zone(dates, table.timezone), table.date_reading),
            run.scaler.inverse_transform(prediction, slice(-n_out, None)),
            None,
        )
        if np.isfinite(known).any():
            result.actual = run.scaler.inverse_transform(known, slice(-n_out, None))
        if np.isfinite(known).all():
            error = prediction - known
            result.mse, result.mae = float((error**2).mean()), float(np.abs(error).mean())
        if levels is not None:
            tracked = tracker.catch_up(origin) if tracker is not None else from_end or TRACKED_LEVELS
            spread = input_spread(torch.from_numpy(window)[None], n_out)
            read_at = calibration.read_levels(levels, tracked)
            bounds = prediction[None] + calibration.offsets(calibration.quantiles(read_at), spread)[0]
            result.quantiles = {
                float(level): run.scaler.inverse_transform(bound, slice(-n_out, None))
                for level, bound in zip(levels, bounds[: len(levels)], strict=True)
            }
            if tracker is not None and np.isfinite(known).all():
                tracker.observe(origin, (known[None] < bounds[len(levels) :]).mean(axis=(1, 2)), rows=rolling)
        windows.append(result)
    layout = run.checkpoint.layout
    metadata = {
        "checkpoint": str(run.path),
        "input": str(input_csv),
        "seq_len": seq_len,
        "pred_len": pred_len,
        "memory": memory_description(run),
        "frequency": axis.describe(),
        "timezone": table.timezone,
        "units": "original (inverse of the training scaler)",
        "metrics_units": "scaled, as in training",
    }
    if levels is not None:
        metadata["quantile_levels"] = [float(level) for level in levels]
        metadata["intervals"] = calibration.describe("online" if rolling else "adapted" if from_end else "fixed")
    result_layout = LongLayout.from_state(layout) if layout else None
    last = origins[-1]
    history = pd.DataFrame(
        values[last - seq_len : last, -n_out:],
        columns=outputs,
        index=written_like(_in_zone(table.dates[last - seq_len : last], table.timezone), table.date_reading),
    )
    return ForecastResult(outputs, windows, metadata, result_layout, table.date_column, history, table.date_format)


def _actuals(table: SeriesTable, scaled_outputs: np.ndarray, dates: pd.DatetimeIndex) -> np.ndarray:
    """The file's (scaled) values at ``dates``, NaN where the file has no row for a timestamp."""
    rows = table.dates.searchsorted(dates)
    inside = rows < table.n_rows
    found = np.zeros(len(dates), dtype=bool)
    found[inside] = table.dates[rows[inside]] == dates[inside]
    known = np.full((len(dates), scaled_outputs.shape[1]), np.nan)
    known[found] = scaled_outputs[rows[found]]
    return known


def _in_zone(dates: pd.DatetimeIndex, timezone: str | None) -> pd.DatetimeIndex:
    """UTC-held stamps back in the file's own zone (naive stamps stay naive)."""
    return dates if timezone is None else dates.tz_localize("UTC").tz_convert(timezone)


def _origin_row(table: SeriesTable, start: str) -> int:
    if table.date_reading in STEP_READINGS:  # a file without a clock: --start is a step number
        if not re.fullmatch(r"\s*[+-]?\d{1,18}\s*", start):
            raise DataError(f"--start '{start}' is not a step number; {table.source} numbers its rows, give one")
        timestamp = counted_steps(np.array([int(start)]))[0]
        row = int(table.dates.searchsorted(timestamp))
        if row >= table.n_rows or table.dates[row] != timestamp:
            raise DataError(f"--start {start} is not a step of {table.source}; give one of its step numbers")
        return row
    try:
        timestamp = pd.Timestamp(start)
    except ValueError:
        raise DataError(f"--start '{start}' is not a date") from None
    if timestamp.tz is not None:
        timestamp = timestamp.tz_convert("UTC").tz_localize(None)
    elif table.timezone is not None:
        timestamp = timestamp.tz_localize(table.timezone).tz_convert("UTC").tz_localize(None)
    row = int(table.dates.searchsorted(timestamp))
    if row >= table.n_rows or table.dates[row] != timestamp:
        raise DataError(f"--start {start} is not a timestamp in {table.source}; give one of its dates")
    return row


FORMATS = ("csv", "parquet", "json")


def output_format(path: Path, explicit: str | None) -> str:
    named = path.suffix.lstrip(".").lower()
    fmt = (explicit or named).lower()
    if fmt not in FORMATS:
        raise DataError(f"unknown output format '{fmt or path.name}'; use a .csv, .parquet or .json file (or --format)")
    if named in FORMATS and named != fmt:
        raise DataError(
            f"--format {fmt} would write {fmt.upper()} into {path.name}; name the file .{fmt} or drop --format"
        )
    return fmt


def to_frame(result: ForecastResult) -> pd.DataFrame:
    """One row per (origin, forecast step); forecast columns named as the input, actuals as ``NAME_actual``.
    A long-format input gets long-format output: one row per (origin, series, step), under its own id column."""
    frames = []
    for window in result.windows:
        parts = _long_parts(result, window) if result.layout else [_wide_part(result, window)]
        for frame in parts:
            if len(result.windows) > 1:
                frame.insert(0, "origin", result.stamps(window.dates)[0])
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _wide_part(result: ForecastResult, window: WindowForecast) -> pd.DataFrame:
    # every column gathered first and the frame built once: inserting hundreds of columns one by one
    # fragments it (pandas warns once per column on a wide file)
    columns = {result.date_column: result.stamps(window.dates)}
    columns.update({column: window.forecast[:, index] for index, column in enumerate(result.columns)})
    for index, column in enumerate(result.columns):
        for level, values in window.quantiles.items():
            columns[f"{column}_q{level_name(level)}"] = values[:, index]
    if window.actual is not None:
        columns.update({f"{column}_actual": window.actual[:, index] for index, column in enumerate(result.columns)})
    return pd.DataFrame(columns)


def _long_parts(result: ForecastResult, window: WindowForecast) -> list[pd.DataFrame]:
    keys = dict(zip(result.layout.names, result.layout.keys, strict=True))
    by_series: dict[str, dict[str, np.ndarray]] = {}
    for index, column in enumerate(result.columns):
        series, value = keys[column]
        columns = by_series.setdefault(series, {})
        columns[value] = window.forecast[:, index]
        for level, values in window.quantiles.items():
            columns[f"{value}_q{level_name(level)}"] = values[:, index]
        if window.actual is not None:
            columns[f"{value}_actual"] = window.actual[:, index]
    return [
        pd.DataFrame({result.layout.id_column: series, result.date_column: result.stamps(window.dates), **columns})
        for series, columns in by_series.items()
    ]


def to_json(result: ForecastResult) -> dict:
    def clean(array):
        return None if array is None else [[None if np.isnan(v) else float(v) for v in row] for row in array]

    return {
        "metadata": result.metadata,
        "columns": result.columns,
        "windows": [
            {
                "origin": str(result.stamps(w.dates)[0]),
                "dates": [str(d) for d in result.stamps(w.dates)],
                "forecast": clean(w.forecast),
                **({"quantiles": {level_name(q): clean(v) for q, v in w.quantiles.items()}} if w.quantiles else {}),
                "actual": clean(w.actual),
                "mse": w.mse,
                "mae": w.mae,
            }
            for w in result.windows
        ],
    }


def check_output(path: Path, overwrite: bool, option: str = "--output") -> None:
    """Refuse to replace an existing file without ``overwrite``, or to write into a missing or read-only directory
    (a device or a pipe, such as ``/dev/stdout``, is written into)."""
    if path.is_dir():
        raise DataError(f"{path} is a directory; give {option} a file path (one inside it, say)")
    link_target(path, option)  # a loop of links fails here, before any work
    if is_stdout(path) or (path.exists() and not path.is_file()):  # written into, nothing replaced
        return
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; pass --overwrite to replace it")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise DataError(f"cannot write to {directory}: not an existing writable directory; choose another {option}")


def write_forecast(result: ForecastResult, path: Path, fmt: str, overwrite: bool) -> None:
    """Write atomically; an existing file is replaced only with ``overwrite``."""
    check_output(path, overwrite)
    if fmt == "json":
        text = json.dumps(to_json(result), indent=2)
        atomic_write(path, lambda temp: temp.write_text(text + "\n"))
        return
    frame = to_frame(result)
    if fmt == "csv":
        atomic_write(path, lambda temp: frame.to_csv(temp, index=False))
        return
    try:
        import pyarrow  # noqa: F401 - only to give a clear error before writing
    except ImportError:
        raise DataError("writing parquet needs pyarrow: pip install 'specmem[parquet]'") from None
    atomic_write(path, lambda temp: frame.to_parquet(temp, index=False))
