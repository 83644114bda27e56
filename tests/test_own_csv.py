"""Users' own CSVs: dates found by content, long format, text columns, any clock, short series, gaps,
changed files, and faults (full disk, read-only places, deleted directories), each from a small file
made here."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from specmem_cli.cli import app
from specmem_cli.data.calendar import TimeAxis
from specmem_cli.data.dates import written_like
from specmem_cli.data.splits import Windows, windows_that_fit
from specmem_cli.data.table import Reading, read_table
from specmem_cli.errors import ConfigError, DataError
from specmem_cli.models import resolve_step_parameters

runner = CliRunner()
FAST = ["--set", "train.epochs=2", "--seeds", "2021", "-q"]


def write(tmp_path: Path, name: str, frame: pd.DataFrame, **options) -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False, **options)
    return path


def seasonal(rows: int, period: float, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    steps = np.arange(rows)
    return 10 + 3 * np.sin(2 * np.pi * steps / period) + 0.3 * generator.standard_normal(rows)


@pytest.mark.parametrize(
    ("cells", "first", "reading"),
    [
        (pd.date_range("2006-01-01", periods=30, freq="MS").strftime("%Y-%m-%d"), "2006-01-01", "ISO dates"),
        (pd.date_range("1949-01-01", periods=30, freq="MS").strftime("%Y-%m"), "1949-01-01", "ISO dates"),
        (np.arange(1700, 1730), "1700-01-01", "years"),
        (pd.date_range("1958-03-29", periods=30).strftime("%Y%m%d").astype(int), "1958-03-29", "YYYYMMDD integers"),
        (pd.date_range("2000-01-01", periods=30, freq="MS").strftime("%b %-d %Y"), "2000-01-01", "text dates"),
        (pd.date_range("2020-01-01", periods=30).strftime("%d/%m/%Y"), "2020-01-01", "text dates, day first"),
    ],
)
def test_the_date_column_is_found_by_content_whatever_its_name(tmp_path, cells, first, reading):
    frame = pd.DataFrame({"value": seasonal(30, 7), "when_it_was": cells, "other": np.arange(30.0)})
    table = read_table(write(tmp_path, "f.csv", frame))
    assert table.date_column == "when_it_was" and table.date_reading == reading
    assert table.dates[0] == pd.Timestamp(first) and table.columns == ["value", "other"]


def test_time_zone_aware_stamps_are_held_in_utc_across_daylight_saving(tmp_path):
    stamps = pd.date_range("2021-03-27 22:00", periods=8, freq="30min", tz="Europe/London")
    frame = pd.DataFrame({"datetime_gmt": stamps.astype(str), "demand": seasonal(8, 4)})
    table = read_table(write(tmp_path, "d.csv", frame))
    assert table.timezone == "UTC" and table.time_axis.describe() == "30-minute"
    assert table.dates[0] == pd.Timestamp("2021-03-27 22:00") and not table.time_axis.gaps(table.dates)


def test_numbers_are_dates_only_when_they_read_as_dates(tmp_path):
    # an unsorted column of values between 1000 and 2999 is data; nanoseconds are never dates
    frame = pd.DataFrame(
        {"sales": [1500, 1200, 2400, 1800], "stamp": ["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"]}
    )
    assert read_table(write(tmp_path, "s.csv", frame)).date_column == "stamp"
    # a text column may be a clock that did not read: no guessing then
    labelled = pd.DataFrame({"n": [5, 9, 2, 7], "v": [1.0, 2.0, 3.0, 4.0], "quarter": ["Q1", "Q2", "Q3", "Q4"]})
    with pytest.raises(DataError, match=r"no column reads as dates.*rising step numbers with --date-col"):
        read_table(write(tmp_path, "c.csv", labelled))
    mixed = write(tmp_path, "mixed.csv", pd.DataFrame({"idx": [3, 1, 2] * 10, "v": np.arange(30) + 0.5}))
    with pytest.raises(DataError, match=r"duplicated timestamp step 3 with different values"):
        read_table(mixed, Reading(date_col="idx"))
    with pytest.raises(DataError, match=r"'v' has 30 value\(s\) that are not dates, first '0.5' at data row 1"):
        read_table(mixed, Reading(date_col="v"))


def test_a_file_without_a_clock_counts_its_rows_or_its_step_numbers(tmp_path):
    """Numbers only: the rows in order are the steps (a saved index left out as ever); a column named with
    --date-col that holds rising whole numbers numbers them. Such an axis has no day or week: no clock
    periods, durations refused, and the step numbers are written back as they came."""
    frame = pd.DataFrame({"idx": np.arange(60), "y": seasonal(60, 8), "z": seasonal(60, 8, 1)})
    table = read_table(write(tmp_path, "plain.csv", frame))
    assert table.columns == ["y", "z"] and table.date_reading == "row order" and table.date_column == "step"
    assert table.time_axis.counted and table.time_axis.describe() == "numbered"
    assert written_like(table.dates, table.date_reading).tolist() == list(range(60))
    assert table.time_axis.positions(table.dates).tolist() == list(range(60))
    one = read_table(write(tmp_path, "one.csv", frame[["y"]]))  # a single column is a file too
    # a clock that did not read is never taken for a series: float Unix seconds, Excel serial days, a clock's
    # name, YYYYMMDD numbers with one out of order
    for clock in (
        {"t0": 1_700_000_000.5 + 3600.0 * np.arange(60)},
        {"serial": 44197 + np.arange(60) / 24},
        {"date": np.where(np.arange(60) == 5, np.nan, np.arange(60.0))},
        {"yyyymmdd": np.r_[20200101 + np.arange(30), 20200105, 20200201 + np.arange(29)]},
    ):
        with pytest.raises(DataError, match=r"no column reads as dates|duplicated timestamp"):
            read_table(write(tmp_path, "clock.csv", pd.DataFrame({**clock, "y": seasonal(60, 8)})))
    assert one.columns == ["y"] and one.n_rows == 60
    stepped = frame.assign(idx=np.arange(60) * 2 + 100)
    table = read_table(write(tmp_path, "stepped.csv", stepped), Reading(date_col="idx"))
    assert table.date_reading == "step numbers" and table.time_axis.counted
    assert table.time_axis.positions(table.dates).tolist() == list(range(60))
    assert written_like(table.time_axis.after(table.dates[-1], 2), table.date_reading).tolist() == [220, 222]
    grouped = pd.concat(  # a long file numbered by step, each series' rows together: ordered per series
        [pd.DataFrame({"unique_id": name, "ds": np.arange(60), "y": seasonal(60, 8, i)}) for i, name in enumerate("AB")]
    )
    table = read_table(write(tmp_path, "long_steps.csv", grouped), Reading(date_col="ds"))
    assert table.columns == ["A", "B"] and table.n_rows == 60 and table.time_axis.counted
    with pytest.raises(DataError, match="are 5000 apart; number the steps"):
        read_table(write(tmp_path, "far.csv", frame.assign(idx=np.arange(60) * 5000)), Reading(date_col="idx"))
    with pytest.raises(ConfigError, match="numbered steps and no clock"):
        resolve_step_parameters("klcycle", {"cycle_len": "1D"}, table.time_axis.step)


def test_numbered_rows_train_forecast_and_backtest_by_step_number(tmp_path):
    """The whole path on a file of numbers only: the cycle comes from the spectrum (period 16 here), the
    forecast continues the step numbers, a backtest starts at a step number."""
    path = write(tmp_path, "plain.csv", pd.DataFrame({"y": seasonal(800, 16)}))
    trained = runner.invoke(
        app, ["train", "--data", str(path), "--pred-len", "24", "--out", str(tmp_path / "r"), *FAST]
    )
    assert trained.exit_code == 0, trained.output
    assert "taken in order as evenly spaced steps" in trained.stderr
    (run,) = (tmp_path / "r").glob("klcycle_*")
    from specmem_cli.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoint.pt").model_params["cycle_len"] == 16
    output = tmp_path / "next.csv"
    result = runner.invoke(app, ["forecast", str(run), "--input", str(path), "--output", str(output)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(output)
    assert list(written.columns) == ["step", "y"] and written["step"].tolist() == list(range(800, 824))
    backtest = tmp_path / "bt.csv"
    args = ["forecast", str(run), "--input", str(path), "--output", str(backtest), "--start", "700", "--rolling", "24"]
    assert runner.invoke(app, args).exit_code == 0
    assert pd.read_csv(backtest)["step"].iloc[0] == 700 and "y_actual" in pd.read_csv(backtest).columns
    wrong = runner.invoke(app, [*args[:-4], "--start", "2020-01-01", "--overwrite"])
    assert wrong.exit_code == 1 and "is not a step number" in wrong.stderr
    dashes = runner.invoke(app, [*args[:-4], "--start", "--5", "--overwrite"])
    assert dashes.exit_code == 1 and "is not a step number" in dashes.stderr and "Traceback" not in dashes.output


def test_separators_and_decimal_commas_are_detected(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=40, freq="h").strftime("%d.%m.%Y %H:%M")
    frame = pd.DataFrame({"Datum": stamps, "Last": seasonal(40, 24).round(3)})
    table = read_table(write(tmp_path, "semi.csv", frame, sep=";", decimal=","))
    np.testing.assert_allclose(table.values[:, 0], frame["Last"].to_numpy())
    assert table.dates[13] == pd.Timestamp("2020-01-01 13:00")
    tabbed = read_table(write(tmp_path, "tab.csv", frame, sep="\t"))
    assert tabbed.columns == ["Last"]


def test_text_columns_are_left_out_with_a_note_and_a_stray_word_is_an_error(tmp_path, caplog):
    days = pd.date_range("2012-01-01", periods=20).strftime("%Y-%m-%d")
    frame = pd.DataFrame({"date": days, "temp": seasonal(20, 7), "weather": ["rain", "sun"] * 10})
    with caplog.at_level(logging.INFO, logger="specmem_cli"):
        table = read_table(write(tmp_path, "w.csv", frame))
    assert table.columns == ["temp"] and "left out text column(s) weather" in caplog.text
    frame["temp"] = frame["temp"].astype(object)
    frame.loc[5, "temp"] = "n.a.x"
    with pytest.raises(
        DataError, match=r"column 'temp' holds numbers and text, first 'n.a.x' at data row 6.*--columns"
    ):
        read_table(write(tmp_path, "bad.csv", frame))


def test_a_column_named_twice_or_a_directory_is_a_one_line_error(tmp_path):
    twice = tmp_path / "twice.csv"
    twice.write_text("date,a,a\n2020-01-01,1,2\n2020-01-02,3,4\n")
    with pytest.raises(DataError, match=r"twice.csv: the header names column 'a' twice; give each column its own name"):
        read_table(twice)
    with pytest.raises(DataError, match=r"a directory, not a data file; give the CSV file inside it"):
        read_table(tmp_path)


@pytest.mark.parametrize("content", [b"PAR1\x15\x04\x15\x00", "date,a\n2020-01-01,1\n".encode("utf-16")])
def test_a_binary_file_is_named_as_one_not_parsed_as_text(tmp_path, content):
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"data.csv: a binary file \(Parquet, Excel, compressed or UTF-16\?\)"):
        read_table(path)


def test_unix_seconds_are_dates_in_a_column_named_like_a_clock(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=30, freq="h")
    seconds = np.asarray((stamps - pd.Timestamp(0)) // pd.Timedelta(seconds=1), dtype=np.int64)
    for name, cells, reading in [("ts", seconds, "Unix seconds"), ("time_ms", seconds * 1000, "Unix milliseconds")]:
        table = read_table(write(tmp_path, f"{name}.csv", pd.DataFrame({name: cells, "load": seasonal(30, 24)})))
        assert (table.date_column, table.date_reading, table.dates[1]) == (name, reading, stamps[1])
        assert list(written_like(table.dates, reading)) == list(cells)
    unnamed = write(tmp_path, "counts.csv", pd.DataFrame({"counts": seconds, "load": seasonal(30, 24)}))
    with pytest.raises(DataError, match=r"Unix seconds in a column named like a clock.*--date-col"):
        read_table(unnamed)
    assert read_table(unnamed, Reading(date_col="counts")).date_reading == "Unix seconds"


def test_thousands_separators_are_read_as_numbers(tmp_path):
    days = pd.date_range("2020-01-01", periods=6).strftime("%Y-%m-%d")
    volume = ["1,234", "999", "12,345.5", "-2,000", "1,000,000", "7"]
    table = read_table(write(tmp_path, "v.csv", pd.DataFrame({"Date": days, "Volume": volume})))
    assert table.values[:, 0].tolist() == [1234, 999, 12345.5, -2000, 1_000_000, 7]
    # where the comma is the decimal mark, dots group the thousands: "30.531,25" is 30531.25
    european = tmp_path / "e.csv"
    cells = ["30.531,25", "999,5", "1.000.000", "-2.000,75", "7", "12,25"]
    european.write_text(
        "Datum;Menge;x\n" + "".join(f"{d};{v};{i},5\n" for i, (d, v) in enumerate(zip(days, cells, strict=True)))
    )
    table = read_table(european)
    assert table.columns == ["Menge", "x"]
    assert table.values[:, 0].tolist() == [30531.25, 999.5, 1_000_000, -2000.75, 7, 12.25]
    # the file's decimal mark decides: dots after a leading 0 never group thousands, so a column of dot
    # decimals beside decimal commas stays what it says
    dotted = tmp_path / "d.csv"
    small = ["0.125", "1.500", "2.750", "0.5", "3", "4.25"]
    dotted.write_text(
        "Datum;Menge;x\n" + "".join(f"{d};{v};{i},5\n" for i, (d, v) in enumerate(zip(days, small, strict=True)))
    )
    assert read_table(dotted).values[:, 0].tolist() == [0.125, 1.5, 2.75, 0.5, 3, 4.25]
    # a comma that is not a thousands separator keeps the column text (left out with its note)
    odd = pd.DataFrame({"Date": days, "code": ["1,2", "3,4"] * 3, "x": np.arange(6.0)})
    assert read_table(write(tmp_path, "odd.csv", odd)).columns == ["x"]


def test_a_row_counter_is_not_a_series(tmp_path, caplog):
    stamps = pd.date_range("2021-05-01", periods=30, freq="30min", tz="UTC").strftime("%Y-%m-%d %H:%M:%S+00:00")
    frame = pd.DataFrame({"settlement": range(30), "datetime_gmt": stamps, "demand": seasonal(30, 48)})
    with caplog.at_level(logging.INFO, logger="specmem_cli"):
        table = read_table(write(tmp_path, "demand.csv", frame))
    assert table.columns == ["demand"] and "left out row counter column(s) settlement" in caplog.text
    named = read_table(write(tmp_path, "demand.csv", frame), Reading(value_cols=["settlement", "demand"]))
    assert named.columns == ["settlement", "demand"]
    alone = read_table(write(tmp_path, "alone.csv", frame.drop(columns="demand")))
    assert alone.columns == ["settlement"]


def long_file(
    tmp_path: Path, starts: dict[str, str], rows: int = 60, freq: str = "h", columns=("unique_id", "ds", "y")
):
    parts = []
    for index, (series, start) in enumerate(starts.items()):
        stamps = pd.date_range(start, periods=rows, freq=freq)
        parts.append(
            pd.DataFrame({columns[0]: series, columns[1]: stamps.astype(str), columns[2]: seasonal(rows, 24, index)})
        )
    return write(tmp_path, "long.csv", pd.concat(parts))


def test_long_format_becomes_series_aligned_on_their_shared_dates(tmp_path, caplog):
    path = long_file(tmp_path, {"H1": "2020-01-01 00:00", "H2": "2020-01-01 05:00", "H3": "2020-01-01 00:00"})
    with caplog.at_level(logging.INFO, logger="specmem_cli"):
        table = read_table(path)
    assert table.columns == ["H1", "H2", "H3"] and table.layout.id_column == "unique_id"
    assert table.n_rows == 55 and table.dates[0] == pd.Timestamp("2020-01-01 05:00")
    assert "H2 starts 2020-01-01 05:00:00" in caplog.text and "kept" in caplog.text
    source = pd.read_csv(path)
    h3 = source[source.unique_id == "H3"].set_index("ds")["y"]
    np.testing.assert_allclose(table.values[:, 2], h3.loc["2020-01-01 05:00:00":].to_numpy())
    filled = read_table(path, Reading(fill="interpolate"))
    assert filled.n_rows == 65 and np.isfinite(filled.values).all()


def test_long_format_with_several_values_and_a_named_id(tmp_path):
    stamps = pd.date_range("2021-01-01", periods=30, freq="D").astype(str)
    frame = pd.concat(
        [
            pd.DataFrame(
                {"item_id": item, "timestamp": stamps, "target": seasonal(30, 7, i), "price": np.arange(30.0) + i}
            )
            for i, item in enumerate("ab")
        ]
    )
    table = read_table(write(tmp_path, "ag.csv", frame), Reading(id_col="item_id"))
    assert table.columns == ["a/target", "a/price", "b/target", "b/price"]
    assert read_table(write(tmp_path, "ag2.csv", frame), Reading(value_cols=["target"])).columns == ["a", "b"]
    with pytest.raises(DataError, match=r"no column named 'sku'.*--id-col"):
        read_table(write(tmp_path, "ag3.csv", frame), Reading(id_col="sku"))
    date_column = read_table(write(tmp_path, "ag4.csv", frame)).date_column
    for reading in (Reading(id_col=date_column), Reading(value_cols=[date_column])):
        with pytest.raises(DataError, match=rf"'{date_column}' is the date column; --(id|value)-col names"):
            read_table(tmp_path / "ag4.csv", reading)


def test_calendar_clocks_count_months_and_business_days():
    months = pd.date_range("2000-01-31", periods=30, freq="ME")
    axis = TimeAxis.of(months)
    assert axis.months == 1 and axis.positions(months).tolist() == list(range(30))
    assert list(axis.after(months[-1], 2)) == [pd.Timestamp("2002-07-31"), pd.Timestamp("2002-08-31")]
    years = pd.DatetimeIndex([f"{y}-01-01" for y in range(1700, 1760)])
    assert TimeAxis.of(years).describe() == "yearly" and TimeAxis.of(years).positions(years)[-1] == 59
    quarters = pd.date_range("2000-01-01", periods=12, freq="QS")
    assert TimeAxis.of(quarters).describe() == "quarterly"
    weekdays = pd.bdate_range("2021-01-04", periods=40)
    business = TimeAxis.of(weekdays)
    assert business.business_days and business.positions(weekdays).tolist() == list(range(40))
    assert business.after(weekdays[-1], 1)[0].day_of_week == 0  # a Friday is followed by a Monday
    hourly = pd.date_range("2020-01-01", periods=50, freq="h").delete(range(10, 30))
    assert TimeAxis.of(hourly).gaps(hourly) == [(pd.Timestamp("2020-01-01 09:00"), 20)]


@pytest.mark.parametrize(("freq", "expected"), [("MS", 12), ("W-SUN", 52), ("D", 7), ("QS", 4)])
def test_the_default_cycle_fits_any_clock(freq, expected):
    rows = 600 if freq != "QS" else 200
    dates = pd.date_range("1990-01-01", periods=rows, freq=freq)
    values = seasonal(rows, expected)[:, None]
    axis = TimeAxis.of(dates)
    params = resolve_step_parameters(
        "klcycle", {"cycle_len": "auto"}, axis.step, (values, axis.positions(dates).numpy())
    )
    assert params["cycle_len"] == expected


def test_durations_mean_something_on_any_clock():
    weekly = pd.Timedelta(days=7)
    assert resolve_step_parameters("klcycle", {"cycle_len": "1D"}, weekly)["cycle_len"] == 1  # no daily cycle
    assert (
        resolve_step_parameters(
            "klcycle", {"cycle_len": "365D"}, TimeAxis.of(pd.date_range("2000", periods=30, freq="MS")).step
        )["cycle_len"]
        == 12
    )
    with pytest.raises(ConfigError, match=r"1D is 205.714 steps of this data's 0 days 00:07:00"):
        resolve_step_parameters("klcycle", {"cycle_len": "1D"}, pd.Timedelta(minutes=7))  # no whole day there


def test_short_series_shrink_the_default_windows_and_explicit_ones_are_named():
    protocol = Windows(96, [96, 192, 336, 720])
    chosen, note = windows_that_fit(144, "ratio", protocol, None, None, "air.csv")
    assert chosen == Windows(46, [8]) and "using look-back 46 and horizon(s) 8 (the longest leaves 9 validation" in note
    kept, none = windows_that_fit(17_420, "ett_hour", protocol, None, None, "ETTh1")
    assert kept == Windows(96, [96, 192, 336, 720]) and none is None
    partial, _ = windows_that_fit(3_000, "ratio", protocol, None, None, "x.csv")
    assert partial.pred_lens == [96, 192]
    with pytest.raises(DataError, match=r"cannot hold horizon 24 with look-back 96; horizons up to 4 fit"):
        windows_that_fit(144, "ratio", protocol, 96, [24], "air.csv")
    with pytest.raises(DataError, match="too short"):
        windows_that_fit(4, "ratio", protocol, None, None, "tiny.csv")


def test_monthly_file_trains_and_forecasts_with_no_other_flag(tmp_path):
    months = pd.date_range("1949-01-01", periods=144, freq="MS").strftime("%Y-%m")
    path = write(tmp_path, "air.csv", pd.DataFrame({"Month": months, "Passengers": seasonal(144, 12)}))
    trained = runner.invoke(app, ["train", "--data", str(path), "--out", str(tmp_path / "runs"), *FAST])
    assert trained.exit_code == 0, trained.output
    assert "using look-back 46 and horizon(s) 8" in trained.stderr and "monthly steps" in trained.stderr
    (run,) = (tmp_path / "runs").glob("klcycle_air_*")
    output = tmp_path / "out.csv"
    result = runner.invoke(app, ["forecast", str(run), "--input", str(path), "--output", str(output)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(output)
    assert list(written.columns) == ["Month", "Passengers"] and len(written) == 8
    assert written["Month"].iloc[0] == "1961-01" and written["Month"].iloc[-1] == "1961-08"  # as the file writes them
    intervals = ["forecast", str(run), "--input", str(path), "--output", str(tmp_path / "q.csv"), "--quantiles"]
    result = runner.invoke(app, [*intervals, "0.1", "0.9"])  # the README's levels: the chosen horizon leaves enough
    assert result.exit_code == 0, result.output


def test_years_are_written_back_as_years_and_long_files_as_long(tmp_path):
    years = pd.DataFrame({"YEAR": np.arange(1700, 2000), "SUNACTIVITY": seasonal(300, 11)})
    path = write(tmp_path, "sun.csv", years)
    assert runner.invoke(app, ["train", "--data", str(path), "--out", str(tmp_path / "r1"), *FAST]).exit_code == 0
    (run,) = (tmp_path / "r1").glob("klcycle_*")
    assert (
        runner.invoke(app, ["forecast", str(run), "--input", str(path), "--output", str(tmp_path / "y.csv")]).exit_code
        == 0
    )
    assert pd.read_csv(tmp_path / "y.csv")["YEAR"].iloc[0] == 2000
    path = long_file(tmp_path, {"A": "2020-01-01", "B": "2020-01-01"}, rows=400, columns=("symbol", "date", "price"))
    assert runner.invoke(app, ["train", "--data", str(path), "--out", str(tmp_path / "r2"), *FAST]).exit_code == 0
    (run,) = (tmp_path / "r2").glob("klcycle_*")
    result = runner.invoke(app, ["forecast", str(run), "--input", str(path), "--output", str(tmp_path / "l.csv")])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "l.csv")
    assert list(written.columns) == ["symbol", "date", "price"] and set(written.symbol) == {"A", "B"}
    assert len(written) == 2 * 31 and written.date.iloc[0] == "2020-01-17 16:00:00"
    args = ["forecast", str(run), "--input", str(path), "--output", str(tmp_path / "q.csv"), "--quantiles"]
    result = runner.invoke(app, [*args, "0.4", "0.6"])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(tmp_path / "q.csv")
    assert list(written.columns) == ["symbol", "date", "price", "price_q0.4", "price_q0.6"]
    assert (written["price_q0.4"] <= written["price_q0.6"]).all()


def test_target_means_forecast_that_series_from_all_of_them(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=600, freq="h").astype(str)
    frame = pd.DataFrame({"date": stamps, "load": seasonal(600, 24), "temp": seasonal(600, 24, 1)})
    path = write(tmp_path, "t.csv", frame)
    result = runner.invoke(
        app, ["train", "--data", str(path), "--target", "load", "--out", str(tmp_path / "r"), "--json", *FAST]
    )
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]["run_dir"]
    stored = torch.load(Path(run) / "checkpoint.pt", weights_only=True)
    assert stored["columns"] == ["temp", "load"] and stored["output_columns"] == ["load"]


def test_one_series_chosen_by_convention_is_named_in_a_note(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=600, freq="h").astype(str)
    frame = pd.DataFrame({"date": stamps, "load": seasonal(600, 24), "temp": seasonal(600, 24, 1)})
    path = write(tmp_path, "s.csv", frame)
    args = ["train", "--data", str(path), "--features", "S", "--out", str(tmp_path / "r"), *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("forecasting series 'temp' (the last column); choose another with --target") == 1
    named = runner.invoke(app, [*args, "--target", "load", "--out", str(tmp_path / "named")])
    assert named.exit_code == 0 and "forecasting series" not in named.stderr


def test_columns_keeps_only_the_series_named(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=600, freq="h").astype(str)
    frame = pd.DataFrame({"date": stamps, "load": seasonal(600, 24), "temp": seasonal(600, 24, 1), "wind": 1.0})
    path = write(tmp_path, "c.csv", frame)
    out = ["--out", str(tmp_path / "r"), "--json", *FAST]
    result = runner.invoke(app, ["train", "--data", str(path), "--columns", "load", "temp", *out])
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)["runs"][0]["run_dir"]
    assert torch.load(Path(run) / "checkpoint.pt", weights_only=True)["columns"] == ["load", "temp"]
    unknown = runner.invoke(app, ["train", "--data", str(path), "--columns", "rain", *out])
    assert unknown.exit_code == 1 and "Traceback" not in unknown.output
    assert "no series rain (series: load, temp, wind); fix --columns" in unknown.output


def hourly_with_gap(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    stamps = pd.date_range("2020-01-01", periods=700, freq="h")
    frame = pd.DataFrame({"date": stamps.astype(str), "v": seasonal(700, 24)}).drop(index=range(500, 520))
    return write(tmp_path, "gap.csv", frame), frame


def test_a_gap_is_reported_and_a_backtest_across_it_matches_actuals_by_timestamp(tmp_path):
    path, frame = hourly_with_gap(tmp_path)
    trained = runner.invoke(
        app, ["train", "--data", str(path), "--pred-len", "24", "--out", str(tmp_path / "r"), *FAST]
    )
    assert trained.exit_code == 0, trained.output
    assert "1 gap(s) in the hourly clock, 20 step(s) missing" in trained.stderr
    (run,) = (tmp_path / "r").glob("klcycle_*")
    output = tmp_path / "bt.json"
    result = runner.invoke(
        app,
        [
            "forecast",
            str(run),
            "--input",
            str(path),
            "--output",
            str(output),
            "--start",
            "2020-01-21 12:00",
            "--rolling",
            "24",
        ],
    )
    assert result.exit_code == 0, result.output
    truth = frame.set_index("date")["v"]
    for window in json.loads(output.read_text())["windows"]:
        for date, actual in zip(window["dates"], window["actual"] or [[None]] * 24, strict=True):
            expected = truth.get(date)
            assert (actual[0] is None) if expected is None else actual[0] == pytest.approx(expected)
    first = json.loads(output.read_text())["windows"][0]
    assert first["dates"][0] == "2020-01-21 12:00:00" and first["actual"][8][0] is None  # 20:00 is in the gap


def test_a_changed_file_is_never_answered_with_old_runs(tmp_path):
    path, frame = hourly_with_gap(tmp_path)
    command = ["train", "--data", str(path), "--pred-len", "24", "--out", str(tmp_path / "r"), *FAST]
    assert runner.invoke(app, command).exit_code == 0
    assert "reused" in json.dumps(json.loads(runner.invoke(app, [*command, "--json"]).stdout)["runs"])
    frame.assign(v=frame.v * 2).to_csv(path, index=False)
    again = runner.invoke(app, command)
    assert again.exit_code == 1 and "trained on other contents" in again.stderr
    (run,) = (tmp_path / "r").glob("klcycle_*")
    evaluated = runner.invoke(app, ["evaluate", str(run)])
    assert evaluated.exit_code == 1 and "the file changed since" in evaluated.stderr
    assert "put back the file it was trained on, or retrain on this one" in evaluated.stderr  # evaluate takes no file


def test_config_mistakes_are_named(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = runner.invoke(app, ["train", "--config", str(empty)])
    assert result.exit_code == 1 and "is empty" in result.stderr
    modelless = tmp_path / "m.yaml"
    modelless.write_text("train:\n  epochs: 2\n")
    result = runner.invoke(app, ["train", "--config", str(modelless)])
    assert result.exit_code == 1 and "no 'model' section" in result.stderr
    modelless.write_text("modle:\n  name: klcycle\n")  # misspelt: named as such, not as missing
    result = runner.invoke(app, ["train", "--config", str(modelless)])
    assert result.exit_code == 1 and "unknown key 'modle'; did you mean 'model'?" in result.stderr
    result = runner.invoke(
        app, ["train", "--set", "model.temperature=hot", "--out", str(tmp_path / "r"), "--data", "synthetic"]
    )
    assert result.exit_code == 1 and "model.temperature must be a number (got 'hot')" in result.stderr


def test_forecast_nan_advice_names_flags_forecast_has(tmp_path):
    path, frame = hourly_with_gap(tmp_path)
    assert (
        runner.invoke(
            app, ["train", "--data", str(path), "--pred-len", "24", "--out", str(tmp_path / "r"), *FAST]
        ).exit_code
        == 0
    )
    (run,) = (tmp_path / "r").glob("klcycle_*")
    frame.iloc[-3, 1] = np.nan
    holed = write(tmp_path, "holed.csv", frame)
    result = runner.invoke(app, ["forecast", str(run), "--input", str(holed), "--output", str(tmp_path / "o.csv")])
    error = result.stderr.split("error: ")[1]
    assert result.exit_code == 1 and "--fill" not in error
    # from the file's end there is no later start to suggest; the cell is named
    column = frame.columns[1]
    assert f"last at data row {len(frame) - 2}, column '{column}'" in error and "--start" not in error


def test_a_full_disk_ends_in_one_line_and_leaves_no_partial_run(tmp_path, monkeypatch):
    from specmem_cli import checkpoint

    command = [
        "train",
        "--data",
        "synthetic",
        "--pred-len",
        "24",
        "--set",
        "train.max_steps=2",
        "--seeds",
        "2021",
        "--out",
        str(tmp_path / "r"),
        "-q",
    ]
    monkeypatch.setattr(
        checkpoint.torch, "save", _raise(RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64"))
    )
    result = runner.invoke(app, command)
    assert result.exit_code == 1 and "could not write the training state" in result.stderr
    assert "Traceback" not in result.output
    assert not [p for p in (tmp_path / "r").iterdir() if not p.name.startswith(".")]
    monkeypatch.undo()
    assert runner.invoke(app, command).exit_code == 0
    (run,) = (tmp_path / "r").glob("*seed*")
    before = (run / "metrics.json").read_bytes()
    monkeypatch.setattr(
        checkpoint.os, "replace", _raise(OSError(errno.ENOSPC, "No space left on device", "metrics.json"))
    )
    result = runner.invoke(app, [*command[:-3], "--pred-len", "48", "--out", str(tmp_path / "r"), "-q"])
    assert result.exit_code == 1 and "no space left on the device" in result.stderr
    assert (run / "metrics.json").read_bytes() == before  # the finished run is untouched
    assert not list((tmp_path / "r").glob("*pl48*"))


def test_unwritable_places_and_a_file_for_a_directory_are_one_line_errors(tmp_path, monkeypatch):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    result = runner.invoke(app, ["train", "--data", "synthetic", "--out", str(blocker), "-q"])
    assert result.exit_code == 1 and "is a file, not a directory" in result.stderr
    from specmem_cli.data import registry

    monkeypatch.setattr(
        registry.Path, "mkdir", _raise(PermissionError(errno.EROFS, "Read-only file system", "/ro/data"))
    )
    result = runner.invoke(app, ["download", "ETTh1", "--dir", "/ro/data", "--mirror", str(tmp_path)])
    assert (
        result.exit_code == 1
        and "/ro/data: read-only file system" in result.stderr
        and "Traceback" not in result.output
    )


def test_a_run_directory_deleted_mid_run_is_named(tmp_path, monkeypatch):
    from specmem_cli.training import run as runs

    real_fit = runs.fit

    def fit_then_delete(*args, **kwargs):
        result = real_fit(*args, **kwargs)
        for path in (tmp_path / "r").glob("*seed*"):
            import shutil

            shutil.rmtree(path)
        return result

    monkeypatch.setattr(runs, "fit", fit_then_delete)
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            "synthetic",
            "--pred-len",
            "24",
            "--set",
            "train.max_steps=2",
            "--out",
            str(tmp_path / "r"),
            "-q",
        ],
    )
    assert result.exit_code == 1 and "was deleted while its run trained" in result.stderr


def test_two_sweeps_into_one_directory_train_each_run_once(tmp_path):
    command = [sys.executable, "-m", "specmem_cli", "train", "--data", "synthetic", "--pred-len", "24", "48"]
    command += ["--set", "train.max_steps=20", "--out", str(tmp_path / "r"), "--json", "-q"]
    first, second = (
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    )
    outputs = [process.communicate(timeout=600) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    runs = [run for stdout, _ in outputs for run in json.loads(stdout)["runs"]]
    trained = sorted(run["run_dir"] for run in runs if not run["reused"])
    assert trained == sorted({run["run_dir"] for run in runs}) and len(trained) == 6  # 2 horizons x 3 seeds


def _raise(exception: BaseException):
    def fail(*args, **kwargs):
        raise exception

    return fail


def test_a_file_of_any_extension_and_folder_names_its_run_inside_out(tmp_path, monkeypatch):
    """A run's directory is named by the file's name alone: a .tsv path, absolute or ``../``, never carries
    its folders into the name, so runs stay inside --out."""
    from specmem_cli.config import dataset_label

    names = ("ETTh1", "d/tab.tsv", "/x/y/abs.txt", "../../z.csv", "weather.v1")
    assert [dataset_label(name) for name in names] == ["ETTh1", "tab.tsv", "abs.txt", "z", "weather.v1"]
    stamps = pd.date_range("2020-01-01", periods=400, freq="D").astype(str)
    (tmp_path / "data" / "deep").mkdir(parents=True)
    path = tmp_path / "data" / "deep" / "tab.tsv"
    pd.DataFrame({"date": stamps, "y": seasonal(400, 7)}).to_csv(path, sep="\t", index=False)
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    result = runner.invoke(app, ["train", "--data", "../../data/deep/tab.tsv", "--out", "runs", *FAST])
    assert result.exit_code == 0, result.output
    assert [p.name for p in (work / "runs").glob("klcycle_*")] == ["klcycle_tab.tsv_sl96_pl31_seed2021"]
    assert not (work / "data").exists()


def test_evaluate_finds_a_moved_training_file_with_data(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=400, freq="D").astype(str)
    path = write(tmp_path, "moving.csv", pd.DataFrame({"date": stamps, "y": seasonal(400, 7)}))
    trained = runner.invoke(app, ["train", "--data", str(path), "--out", str(tmp_path / "r"), *FAST])
    assert trained.exit_code == 0, trained.output
    (run,) = (tmp_path / "r").glob("klcycle_*")
    moved = path.rename(tmp_path / "elsewhere.csv")
    lost = runner.invoke(app, ["evaluate", str(run)])
    assert lost.exit_code == 1 and "no longer there" in lost.stderr and "--data FILE" in lost.stderr
    found = runner.invoke(app, ["evaluate", str(run), "--data", str(moved), "--json"])
    assert found.exit_code == 0, found.output
    expected = json.loads((run / "metrics.json").read_text())["record"]["mse"]
    assert json.loads(found.stdout)["runs"][0]["mse"] == expected
    other = write(tmp_path, "other.csv", pd.DataFrame({"date": stamps, "y": seasonal(400, 7, seed=3)}))
    wrong = runner.invoke(app, ["evaluate", str(run), "--data", str(other)])
    assert wrong.exit_code == 1 and "content hash differs" in wrong.stderr


def test_evaluate_and_calibrate_print_one_table_per_model(tmp_path):
    """A sweep directory of two models is two tables and their comparison, never one table of both."""
    stamps = pd.date_range("2020-01-01", periods=400, freq="h").astype(str)
    path = write(tmp_path, "two.csv", pd.DataFrame({"date": stamps, "y": seasonal(400, 24)}))
    out = str(tmp_path / "r")
    models = ["--model", "dlinear", "klcycle", "--pred-len", "24"]
    assert runner.invoke(app, ["train", "--data", str(path), "--out", out, *models, *FAST]).exit_code == 0
    for command in (["evaluate", out], ["calibrate", out]):
        result = runner.invoke(app, command)
        assert result.exit_code == 0, result.output
        assert "dlinear on two," in result.stderr and "klcycle on two," in result.stderr
        assert "summary: test MSE" in result.stderr


def test_sweep_flag_mistakes_are_named_before_any_training(tmp_path):
    out = ["--out", str(tmp_path / "r"), "--data", "synthetic"]
    twice = runner.invoke(app, ["train", *out, "--model", "klcycle", "klcycle"])
    assert twice.exit_code == 1 and "--model names 'klcycle' twice" in twice.stderr
    local = runner.invoke(app, ["train", *out, "--scheduler", "tcp://127.0.0.1:8786"])
    assert local.exit_code == 1 and "add --backend dask" in local.stderr
    assert not (tmp_path / "r").exists()


def test_forecasts_write_dates_as_the_input_wrote_them(tmp_path):
    """Day-first text stays day-first, a daily clock has no midnight time in CSV or JSON; a pattern that does
    not reproduce the input exactly (zoned stamps) keeps ISO timestamps."""
    days = pd.date_range("2021-01-01", periods=400, freq="D")
    path = write(tmp_path, "eu.csv", pd.DataFrame({"Datum": days.strftime("%d/%m/%Y"), "y": seasonal(400, 7)}))
    assert runner.invoke(app, ["train", "--data", str(path), "--out", str(tmp_path / "r"), *FAST]).exit_code == 0
    (run,) = (tmp_path / "r").glob("klcycle_*")
    args = ["forecast", str(run), "--input", str(path), "--output"]
    assert runner.invoke(app, [*args, str(tmp_path / "f.csv")]).exit_code == 0
    assert pd.read_csv(tmp_path / "f.csv")["Datum"].iloc[0] == "05/02/2022"
    assert runner.invoke(app, [*args, str(tmp_path / "f.json")]).exit_code == 0
    assert json.loads((tmp_path / "f.json").read_text())["windows"][0]["dates"][0] == "05/02/2022"
    from specmem_cli.data.dates import written_format

    zoned = pd.Series(["2020-01-01T00:00:00+01:00", "2020-01-01T01:00:00+01:00"])
    assert (
        written_format(zoned, pd.DatetimeIndex(["2019-12-31 23:00", "2020-01-01 00:00"]), "ISO dates", "+01:00") is None
    )
