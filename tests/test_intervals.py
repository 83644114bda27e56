"""Forecast intervals: calibration on data whose true quantiles are known, the checkpoint round trip,
`forecast --quantiles/--plot`, `evaluate --quantiles`, `calibrate`, and their errors."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from statistics import NormalDist
from types import SimpleNamespace

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from specmem_cli.checkpoint import load_checkpoint, load_run
from specmem_cli.cli import app
from specmem_cli.config import updated, with_model
from specmem_cli.intervals import (
    SHRINKS,
    TRACKED_LEVELS,
    CalibrationCollector,
    IntervalCalibration,
    IntervalError,
    IntervalScorer,
    LevelTracker,
    adapted_levels,
    check_levels,
    stored_steps,
)
from specmem_cli.training.run import calibrate
from specmem_cli.training.sweep import run_sweep
from tests.conftest import ETTH1, tiny_config

runner = CliRunner()
LEVELS = np.array([0.05, 0.1, 0.5, 0.9, 0.95])


def normal_quantile(levels):
    return np.array([NormalDist().inv_cdf(level) for level in np.atleast_1d(levels)])


def gaussian_windows(rng, count, pred_len=8, series=3, heteroscedastic=False):
    """Windows of a process whose forecast error is Gaussian with a known scale ``s`` per series, whatever
    the input's spread, or with ``heteroscedastic`` ``s`` times the input's own spread (the recipe's assumption)."""
    spread = rng.uniform(0.5, 2.0, size=(count, series))
    inputs = rng.standard_normal((count, 48, series))
    inputs = (inputs - inputs.mean(1, keepdims=True)) / inputs.std(1, keepdims=True) * spread[:, None, :]
    sigma = np.array([0.5, 1.0, 2.0])[:series]
    scale = sigma * (spread if heteroscedastic else np.ones_like(spread))
    prediction = rng.standard_normal((count, pred_len, series))
    target = prediction + rng.standard_normal((count, pred_len, series)) * scale[:, None, :]
    return [torch.from_numpy(a) for a in (prediction, target, inputs)], scale


def calibrated(rng, count=3000, **options):
    collector = CalibrationCollector(8, 3)
    (prediction, target, inputs), _ = gaussian_windows(rng, count, **options)
    for start in range(0, count, 256):  # batch by batch, as evaluation hands them over
        collector.add(prediction[start : start + 256], target[start : start + 256], inputs[start : start + 256])
    return collector.finish()


def test_coverage_and_quantiles_match_a_gaussian_process():
    rng = np.random.default_rng(0)
    calibration = calibrated(rng)
    (prediction, target, inputs), scale = gaussian_windows(rng, 4000)
    offsets = calibration.offsets(calibration.quantiles(LEVELS), inputs.std(1, unbiased=False))
    truth = normal_quantile(LEVELS)[None, :, None, None] * scale[:, None, None, :]
    np.testing.assert_allclose(offsets.mean(axis=(0, 2)), truth.mean(axis=(0, 2)), rtol=0.08, atol=0.03)
    scorer = IntervalScorer(calibration, LEVELS)
    scorer.add(prediction, target, inputs)
    result = scorer.result()
    assert 0.87 <= result["coverage"]["90"] <= 0.93 and 0.77 <= result["coverage"]["80"] <= 0.83
    widths = 2 * normal_quantile([0.95, 0.9])[:, None] * np.array([0.5, 1.0, 2.0])
    assert result["width"]["90"] == pytest.approx(widths[0].mean(), rel=0.08)


def test_scale_follows_the_input_where_the_error_does():
    """Errors proportional to the input's spread: the recipe picks a small shrink, and calm and turbulent
    windows are each covered (a constant interval would over-cover one group and under-cover the other)."""
    rng = np.random.default_rng(1)
    calibration = calibrated(rng, heteroscedastic=True)
    assert calibration.shrink == SHRINKS[0]
    (prediction, target, inputs), _ = gaussian_windows(rng, 4000, heteroscedastic=True)
    spread = inputs.std(1, unbiased=False).mean(1)
    for group in (spread < spread.median(), spread >= spread.median()):
        scorer = IntervalScorer(calibration, LEVELS)
        scorer.add(prediction[group], target[group], inputs[group])
        assert 0.75 <= scorer.result()["coverage"]["80"] <= 0.85


def test_homoscedastic_errors_choose_plain_quantiles():
    assert calibrated(np.random.default_rng(2)).shrink == SHRINKS[-1]


def test_few_windows_pool_series_and_limit_the_levels():
    calibration = calibrated(np.random.default_rng(3), count=40)
    assert calibration.pooled and calibration.windows == 40
    low, high = calibration.resolution()
    assert low == pytest.approx(1 / 121) and high == pytest.approx(120 / 121)
    with pytest.raises(IntervalError, match="beyond what 40 validation windows can calibrate"):
        check_levels([0.005, 0.5], calibration)
    assert list(check_levels([0.9, 0.1], calibration)) == [0.1, 0.9]


def test_a_run_with_too_few_validation_windows_reports_no_interval_rather_than_a_zero_width_one(tmp_path):
    stamps = pd.date_range("2020-01-01", periods=600, freq="h").astype(str)
    path = tmp_path / "short.csv"
    pd.DataFrame({"date": stamps, "y": np.sin(np.arange(600) / 3.8)}).to_csv(path, index=False)
    args = ["--data", str(path), "--model", "dlinear", "--pred-len", "60", "--seeds", "1", "--out", str(tmp_path / "r")]
    trained = runner.invoke(app, ["train", *args, "--set", "train.epochs=1", "--json"])
    assert trained.exit_code == 0, trained.output
    assert "1 validation window(s) cannot calibrate the 0.1/0.5/0.9 levels" in trained.stderr
    (run,) = json.loads(trained.stdout)["runs"]
    assert run["intervals"] is None and "coverage" not in trained.stderr
    evaluated = runner.invoke(app, ["evaluate", run["run_dir"], "--json"])
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["runs"][0]["intervals"] is None
    asked = runner.invoke(app, ["evaluate", run["run_dir"], "--quantiles", "0.1", "0.9"])
    assert asked.exit_code == 1 and "beyond what 1 validation windows can calibrate" in asked.stderr


@pytest.mark.parametrize(
    ("levels", "fragment"),
    [([], "at least one"), ([0.0, 0.5], "outside (0, 1)"), ([1.5], "outside (0, 1)"), ([0.2, 0.2], "repeat")],
)
def test_bad_levels_are_one_line_errors(levels, fragment):
    with pytest.raises(IntervalError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        check_levels(levels)


def test_wide_long_horizons_thin_the_stored_steps():
    steps = stored_steps(720, 862)
    assert steps[0] == 0 and steps[-1] == 719 and 2 <= len(steps) < 720
    assert len(stored_steps(96, 7)) == 96


def scored(calibration, windows, adapt, levels=(0.1, 0.5, 0.9)):
    scorer = IntervalScorer(calibration, np.array(levels), adapt=adapt)
    prediction, target, inputs = windows
    for start in range(0, len(prediction), 256):
        scorer.add(prediction[start : start + 256], target[start : start + 256], inputs[start : start + 256])
    return scorer.result()


def test_adapting_levels_follow_errors_that_shrink_after_calibration():
    """Scored on errors 0.6 times those it was calibrated on, the validation levels' 80% interval covers about
    97%; levels that adapt as the actuals arrive bring it near 80% and lower the pinball loss. Where nothing
    shifted they stay near the validation levels."""
    rng = np.random.default_rng(3)
    calibration = calibrated(rng)
    (prediction, target, inputs), _ = gaussian_windows(rng, 12000)
    calmer = (prediction, prediction + (target - prediction) * 0.6, inputs)
    fixed, adapted = scored(calibration, calmer, adapt=False), scored(calibration, calmer, adapt=True)
    assert fixed["coverage"]["80"] > 0.95 and 0.77 <= adapted["coverage"]["80"] <= 0.86
    assert adapted["pinball"] < fixed["pinball"] and "adapted_levels" not in fixed
    low, high = adapted["adapted_levels"]
    assert 0.17 < low < 0.27 and 0.73 < high < 0.83  # N(0, 0.6^2) puts 0.1 of its mass below -0.77 = q(0.22) of N(0, 1)
    unshifted = scored(calibration, (prediction, target, inputs), adapt=True)
    assert 0.77 <= unshifted["coverage"]["80"] <= 0.83
    assert np.allclose(unshifted["adapted_levels"], TRACKED_LEVELS, atol=0.04)


def test_levels_move_only_once_a_forecasts_whole_horizon_is_known():
    tracker = LevelTracker(pred_len=5, rate=0.002)
    tracker.observe(0, np.array([0.3, 0.95]))  # too many actuals below both bounds: both levels should fall
    tracker.observe(1, np.array([0.3, 0.95]), rows=4)
    assert tuple(tracker.catch_up(4)) == TRACKED_LEVELS  # origin 0's last actual is row 4: not known before 5
    once = tracker.catch_up(5).copy()
    assert once[0] < TRACKED_LEVELS[0] and once[1] < TRACKED_LEVELS[1]
    twice = tracker.catch_up(6)  # the second stood for 4 rows of time: it moves them four times as far
    assert TRACKED_LEVELS[0] - twice[0] == pytest.approx(5 * (TRACKED_LEVELS[0] - once[0]))
    tracker.observe(2, np.array([0.3, 0.95]), rows=400)  # a backtest step beyond the horizon counts as the horizon
    thrice = tracker.catch_up(7)
    assert twice[0] - thrice[0] == pytest.approx(5 * (TRACKED_LEVELS[0] - once[0]))
    assert (twice > 0).all() and twice[0] < 0.5 < twice[1]


def test_the_adapting_pace_follows_the_validation_split_and_the_horizon():
    """A file with four times the rows per day has four times the validation windows: it moves its levels a
    quarter as far per row, so as far per day; over one horizon (the outcome's delay) a level moves by at most
    half its miscoverage; a handful of validation windows is capped."""
    rng = np.random.default_rng(5)
    long, short = calibrated(rng, count=3000), calibrated(rng, count=12000)
    assert long.adapt_rate() == pytest.approx(4 * short.adapt_rate()) and long.adapt_rate() == pytest.approx(0.002)
    assert calibrated(rng, count=60).adapt_rate() == 0.01
    assert replace(long, pred_len=720).adapt_rate() == pytest.approx(0.5 / 720)


def test_other_levels_move_with_the_tracked_ones_in_order():
    levels = np.array([0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
    np.testing.assert_allclose(adapted_levels(levels, TRACKED_LEVELS), levels)
    moved = adapted_levels(levels, (0.2, 0.85))
    assert (np.diff(moved) > 0).all() and moved[4] == 0.5 and moved[2] == 0.2 and moved[6] == 0.85
    assert moved[3] > levels[3] and moved[5] < levels[5]


@pytest.fixture(scope="module")
def etth1_run(tmp_path_factory):
    config = with_model(tiny_config(data={"name": str(ETTH1), "seq_len": 96, "pred_lens": [24]}), "dlinear")
    config = updated(config, train={"epochs": 1, "max_steps": 40, "batch_size": 64, "lr": 0.005})
    (record,) = run_sweep(config, tmp_path_factory.mktemp("runs"))
    return record


def test_training_stores_the_calibration_and_scores_the_test_split(etth1_run):
    run = load_run(etth1_run.run_dir)
    stored = run.calibration()
    again = calibrate(run.model, run.data(), run.config.train.batch_size)
    np.testing.assert_array_equal(stored.table, again.table)
    assert stored.shrink == again.shrink and stored.windows == len(run.data().val)
    written = torch.load(run.path, weights_only=True)["intervals"]
    assert IntervalCalibration.from_state(written).table.dtype == np.float32
    record = etth1_run.intervals
    assert record["levels"] == [0.1, 0.5, 0.9] and set(record["coverage"]) == {"80"}
    assert 0.5 < record["coverage"]["80"] < 1 and record["width"]["80"] > 0 and record["pinball"] > 0
    # the levels scoring the test split adapted to are kept for forecasts from the file's end
    assert stored.adapted == pytest.approx(tuple(record["adapted_levels"])) and record["adapting"]
    assert stored.adapted_through == pd.Timestamp("2018-02-20 23:00:00").value  # TSL's last test row, 14,400
    assert max(abs(a - b) for a, b in zip(stored.adapted, TRACKED_LEVELS, strict=True)) > 0.005
    assert IntervalCalibration.from_state({k: v for k, v in written.items() if k != "adapted"}).adapted is None


def test_no_window_adapts_before_a_whole_horizon_of_actuals_is_known():
    """The first horizon's windows are scored exactly as with the validation levels: no outcome is known yet."""
    rng = np.random.default_rng(7)
    calibration = calibrated(rng)  # horizon 8
    (prediction, target, inputs), _ = gaussian_windows(rng, 600)
    target = prediction + (target - prediction) * 0.3  # a shift the levels would follow at once if they could
    first = (prediction[:8], target[:8], inputs[:8])
    adapted, fixed = scored(calibration, first, adapt=True), scored(calibration, first, adapt=False)
    assert adapted["coverage"] == fixed["coverage"] and adapted["pinball"] == fixed["pinball"]
    longer = (prediction[:9], target[:9], inputs[:9])
    assert scored(calibration, longer, adapt=True)["pinball"] != scored(calibration, longer, adapt=False)["pinball"]


def test_runs_scored_before_levels_adapted_are_not_averaged_with_runs_scored_since():
    from specmem_cli.training.summary import summarise_intervals

    rng = np.random.default_rng(8)
    calibration = calibrated(rng)
    windows, _ = gaussian_windows(rng, 300)
    since, before = scored(calibration, windows, adapt=True), scored(calibration, windows, adapt=False)
    before.pop("adapting")  # as a metrics.json written before levels adapted holds it

    def record(intervals):
        return SimpleNamespace(intervals=intervals, seed=2019)

    assert summarise_intervals([record(since), record(since)]) is not None
    assert summarise_intervals([record(since), record(before)]) is None


def test_backtest_levels_adapt_and_never_read_later_actuals(etth1_run, tmp_path, monkeypatch):
    """A backtest's first origin reads the validation levels and later ones adapted levels; an origin's quantiles
    are the same whether or not the file holds the rows after it; a file ending before the test split's last
    actual forecasts from its end with the validation levels, not with levels moved by actuals it lacks."""
    from specmem_cli.inference.forecast import forecast

    start, levels = "2017-11-01 00:00:00", [0.1, 0.5, 0.9]
    adapted = forecast(Path(etth1_run.run_dir), ETTH1, start=start, rolling=24, quantiles=levels).windows
    table = pd.read_csv(ETTH1)
    cut = tmp_path / "cut.csv"
    origin = adapted[40].origin
    table.iloc[: origin + 5].to_csv(cut, index=False)  # the file stops 5 rows into origin 40's horizon
    shorter = forecast(Path(etth1_run.run_dir), cut, start=start, rolling=24, quantiles=levels).windows
    for level in levels:
        np.testing.assert_array_equal(shorter[40].quantiles[level], adapted[40].quantiles[level])
    early_end = forecast(Path(etth1_run.run_dir), cut, quantiles=levels)
    assert "where the test split's errors moved them" not in early_end.metadata["intervals"]
    full_end = forecast(Path(etth1_run.run_dir), ETTH1, quantiles=levels)
    assert "where the test split's errors moved them" in full_end.metadata["intervals"]
    monkeypatch.setattr(IntervalCalibration, "adapt_rate", lambda self: 0.0)
    fixed = forecast(Path(etth1_run.run_dir), ETTH1, start=start, rolling=24, quantiles=levels).windows
    np.testing.assert_array_equal(fixed[0].quantiles[0.1], adapted[0].quantiles[0.1])
    assert not np.array_equal(fixed[40].quantiles[0.1], adapted[40].quantiles[0.1])


def test_forecast_quantile_columns_are_monotone_and_in_every_format(etth1_run, tmp_path):
    levels = ["0.05", "0.1", "0.25", "0.5", "0.75", "0.9", "0.95"]
    out = tmp_path / "f.csv"
    args = ["forecast", etth1_run.run_dir, "--input", str(ETTH1), "--output", str(out), "--quantiles", *levels]
    rolling = ["--start", "2018-01-01 00:00:00", "--rolling", "400"]
    result = runner.invoke(app, [*args, *rolling])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert {"OT", "OT_q0.05", "OT_q0.95", "OT_actual", "HUFL_q0.5"} <= set(frame.columns)
    for series in ("OT", "HUFL", "LULL"):
        values = frame[[f"{series}_q{level}" for level in levels]].to_numpy()
        assert (np.diff(values, axis=1) >= 0).all()  # no crossing, any row
        assert (values[:, 0] < frame[series]).all() and (frame[series] < values[:, -1]).all()
    parquet = tmp_path / "f.parquet"
    result = runner.invoke(app, [*args[:5], str(parquet), "--quantiles", "0.1", "0.9"])
    assert result.exit_code == 0, result.output
    assert {"OT_q0.1", "OT_q0.9"} <= set(pd.read_parquet(parquet).columns)
    document = tmp_path / "f.json"
    result = runner.invoke(app, [*args[:5], str(document), "--quantiles", "0.1", "0.9"])
    assert result.exit_code == 0, result.output
    written = json.loads(document.read_text())
    assert (
        written["metadata"]["quantile_levels"] == [0.1, 0.9] and "split-conformal" in written["metadata"]["intervals"]
    )
    assert "where the test split's errors moved them" in written["metadata"]["intervals"]
    backtest = tmp_path / "b.json"
    result = runner.invoke(app, [*args[:5], str(backtest), "--quantiles", "0.1", "0.9", *rolling])
    assert result.exit_code == 0, result.output
    assert "adapt to the backtest's errors" in json.loads(backtest.read_text())["metadata"]["intervals"]
    (window,) = written["windows"]
    assert set(window["quantiles"]) == {"0.1", "0.9"} and len(window["quantiles"]["0.1"]) == 24


def test_fan_chart_png(etth1_run, tmp_path):
    figure = tmp_path / "fan.png"
    args = ["forecast", etth1_run.run_dir, "--input", str(ETTH1), "--output", str(tmp_path / "f.csv")]
    result = runner.invoke(app, [*args, "--quantiles", "0.1", "0.9", "--plot", str(figure), "--series", "OT", "HUFL"])
    assert result.exit_code == 0, result.output
    image = matplotlib.image.imread(figure)
    assert image.shape[:2] == (2 * 260, 1100)  # two panels of 2.6 in at 100 dpi, 11 in wide
    painted = (np.abs(image[..., :3] - 1).sum(-1) > 0.1).mean()
    assert 0.02 < painted < 0.5  # lines and shading on a white page, not a blank or solid figure


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (["--quantiles", "0", "0.5"], "outside (0, 1)"),
        (["--quantiles", "0.5", "0.5"], "repeat"),
        (["--plot", "/nonexistent/dir/x.png"], "choose another --plot"),
        (["--plot", "/proc/specmem-fan.png"], "choose another"),  # a place that takes no file: no forecast left either
        (["--plot", "x.gif"], "unknown figure format"),
        (["--plot", "PLOT", "--series", "NOPE"], "not forecast by this model"),
        (["--series", "OT"], "add --plot"),
        (["--rolling", "5"], "add --start"),  # from the end there is one origin: no backtest
    ],
)
def test_forecast_interval_errors_write_nothing(etth1_run, tmp_path, extra, fragment):
    out = tmp_path / "f.csv"
    extra = [str(tmp_path / "fan.png") if token == "PLOT" else token for token in extra]
    args = ["forecast", etth1_run.run_dir, "--input", str(ETTH1), "--output", str(out), *extra]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and fragment in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_calibrate_rewrites_nothing_in_a_sweep_holding_a_damaged_checkpoint(etth1_run, tmp_path):
    sweep = tmp_path / "sweep"
    shutil.copytree(etth1_run.run_dir, sweep / "a_good")
    shutil.copytree(etth1_run.run_dir, sweep / "z_damaged")
    damaged = sweep / "z_damaged" / "checkpoint.pt"
    damaged.write_bytes(damaged.read_bytes()[:1000])
    before = (sweep / "a_good" / "checkpoint.pt").read_bytes()
    result = runner.invoke(app, ["calibrate", str(sweep)])
    assert result.exit_code == 1 and "z_damaged" in result.stderr and "corrupt" in result.stderr
    assert (sweep / "a_good" / "checkpoint.pt").read_bytes() == before


def test_a_run_saved_before_intervals_says_how_to_calibrate_and_calibrate_adds_them(etth1_run, tmp_path):
    document = torch.load(Path(etth1_run.run_dir) / "checkpoint.pt", weights_only=True)
    old_dir = tmp_path / "old"
    old_dir.mkdir()
    del document["intervals"]
    torch.save({**document, "format_version": 2}, old_dir / "checkpoint.pt")
    metrics = json.loads((Path(etth1_run.run_dir) / "metrics.json").read_text())
    del metrics["record"]["intervals"]
    (old_dir / "metrics.json").write_text(json.dumps(metrics))
    assert load_checkpoint(old_dir).intervals is None
    out = tmp_path / "f.csv"
    args = ["forecast", str(old_dir), "--input", str(ETTH1), "--output", str(out), "--quantiles", "0.1", "0.9"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1 and f"specmem calibrate {old_dir}" in result.stderr and not out.exists()
    evaluated = runner.invoke(app, ["evaluate", str(old_dir), "--json"])
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["runs"][0]["intervals"] is None
    asked = runner.invoke(app, ["evaluate", str(old_dir), "--quantiles", "0.1", "0.9"])
    assert asked.exit_code == 1 and "specmem calibrate" in asked.stderr
    calibrated_run = runner.invoke(app, ["calibrate", str(old_dir), "--json"])
    assert calibrated_run.exit_code == 0, calibrated_run.output
    assert json.loads(calibrated_run.stdout)["runs"][0]["intervals"] == etth1_run.intervals
    assert json.loads((old_dir / "metrics.json").read_text())["record"]["intervals"] == etth1_run.intervals
    assert runner.invoke(app, args).exit_code == 0 and out.exists()


def test_evaluate_reports_each_central_interval(etth1_run):
    result = runner.invoke(app, ["evaluate", etth1_run.run_dir, "--quantiles", "0.05", "0.1", "0.5", "0.9", "0.95"])
    assert result.exit_code == 0, result.output
    assert "coverage 90/80%" in result.stderr
    document = runner.invoke(app, ["evaluate", etth1_run.run_dir, "--json"]).stdout
    record = json.loads(document)["runs"][0]
    assert record["intervals"] == etth1_run.intervals  # the same numbers training reported
    summary = json.loads(document)["summary"]["ETTh1"]["dlinear"]
    assert summary["horizons"]["24"]["intervals"]["coverage"]["80"] == record["intervals"]["coverage"]["80"]
