"""`specmem forecast` and `specmem inspect-modes` on a run trained on the real ETTh1 file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from specmem_cli.checkpoint import load_run
from specmem_cli.cli import app
from specmem_cli.inference.forecast import forecast
from specmem_cli.memory import explained_variance
from specmem_cli.training.sweep import run_sweep
from specmem_cli.training.trainer import predict_windows
from tests.conftest import ETTH1, tiny_config

runner = CliRunner()


def train_on_etth1(directory, policy):
    config = tiny_config(
        data={"name": str(ETTH1), "seq_len": 96, "pred_lens": [24]},
        train={"epochs": 1, "max_steps": 6, "memory_at_eval": policy},
    )
    (record,) = run_sweep(config, directory)
    return record.run_dir


@pytest.fixture(scope="module")
def frozen_run(tmp_path_factory):
    return train_on_etth1(tmp_path_factory.mktemp("frozen"), "frozen")


@pytest.fixture(scope="module")
def reset_run(tmp_path_factory):
    return train_on_etth1(tmp_path_factory.mktemp("reset"), "reset")


@pytest.fixture(scope="module")
def etth1_frame():
    return pd.read_csv(ETTH1)


def test_forecast_round_trips_the_first_test_window(frozen_run, etth1_frame):
    run = load_run(frozen_run)
    data = run.data()
    prediction, *_ = next(predict_windows(run.model, data.test, 32, data.n_outputs))
    expected = run.scaler.inverse_transform(prediction[0].double().numpy())
    first_target = etth1_frame["date"][11520]  # the test split's first target row (TSL border)
    result = forecast(frozen_run, ETTH1, start=first_target)
    np.testing.assert_allclose(result.windows[0].forecast, expected, rtol=1e-5, atol=1e-5)
    assert result.windows[0].mse is not None and "frozen" in result.metadata["memory"]


def test_forecast_from_the_end_writes_future_timestamps(frozen_run, etth1_frame, tmp_path):
    output = tmp_path / "future.csv"
    result = runner.invoke(app, ["forecast", frozen_run, "--input", str(ETTH1), "--output", str(output)])
    assert result.exit_code == 0, result.output
    written = pd.read_csv(output, parse_dates=["date"])
    assert list(written.columns) == ["date", *etth1_frame.columns[1:]]
    last = pd.Timestamp(etth1_frame["date"].iloc[-1])
    assert len(written) == 24 and written["date"].iloc[0] == last + pd.Timedelta(hours=1)
    assert written["date"].diff().dropna().eq(pd.Timedelta(hours=1)).all()
    assert "memory: frozen" in result.stderr


def test_rolling_backtest_json_and_parquet(frozen_run, etth1_frame, tmp_path):
    start = etth1_frame["date"][17300]
    output = tmp_path / "backtest.json"
    result = runner.invoke(
        app,
        ["forecast", frozen_run, "--input", str(ETTH1), "--output", str(output), "--start", start, "--rolling", "50"],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(output.read_text())
    windows = document["windows"]
    assert len(windows) == 3  # origins at rows 17300, 17350, 17400 (the file has 17420 rows)
    assert windows[0]["mse"] is not None and windows[-1]["mse"] is None
    assert windows[-1]["actual"][19] is not None and windows[-1]["actual"][20][0] is None
    assert document["metadata"]["memory"].startswith("frozen")
    parquet = tmp_path / "backtest.parquet"
    args = [
        "forecast",
        frozen_run,
        "--input",
        str(ETTH1),
        "--output",
        str(parquet),
        "--start",
        start,
        "--rolling",
        "50",
    ]
    assert runner.invoke(app, args).exit_code == 0
    frame = pd.read_parquet(parquet)
    assert len(frame) == 72 and "OT_actual" in frame.columns and "origin" in frame.columns


def test_existing_output_needs_overwrite_and_stays_intact(frozen_run, tmp_path):
    output = tmp_path / "keep.csv"
    output.write_text("precious\n")
    args = ["forecast", frozen_run, "--input", str(ETTH1), "--output", str(output)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "--overwrite" in result.stderr and output.read_text() == "precious\n"
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    assert output.read_text().startswith("date,")


def test_overwrite_writes_through_a_link_or_a_device_and_keeps_permissions(frozen_run, tmp_path):
    """--overwrite replaces what a symbolic link points to (the link stays), streams into a device instead of
    replacing its node, and a written file has the permissions of the one it replaced (a new one, the umask's)."""
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    target.chmod(0o640)
    link.symlink_to(target)
    args = ["forecast", frozen_run, "--input", str(ETTH1), "--overwrite", "--output"]
    assert runner.invoke(app, [*args, str(link)]).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("date,") and target.stat().st_mode & 0o777 == 0o640
    loop = tmp_path / "loop.csv"
    loop.symlink_to(loop)
    looped = runner.invoke(app, [*args, str(loop)])
    assert looped.exit_code == 1 and "points back to itself" in looped.stderr and loop.is_symlink()
    fresh = tmp_path / "fresh.csv"
    assert runner.invoke(app, [*args, str(fresh)]).exit_code == 0
    umask = os.umask(0)
    os.umask(umask)
    assert fresh.stat().st_mode & 0o777 == 0o666 & ~umask
    assert runner.invoke(app, [*args, "/dev/null", "--format", "csv"]).exit_code == 0
    assert Path("/dev/null").is_char_device()
    if Path("/dev/full").is_char_device():  # a device that refuses every byte: one line, the node untouched
        full = runner.invoke(app, [*args, "/dev/full", "--format", "csv"])
        assert full.exit_code == 1 and "Traceback" not in full.output and Path("/dev/full").is_char_device()


def _csv(tmp_path, frame, name):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_forecast_input_errors(frozen_run, etth1_frame, tmp_path):
    recent = etth1_frame.tail(200).reset_index(drop=True)
    with_nan = recent.copy()
    with_nan.loc[190, "OT"] = np.nan
    irregular = recent.drop(index=[10, 50, 51, 120]).reset_index(drop=True)
    jitter = pd.to_timedelta(np.arange(len(irregular)), unit="s")
    irregular["date"] = (pd.to_datetime(irregular["date"]) + jitter).astype(str)
    cases = {
        "missing": (_csv(tmp_path, recent.drop(columns=["HULL"]), "m.csv"), "missing HULL"),
        "extra": (_csv(tmp_path, recent.assign(extra=1.0), "e.csv"), "extra extra"),
        "short": (_csv(tmp_path, recent.head(50), "s.csv"), "needs 96 rows before it"),
        "nan": (_csv(tmp_path, with_nan, "n.csv"), "NaN/inf"),
        "irregular": (_csv(tmp_path, irregular, "i.csv"), "trained on hourly data"),
    }
    for name, (path, fragment) in cases.items():
        result = runner.invoke(
            app, ["forecast", frozen_run, "--input", path, "--output", str(tmp_path / f"{name}.csv")]
        )
        assert result.exit_code == 1 and fragment in result.stderr, (name, result.stderr)
        assert "Traceback" not in result.output and not (tmp_path / f"{name}.csv").exists()
    bad_format = runner.invoke(
        app, ["forecast", frozen_run, "--input", str(ETTH1), "--output", str(tmp_path / "x.xlsx")]
    )
    assert bad_format.exit_code == 1 and "unknown output format" in bad_format.stderr
    nowhere = runner.invoke(
        app, ["forecast", frozen_run, "--input", str(ETTH1), "--output", str(tmp_path / "no" / "x.csv")]
    )
    assert nowhere.exit_code == 1 and "not an existing writable directory" in nowhere.stderr
    recent_csv = _csv(tmp_path, recent, "r.csv")
    agreeing = runner.invoke(
        app, ["forecast", frozen_run, "--input", recent_csv, "--output", str(tmp_path / "f.csv"), "--freq", "h"]
    )
    assert agreeing.exit_code == 0, agreeing.output
    contradicting = runner.invoke(
        app, ["forecast", frozen_run, "--input", recent_csv, "--output", str(tmp_path / "g.csv"), "--freq", "D"]
    )
    assert contradicting.exit_code == 1 and "--freq D contradicts the data's hourly steps" in contradicting.stderr
    assert not (tmp_path / "g.csv").exists()


def test_inspect_modes_png_table_and_json(frozen_run, tmp_path):
    figure = tmp_path / "modes.png"
    result = runner.invoke(app, ["inspect-modes", frozen_run, "--output", str(figure), "--json", "--top", "3"])
    assert result.exit_code == 0, result.output
    image = matplotlib.image.imread(figure)
    assert image.shape[0] >= 600 and image.shape[1] >= 900 and image.std() > 0
    document = json.loads(result.stdout)
    explained = np.array(document["explained_variance"])
    assert len(explained) == 3 and explained.sum() <= 1 + 1e-9 and (np.diff(explained) <= 1e-12).all()
    memory = load_run(frozen_run).model.memory
    spectrum = memory.spectrum()
    np.testing.assert_allclose(document["eigenvalues"], spectrum.eigenvalues[:3].numpy())
    np.testing.assert_allclose(explained, explained_variance(spectrum)[:3].numpy())
    np.testing.assert_allclose(np.array(document["modes"]).T, spectrum.modes[:, :3].numpy())
    np.testing.assert_allclose(document["tokens"], memory.frozen_tokens.numpy(), rtol=1e-6, atol=1e-7)
    assert "cumulative" in result.stderr


def test_a_directory_given_as_the_output_file_is_named_as_one(frozen_run, tmp_path):
    forecast = ["forecast", frozen_run, "--input", str(ETTH1), "--output", str(tmp_path)]
    for command in (forecast, ["inspect-modes", frozen_run, "--output", str(tmp_path)]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1 and f"{tmp_path} is a directory; give --output a file path" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_inspect_modes_never_replaces_a_file_unasked(frozen_run, tmp_path):
    kept = tmp_path / "data.csv"
    kept.write_text("date,a\n2020-01-01,1\n")
    refused = runner.invoke(app, ["inspect-modes", frozen_run, "--output", str(kept), "--format", "png"])
    assert refused.exit_code == 1 and "already exists; pass --overwrite" in refused.stderr
    assert kept.read_text() == "date,a\n2020-01-01,1\n"
    replaced = runner.invoke(
        app, ["inspect-modes", frozen_run, "--output", str(kept), "--format", "png", "--overwrite"]
    )
    assert replaced.exit_code == 0, replaced.output
    assert kept.read_bytes().startswith(b"\x89PNG")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs a /proc that takes no new files")
def test_a_directory_that_takes_no_file_is_named_not_its_temporary_file(frozen_run):
    result = runner.invoke(app, ["inspect-modes", frozen_run, "--output", "/proc/specmem-modes.png"])
    message = result.stderr.strip()
    assert result.exit_code == 1 and len(message.splitlines()) == 1 and "Traceback" not in result.output
    assert message.startswith("error: ") and "/proc" in message and "choose another" in message
    assert ".tmp" not in message, "the user's path, not the temporary file specmem would have written"


def test_rebuilding_from_a_file_of_other_series_is_a_one_line_error(reset_run, tmp_path):
    stamps = pd.date_range("2016-07-01", periods=2000, freq="h").astype(str)
    other = tmp_path / "other.csv"
    pd.DataFrame({"date": stamps, "x": np.sin(np.arange(2000) / 4), "y": 1.0}).to_csv(other, index=False)
    args = ["inspect-modes", reset_run, "--output", str(tmp_path / "m.png"), "--from-data", str(other)]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "its series (x, y) are not those" in result.stderr and "give the file it was trained on" in result.stderr


def test_inspect_modes_empty_memory_offers_rebuild(reset_run, tmp_path):
    figure = tmp_path / "modes.svg"
    empty = runner.invoke(app, ["inspect-modes", reset_run, "--output", str(figure)])
    assert empty.exit_code == 1 and "--from-data" in empty.stderr and not figure.exists()
    rebuilt = runner.invoke(app, ["inspect-modes", reset_run, "--output", str(figure), "--from-data", str(ETTH1)])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert figure.read_text().lstrip().startswith("<?xml") and "rebuilt" in rebuilt.stderr
    checkpoint_state = torch.load(f"{reset_run}/checkpoint.pt", weights_only=True)["state_dict"]
    assert int(checkpoint_state["memory.filled"]) == 0, "inspecting never rewrites the checkpoint"


def test_a_wide_forecast_with_quantiles_is_one_frame_in_column_order(recwarn):
    """300 series x 3 levels and actuals: built at once (no fragmentation warning per column), in the order
    date, forecasts, each series' quantiles, actuals."""
    from specmem_cli.inference.forecast import ForecastResult, WindowForecast, to_frame

    columns = [f"s{i}" for i in range(300)]
    values = np.arange(4 * 300, dtype=float).reshape(4, 300)
    window = WindowForecast(
        0,
        pd.date_range("2020-01-01", periods=4, freq="h"),
        values,
        values + 1,
        quantiles={0.1: values - 1, 0.5: values, 0.9: values + 2},
    )
    frame = to_frame(ForecastResult(columns, [window]))
    assert not [w for w in recwarn if issubclass(w.category, pd.errors.PerformanceWarning)]
    assert list(frame.columns[:3]) == ["date", "s0", "s1"] and list(frame.columns[301:304]) == [
        "s0_q0.1",
        "s0_q0.5",
        "s0_q0.9",
    ]
    assert frame.columns[-1] == "s299_actual" and frame.shape == (4, 1 + 300 * 5)
    assert (frame["s7_q0.9"] == values[:, 7] + 2).all()


def test_output_may_not_be_the_input_or_contradict_its_format(frozen_run, tmp_path):
    copy = tmp_path / "in.csv"
    copy.write_bytes(ETTH1.read_bytes())
    args = ["forecast", frozen_run, "--input", str(copy), "--output"]
    same = runner.invoke(app, [*args, str(copy), "--overwrite"])
    assert same.exit_code == 1 and "--output names the --input file" in same.stderr
    drawn = tmp_path / "in.png"  # a CSV under a figure's name
    drawn.write_bytes(ETTH1.read_bytes())
    plot_args = ["forecast", frozen_run, "--input", str(drawn), "--output", str(tmp_path / "f.csv"), "--plot"]
    figure = runner.invoke(app, [*plot_args, str(drawn), "--overwrite"])
    assert figure.exit_code == 1 and "--plot names the --input file" in figure.stderr
    assert drawn.read_bytes() == ETTH1.read_bytes()
    assert copy.read_bytes() == ETTH1.read_bytes()
    clash = runner.invoke(app, [*args, str(tmp_path / "x.csv"), "--format", "json"])
    assert clash.exit_code == 1 and "--format json would write JSON into x.csv" in clash.stderr
    assert not (tmp_path / "x.csv").exists()
    assert runner.invoke(app, [*args, str(tmp_path / "x.out"), "--format", "json"]).exit_code == 0
    assert runner.invoke(app, [*args, "/dev/null", "--format", "csv"]).exit_code == 0  # a device needs no --overwrite
    piped = runner.invoke(app, [*args, "-", "--format", "csv"])  # standard output, through its open stream
    assert piped.exit_code == 0 and piped.stdout.startswith("date,HUFL")


def test_evaluate_data_keeps_the_split_a_renamed_copy_would_change(frozen_run, tmp_path):
    """ETTh1 under another name would get the 70/10/20 split instead of ETT's month borders: --data scores
    the run on the split it trained with."""
    copy = tmp_path / "ETTh1_2016.csv"
    copy.write_bytes(ETTH1.read_bytes())
    original = runner.invoke(app, ["evaluate", frozen_run, "--json"])
    moved = runner.invoke(app, ["evaluate", frozen_run, "--json", "--data", str(copy)])
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.stdout)["runs"][0]["mse"] == json.loads(original.stdout)["runs"][0]["mse"]
