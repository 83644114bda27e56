"""The standard suite: data set protocols and verified hashes, the seasonal cycle chosen from the
data, and the analog memory's validation gate."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from specmem_cli.checkpoint import load_run
from specmem_cli.cli import app
from specmem_cli.config import config_from_dict, load_config, load_data, with_protocol
from specmem_cli.data.registry import KNOWN_DATASETS, protocol_for
from specmem_cli.data.seasonality import clock_periods, detect_cycle
from specmem_cli.memory import prepare_for_evaluation
from specmem_cli.training.sweep import run_sweep
from specmem_cli.training.trainer import evaluate_windows, training_batch
from tests.conftest import SHARED

runner = CliRunner()
WEATHER = SHARED / "data" / "weather" / "weather.csv"


def test_each_protocol_and_its_borders(tmp_path):
    illness = protocol_for("national_illness")
    assert (illness.seq_len, illness.pred_lens) == (36, (24, 36, 48, 60))
    assert protocol_for("data/ETTm2.csv").split == "ett_minute" and protocol_for("ETTh2").split == "ett_hour"
    assert protocol_for("weather").split == "ratio" and protocol_for("my_sales.csv").pred_lens == (96, 192, 336, 720)
    config = with_protocol(config_from_dict({"data": {"name": str(tmp_path / "national_illness.csv")}}))
    assert (config.data.seq_len, config.data.pred_lens) == (36, [24, 36, 48, 60])
    explicit = with_protocol(config_from_dict({"data": {"name": "national_illness", "seq_len": 104}}))
    assert (explicit.data.seq_len, explicit.data.pred_lens) == (104, [24, 36, 48, 60])
    assert set(KNOWN_DATASETS) >= {"ETTh1", "ETTh2", "ETTm1", "ETTm2", "weather", "electricity", "traffic"}


def test_a_local_file_with_a_known_name_gets_its_protocol(tmp_path):
    """An ILI-shaped weekly file named national_illness.csv trains at look-back 36, horizons 24-60, 70/10/20."""
    rows = 966
    weeks = np.arange(rows)
    frame = pd.DataFrame({"date": pd.date_range("2002-01-06", periods=rows, freq="W")})
    for column in ("A", "B", "OT"):
        frame[column] = np.sin(2 * np.pi * weeks / 52) + 0.1 * np.random.default_rng(0).standard_normal(rows)
    path = tmp_path / "national_illness.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(path),
            "--seeds",
            "1",
            "--set",
            "train.epochs=1",
            "--out",
            str(tmp_path / "r"),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [run["pred_len"] for run in runs] == [24, 36, 48, 60]
    run = load_run(runs[0]["run_dir"])
    assert run.config.data.seq_len == 36 and run.checkpoint.model_params["cycle_len"] == 52


def test_weather_verifies_with_either_line_ending_and_unhashed_sets_are_refused(tmp_path):
    if not WEATHER.is_file():
        pytest.skip(f"{WEATHER} is absent")
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    for endings, content in (("crlf", WEATHER.read_bytes()), ("lf", WEATHER.read_bytes().replace(b"\r\n", b"\n"))):
        (mirror / "weather.csv").write_bytes(content)
        result = runner.invoke(app, ["download", "weather", "--dir", str(tmp_path / endings), "--mirror", str(mirror)])
        assert result.exit_code == 0, f"{endings}: {result.output}"
    no_url = runner.invoke(app, ["download", "weather", "--dir", str(tmp_path / "none")])
    assert no_url.exit_code == 1 and "--mirror" in no_url.stderr and "Traceback" not in no_url.output
    unhashed = runner.invoke(app, ["download", "electricity", "--dir", str(tmp_path / "e"), "--mirror", str(mirror)])
    assert unhashed.exit_code == 1 and "knows no hash for 'electricity'" in unhashed.stderr
    assert not (tmp_path / "e" / "electricity.csv").exists()
    missing = runner.invoke(app, ["train", "--data", "electricity", "--out", str(tmp_path / "r")])
    assert missing.exit_code == 1 and "put electricity.csv there yourself" in missing.stderr


@pytest.mark.parametrize("name", ["ETTh1", "ETTm1", "ETTm2", "weather"])
def test_the_default_trains_every_window_of_each_shared_file_every_epoch(name):
    """train.epoch_samples only trims wide files: the suite's figures are those of full epochs; and
    train.min_steps_per_epoch shrinks the batch of ETTh1 alone."""
    path = SHARED / "data" / ("weather" if name == "weather" else "ETT-small") / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    config = load_config("default")
    config = with_protocol(dataclasses.replace(config, data=dataclasses.replace(config.data, name=str(path))))
    data = load_data(config, min(config.data.pred_lens))
    assert data.train.windows_for(config.train.epoch_samples) is None
    # and in batches of 256 windows, but on ETTh1, whose 8,449 windows would make 34 steps an epoch
    expected = len(data.train) // 64 if name == "ETTh1" else 256
    assert training_batch(config.train, len(data.train)) == expected


def test_a_horizon_longer_than_the_validation_split_names_the_longest_that_fits(tmp_path):
    frame = pd.DataFrame({"date": pd.date_range("2020-01-01", periods=1000, freq="h")})
    frame["OT"] = np.sin(np.arange(1000) / 4)
    path = tmp_path / "short.csv"
    frame.to_csv(path, index=False)
    result = runner.invoke(app, ["train", "--data", str(path), "--pred-len", "150", "--out", str(tmp_path / "r")])
    # validation: rows 700-800 (100 rows of targets): 100 steps of horizon at most
    assert result.exit_code == 1 and "splits of 700/100/200 rows cannot hold horizon 150" in result.stderr
    assert "horizons up to 100 fit with look-back 96" in result.stderr
    assert not list((tmp_path / "r").glob("*/metrics.json"))


def seasonal(rows: int, period: int, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    t = np.arange(rows)[:, None]
    trend = np.cumsum(generator.standard_normal((rows, 2)), axis=0) * 0.05
    return np.sin(2 * np.pi * t / period + np.array([0.0, 1.0])) + trend + noise * generator.standard_normal((rows, 2))


@pytest.mark.parametrize(
    ("step", "period", "expected"),
    [("1h", 24, 24), ("15min", 96, 96), ("1D", 7, 7), ("7D", 52, 52), ("30D", 12, 12)],
)
def test_the_cycle_is_read_from_the_clock_and_the_data(step, period, expected):
    rows = max(8 * period, 400)
    assert detect_cycle(seasonal(rows, period), np.arange(rows), pd.Timedelta(step)) == expected


def test_no_cycle_in_noise_and_the_spectrum_without_a_clock():
    noise = np.random.default_rng(1).standard_normal((2000, 3))
    assert detect_cycle(noise, np.arange(2000), pd.Timedelta("1h")) == 1
    assert clock_periods(pd.Timedelta("7min"))[:2] == [206, 1440]  # a day is 205.7 steps: near enough
    assert clock_periods(pd.Timedelta("5D")) == [73]  # neither a day nor a week: a year of 73 steps
    assert detect_cycle(seasonal(1000, 10), np.arange(1000), None) == 10


def test_a_weekly_cycle_wins_only_when_the_week_says_more_than_the_day():
    rows = 24 * 7 * 12
    t = np.arange(rows)
    daily = np.sin(2 * np.pi * t / 24)[:, None]
    weekday = (t // 24 % 7 < 5).astype(float)[:, None]  # weekdays differ from weekends: a weekly pattern
    noise = 0.2 * np.random.default_rng(2).standard_normal((rows, 1))
    assert detect_cycle(daily + noise, t, pd.Timedelta("1h")) == 24
    assert detect_cycle(daily * (0.2 + weekday) + noise, t, pd.Timedelta("1h")) == 168


def gated_config(tmp_path, series: np.ndarray, **model):
    frame = pd.DataFrame(series, columns=[f"s{i}" for i in range(series.shape[1])])
    frame.insert(0, "date", pd.date_range("2021-01-01", periods=len(series), freq="h"))
    path = tmp_path / "series.csv"
    frame.to_csv(path, index=False)
    raw = load_config("default").to_dict()
    raw["data"].update({"name": str(path), "pred_lens": [24], "seq_len": 48})
    raw["model"].update(model)
    raw["train"].update({"epochs": 3})
    raw["seeds"] = [5]
    return config_from_dict(raw)


def test_the_memory_is_dropped_where_it_does_not_lower_validation_error(tmp_path):
    """On white noise the analogs' futures carry nothing: the gate closes, the checkpoint holds no memory,
    and the model's metrics are exactly its memory-off self's."""
    noise = np.random.default_rng(3).standard_normal((3000, 3))
    (gated,) = run_sweep(gated_config(tmp_path, noise), tmp_path / "on")
    (off,) = run_sweep(gated_config(tmp_path, noise, memory="off"), tmp_path / "off")
    fit = json.loads((Path(gated.run_dir) / "metrics.json").read_text())["fit"]
    assert fit["memory"]["memory_used"] is False and fit["memory"]["shrink"] == 0.0
    assert fit["memory"]["val_mse_best_blend"] > (1 - 0.005) * fit["memory"]["val_mse_without_memory"]
    model = load_run(gated.run_dir).model
    assert not model.memory.ready and not model.reads_memory and not model.blend.any()
    assert (gated.mse, gated.mae) == (off.mse, off.mae)


def test_the_memory_is_kept_where_analogs_predict_what_the_network_cannot(tmp_path):
    """A series that repeats one of a few random 72-step shapes in random order: a window's shape names its
    future, which a linear map cannot recall but the analog memory can."""
    generator = np.random.default_rng(4)
    shapes = generator.standard_normal((4, 72, 2)).cumsum(axis=1) * 0.3
    series = np.concatenate([shapes[i] for i in generator.integers(0, 4, 3000 // 72 + 1)])[:3000]
    series = series + 0.05 * generator.standard_normal(series.shape)
    (record,) = run_sweep(gated_config(tmp_path, series), tmp_path / "runs")
    fit = json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]
    assert fit["memory"]["memory_used"] is True
    assert fit["memory"]["val_mse_with_memory"] < 0.9 * fit["memory"]["val_mse_without_memory"]
    run = load_run(record.run_dir)
    assert run.model.reads_memory and 0 < float(run.model.blend.max()) <= 1
    # the network trained before the memory existed: scored without it, it is the memory-off run's network
    (off,) = run_sweep(gated_config(tmp_path, series, memory="off"), tmp_path / "off")
    prepare_for_evaluation(run.model, "reset")
    data = run.data()
    alone = evaluate_windows(run.model, data.test, run.config.train.batch_size, data.n_outputs)
    assert (alone.mse, alone.mae) == (off.mse, off.mae) and off.mse > record.mse


def test_several_data_sets_and_models_in_one_call_with_each_models_own_recipe(tmp_path):
    paths = []
    for name, period in (("alpha", 24), ("beta", 12)):
        frame = pd.DataFrame(seasonal(1200, period), columns=["x", "OT"])
        frame.insert(0, "date", pd.date_range("2020-01-01", periods=1200, freq="h"))
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        paths.append(str(tmp_path / f"{name}.csv"))
    args = ["train", "--data", *paths, "--model", "klcycle", "dlinear", "--pred-len", "12", "--seeds", "1"]
    args += ["--set", "data.seq_len=24", "train.epochs=1", "--out", str(tmp_path / "runs"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document["summary"]) == {"alpha", "beta"}
    assert set(document["summary"]["alpha"]) == {"klcycle", "dlinear"}
    assert "summary: test MSE / MAE averaged over horizons" in result.stderr
    recipes = {run["model"]: load_run(run["run_dir"]).config.train for run in document["runs"]}
    assert (recipes["klcycle"].lr, recipes["klcycle"].batch_size) == (0.01, 256)  # configs/default.yaml
    assert (recipes["dlinear"].lr, recipes["dlinear"].batch_size) == (1e-4, 32)  # DLinear's own: TSL defaults
    cycles = {Path(run["run_dir"]).name: load_run(run["run_dir"]).checkpoint.model_params for run in document["runs"]}
    assert cycles["klcycle_alpha_sl24_pl12_seed1"]["cycle_len"] == 24
