"""Forecasts from a checkpoint for a user's CSV, in the original units, with future timestamps.

The checkpoint alone rebuilds the model and its scaler; the CSV must carry the same columns the
model was trained on. A forecast "from" a timestamp reads the ``seq_len`` rows before it.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from specmem_cli.data.calendar import TimeAxis
from specmem_cli.data.table import SeriesTable, read_table
from specmem_cli.errors import DataError
from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.models import forecast as run_model
from specmem_cli.training.checkpoint import atomic_write
from specmem_cli.training.runs import LoadedRun, load_run


@dataclass
class WindowForecast:
    """One forecast: its origin row, timestamps, values (original units) and actuals where known."""

    origin: int
    dates: pd.DatetimeIndex
    forecast: np.ndarray  # [pred_len, outputs]
    actual: np.ndarray | None  # same shape, NaN past the end of the file
    mse: float | None = None  # on scaled values, as in training, when every actual exists
    mae: float | None = None


@dataclass
class ForecastResult:
    columns: list[str]
    windows: list[WindowForecast]
    metadata: dict = field(default_factory=dict)


def memory_description(run: LoadedRun) -> str:
    """What memory the forecasts use: off, reset (empty, zero tokens) or frozen from training."""
    memory = getattr(run.model, "memory", None)
    if memory is None:
        return "off (model has no memory)"
    if isinstance(memory, AnalogMemory):
        if memory.ready:
            return f"analog: {memory.n_entries} training window rows as K-L keys ({memory.key_modes} modes)"
        if run.checkpoint.get("memory_at_eval") == "reset":
            return "reset: empty, so the forecasts are the network's own"
        return "dropped: reading it did not lower the validation error, so the forecasts are the network's own"
    if bool(memory.is_frozen):
        return f"frozen: tokens fixed from {memory.n_rows} history rows at the end of training"
    return f"{run.checkpoint.get('memory_at_eval', 'reset')}: {memory.n_rows} history rows" + (
        " (empty, so the memory tokens are zero, as in the published evaluation)" if not memory.ready else ""
    )


def time_axis(run: LoadedRun, table: SeriesTable) -> TimeAxis:
    """The training clock, so a learned cycle keeps its phase on any file (older checkpoints: this file's clock)."""
    state = run.checkpoint.get("time_axis")
    return TimeAxis.from_state(state) if state else TimeAxis.of(table.dates)


def check_columns(table: SeriesTable, run: LoadedRun) -> None:
    expected = run.checkpoint.get("table_columns") or run.checkpoint["columns"]
    missing = [c for c in expected if c not in table.columns]
    extra = [c for c in table.columns if c not in expected]
    if missing or extra:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"extra {', '.join(extra)}"] if extra else []
        )
        raise DataError(
            f"{table.source}: columns differ from the training data ({'; '.join(parts)}); give the same columns"
        )


def infer_frequency(dates: pd.DatetimeIndex, freq: str | None, source: str) -> pd.DateOffset:
    if freq is not None:
        try:
            return pd.tseries.frequencies.to_offset(freq)
        except ValueError:
            raise DataError(f"--freq '{freq}' is not a pandas frequency; use e.g. h, 15min, D") from None
    with warnings.catch_warnings():  # pandas 3 announces a return-type change; to_offset takes either
        warnings.simplefilter("ignore")
        inferred = pd.infer_freq(dates[-min(len(dates), 200) :]) if len(dates) >= 3 else None
    if inferred is None:
        raise DataError(f"{source}: cannot infer the time step from the timestamps; pass --freq (e.g. h, 15min, D)")
    return pd.tseries.frequencies.to_offset(inferred)


def forecast(
    checkpoint: Path,
    input_csv: Path,
    start: str | None = None,
    rolling: int | None = None,
    freq: str | None = None,
) -> ForecastResult:
    """Forecast from the end of ``input_csv``, from ``start``, or every ``rolling`` rows from ``start``."""
    run = load_run(checkpoint)
    table = read_table(input_csv, date_col=run.checkpoint.get("date_column"))
    check_columns(table, run)
    seq_len, pred_len = run.config.data.seq_len, run.config.data.pred_lens[0]
    columns = run.checkpoint["columns"]
    outputs = run.checkpoint["output_columns"]
    values = table.values[:, [table.columns.index(c) for c in columns]]
    step = infer_frequency(table.dates, freq, table.source)
    first = _origin_row(table, start) if start is not None else table.n_rows
    if rolling is not None and rolling < 1:
        raise DataError("--rolling needs a positive step (rows between forecast origins)")
    origins = list(range(first, table.n_rows + 1, rolling)) if rolling else [first]
    if origins[0] < seq_len:
        raise DataError(
            f"{table.source}: a forecast from row {origins[0] + 1} needs {seq_len} rows before it, there are {origins[0]}; "
            "give more history or a later --start"
        )
    scaled = run.scaler.transform(values)
    positions = time_axis(run, table).positions(table.dates)
    n_out = len(outputs)
    windows = []
    for origin in origins:
        window = scaled[origin - seq_len : origin]
        if not np.isfinite(window).all():
            raise DataError(f"{table.source}: NaN/inf in the {seq_len} rows before row {origin + 1}; clean them first")
        with torch.no_grad():
            inputs = torch.from_numpy(window).float()[None]
            prediction = run_model(run.model, inputs, positions[origin - seq_len : origin - seq_len + 1])
            prediction = prediction[0, :, -n_out:].double().numpy()
        dates = pd.date_range(table.dates[origin - 1], periods=pred_len + 1, freq=step)[1:]
        known = scaled[origin : origin + pred_len, -n_out:]
        actual = np.full((pred_len, n_out), np.nan)
        actual[: len(known)] = known
        result = WindowForecast(origin, dates, run.scaler.inverse_transform(prediction, slice(-n_out, None)), None)
        if len(known):
            result.actual = run.scaler.inverse_transform(actual, slice(-n_out, None))
        if len(known) == pred_len:
            error = prediction - known
            result.mse, result.mae = float((error**2).mean()), float(np.abs(error).mean())
        windows.append(result)
    metadata = {
        "checkpoint": str(run.path),
        "input": str(input_csv),
        "seq_len": seq_len,
        "pred_len": pred_len,
        "memory": memory_description(run),
        "frequency": step.freqstr,
        "units": "original (inverse of the training scaler)",
        "metrics_units": "scaled, as in training",
    }
    return ForecastResult(outputs, windows, metadata)


def _origin_row(table: SeriesTable, start: str) -> int:
    try:
        timestamp = pd.Timestamp(start)
    except ValueError:
        raise DataError(f"--start '{start}' is not a date") from None
    row = int(table.dates.searchsorted(timestamp))
    if row >= table.n_rows or table.dates[row] != timestamp:
        raise DataError(f"--start {start} is not a timestamp in {table.source}; give one of its dates")
    return row


FORMATS = ("csv", "parquet", "json")


def output_format(path: Path, explicit: str | None) -> str:
    fmt = (explicit or path.suffix.lstrip(".")).lower()
    if fmt not in FORMATS:
        raise DataError(f"unknown output format '{fmt or path.name}'; use a .csv, .parquet or .json file (or --format)")
    return fmt


def to_frame(result: ForecastResult, date_column: str = "date") -> pd.DataFrame:
    """Long table: one row per (origin, forecast step); forecast columns named as the input, actuals as ``NAME_actual``."""
    frames = []
    for window in result.windows:
        frame = pd.DataFrame(window.forecast, columns=result.columns)
        frame.insert(0, date_column, window.dates)
        if len(result.windows) > 1:
            frame.insert(0, "origin", window.dates[0])
        if window.actual is not None:
            for index, column in enumerate(result.columns):
                frame[f"{column}_actual"] = window.actual[:, index]
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def to_json(result: ForecastResult) -> dict:
    def clean(array):
        return None if array is None else [[None if np.isnan(v) else float(v) for v in row] for row in array]

    return {
        "metadata": result.metadata,
        "columns": result.columns,
        "windows": [
            {
                "origin": str(w.dates[0]),
                "dates": [str(d) for d in w.dates],
                "forecast": clean(w.forecast),
                "actual": clean(w.actual),
                "mse": w.mse,
                "mae": w.mae,
            }
            for w in result.windows
        ],
    }


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing file without ``overwrite``, or to write into a missing or read-only directory."""
    if path.exists() and not overwrite:
        raise DataError(f"{path} already exists; pass --overwrite to replace it")
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise DataError(f"cannot write to {directory}: not an existing writable directory; choose another --output")


def write_forecast(result: ForecastResult, path: Path, fmt: str, overwrite: bool, date_column: str = "date") -> None:
    """Write atomically; an existing file is replaced only with ``overwrite``."""
    check_output(path, overwrite)
    if fmt == "json":
        text = json.dumps(to_json(result), indent=2)
        atomic_write(path, lambda temp: temp.write_text(text + "\n"))
        return
    frame = to_frame(result, date_column)
    if fmt == "csv":
        atomic_write(path, lambda temp: frame.to_csv(temp, index=False))
        return
    try:
        import pyarrow  # noqa: F401 - only to give a clear error before writing
    except ImportError:
        raise DataError("writing parquet needs pyarrow: pip install 'specmem[parquet]'") from None
    atomic_write(path, lambda temp: frame.to_parquet(temp, index=False))
