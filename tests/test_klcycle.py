"""The CPU-first model: the K-L analog memory, the phase-aware cycle, and klcycle runs end to end on ETTh1."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from specmem_cli.checkpoint import load_run
from specmem_cli.cli import app
from specmem_cli.config import config_from_dict, load_config
from specmem_cli.errors import ConfigError
from specmem_cli.inference.forecast import forecast
from specmem_cli.memory import analog
from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.models.klcycle import HEADS, KLCycleForecaster
from specmem_cli.models.layers import normalise
from specmem_cli.training.run import evaluate_run, simplex_weights
from specmem_cli.training.sanity import sanity_checks
from specmem_cli.training.sweep import run_sweep
from specmem_cli.training.trainer import learning_rate, predict_windows
from tests.conftest import ETTH1

runner = CliRunner()


def filled_memory(n=300, input_len=12, horizon=6, **options):
    generator = torch.Generator().manual_seed(0)
    settings = {"key_modes": 4, "value_modes": 3, "temperature": 2.0, "top_k": n, **options}
    memory = AnalogMemory(input_len, horizon, **settings)
    windows, futures = torch.randn(n, input_len, generator=generator), torch.randn(n, horizon, generator=generator)
    memory.build(windows, futures, torch.arange(n))
    return memory, windows, futures


def oracle_read(memory, queries, positions, exclude_within, top_k=None):
    """The read-out written out plainly: softmax over squared K-L distances, overlapping windows masked,
    all but the ``top_k`` nearest admissible entries dropped."""
    keys = queries @ memory.key_basis
    scores = -torch.cdist(keys, memory.keys).square() / memory.temperature
    near = (positions[:, None] - memory.positions[None, :]).abs() < exclude_within
    scores = scores.masked_fill(near, float("-inf"))
    if top_k is not None:
        threshold = scores.topk(top_k, dim=1).values[:, -1:]
        scores = scores.masked_fill(scores < threshold, float("-inf"))
    weights = torch.softmax(scores, dim=1)
    return (weights @ memory.values) @ memory.value_basis.T + memory.value_mean


def test_read_equals_the_plain_softmax_over_kl_distances():
    memory, _, _ = filled_memory()
    queries, positions = torch.randn(50, 12), torch.randint(0, 300, (50,))
    torch.testing.assert_close(memory.read(queries, positions, 10), oracle_read(memory, queries, positions, 10))
    torch.testing.assert_close(memory.read(queries), oracle_read(memory, queries, positions, 0))


def test_blocked_top_k_read_equals_the_one_block_read_and_the_top_k_oracle(monkeypatch):
    """Scanning the keys in blocks with a running top-k finds the same analogs as one pass, and the
    read-out is the softmax over exactly the 64 nearest admissible entries (not over all 300)."""
    memory, _, _ = filled_memory(top_k=64)
    queries, positions = torch.randn(700, 12), torch.randint(0, 300, (700,))
    one_block = memory.read(queries, positions, 10)
    monkeypatch.setattr(analog, "KEY_BLOCK", 37)
    monkeypatch.setattr(analog, "QUERY_BLOCK", 100)
    torch.testing.assert_close(memory.read(queries, positions, 10), one_block)
    torch.testing.assert_close(one_block, oracle_read(memory, queries, positions, 10, top_k=64))
    assert not torch.allclose(one_block, oracle_read(memory, queries, positions, 10)), "64 of 300 is not all"


def test_a_window_never_reads_its_own_span_and_never_gets_nan():
    memory, windows, futures = filled_memory(n=50, value_modes=6, key_modes=12)
    # from position -21, only entry 49 is 70 or more steps away: the read-out is that entry's own future
    far = memory.read(windows[:1], torch.tensor([-21]), exclude_within=70)
    torch.testing.assert_close(far[0], futures[49], rtol=1e-5, atol=1e-5)
    # excluding every entry reads the mean future, not NaN
    none_left = memory.read(windows[:1], torch.tensor([0]), exclude_within=100)
    torch.testing.assert_close(none_left[0], futures.mean(dim=0), rtol=1e-5, atol=1e-5)


def test_stored_starts_are_strided_and_capped_and_the_state_dict_round_trips():
    memory = AnalogMemory(12, 6, stride=3, max_entries=50)
    assert torch.equal(memory.starts_to_store(60, 2), torch.arange(0, 60, 3))  # 20 starts x 2 series = 40 rows
    assert torch.equal(memory.starts_to_store(300, 2), torch.arange(0, 300, 12))  # thinned to 25 x 2 = 50 rows
    with pytest.raises(ValueError, match="exceed max_entries"):
        memory.build(torch.randn(51, 12), torch.randn(51, 6), torch.arange(51))
    memory, windows, _ = filled_memory()
    restored = AnalogMemory(12, 6, key_modes=4, value_modes=3, temperature=2.0, top_k=300)
    restored.load_state_dict(memory.state_dict())
    torch.testing.assert_close(restored.read(windows[:8]), memory.read(windows[:8]))
    restored.reset()
    assert not restored.ready and restored.read(windows[:8]) is None


def test_the_cycle_follows_the_clock():
    torch.manual_seed(0)
    model = KLCycleForecaster(48, 12, 3, cycle_len=24, memory="off")
    torch.nn.init.normal_(model.cycle)
    inputs = torch.randn(4, 48, 3)
    at = {shift: model(inputs, positions=torch.full((4,), 5 + shift)) for shift in (0, 1, 24, 48)}
    torch.testing.assert_close(at[0], at[24])
    torch.testing.assert_close(at[0], at[48])
    assert not torch.allclose(at[0], at[1])
    with pytest.raises(ValueError, match="position"):
        model(inputs)


@pytest.mark.parametrize(("cycle_len", "fft_from"), [(24, 10**9), (5, 10**9), (24, 1)])
def test_the_network_is_the_linear_map_of_the_input_less_its_cycle_plus_the_cycle_ahead(
    monkeypatch, cycle_len, fft_from
):
    """Per window, by hand: ``W (x_n - c_in) + b + c_out`` in normalised units, ``c`` read at the window's phase."""
    from specmem_cli.models import klcycle

    monkeypatch.setattr(klcycle, "FFT_FROM", fft_from)
    generator = torch.Generator().manual_seed(0)
    model = KLCycleForecaster(48, 12, 3, cycle_len=cycle_len, memory="off")
    with torch.no_grad():
        model.cycle.normal_(generator=generator)
    inputs, positions = torch.randn(5, 48, 3, generator=generator), torch.tensor([0, 3, 23, 24, 1001])
    expected = []
    for window, start in zip(inputs, positions.tolist(), strict=True):
        mean, std = window.mean(dim=0), torch.sqrt(window.var(dim=0, unbiased=False) + 1e-5)
        c_in = model.cycle[[(start + t) % cycle_len for t in range(48)]]
        c_out = model.cycle[[(start + 48 + t) % cycle_len for t in range(12)]]
        normalised = model.linear.weight @ ((window - mean) / std - c_in) + model.linear.bias[:, None] + c_out
        expected.append(normalised * std + mean)
    torch.testing.assert_close(model(inputs, positions), torch.stack(expected), rtol=1e-4, atol=1e-4)


def klcycle_config(**train):
    raw = load_config("etth1").to_dict()
    raw["data"].update({"name": str(ETTH1), "pred_lens": [24]})
    raw["train"].update({"epochs": 2, **train})
    raw["seeds"] = [3]
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def klcycle_run(tmp_path_factory):
    (record,) = run_sweep(klcycle_config(), tmp_path_factory.mktemp("klcycle"))
    return record


def test_klcycle_checkpoint_carries_the_memory_and_reproduces_its_metrics(klcycle_run):
    run = load_run(klcycle_run.run_dir)
    assert run.model.memory.ready and run.model.memory.n_entries > 10_000
    assert run.checkpoint.time_axis["origin"].startswith("2016-07-01T00:00")
    again = evaluate_run(klcycle_run.run_dir)
    assert (again.mse, again.mae) == pytest.approx((klcycle_run.mse, klcycle_run.mae), rel=1e-9)


def test_the_memory_is_used_at_evaluation(klcycle_run):
    checks = sanity_checks(klcycle_run.run_dir)
    assert checks["memory zeroed"]["mse"] != pytest.approx(checks["normal"]["mse"], rel=1e-4)
    # built from data, it cannot change while read: freezing it has nothing to test, and says so
    assert checks["memory frozen"] is None and checks["memory reset per batch"] is None


def test_forecast_matches_the_test_window_on_a_file_that_starts_later(klcycle_run, tmp_path):
    """The cycle's phase comes from timestamps, so dropping the first 5 rows of the file changes nothing."""
    run = load_run(klcycle_run.run_dir)
    data = run.data()
    prediction, *_ = next(predict_windows(run.model, data.test, 32, data.n_outputs))
    expected = run.scaler.inverse_transform(prediction[0].double().numpy())
    frame = pd.read_csv(ETTH1)
    shorter = tmp_path / "later.csv"
    frame.iloc[5:].to_csv(shorter, index=False)
    for path in (ETTH1, shorter):
        result = forecast(klcycle_run.run_dir, path, start=frame["date"][11520])
        torch.testing.assert_close(
            torch.from_numpy(result.windows[0].forecast), torch.from_numpy(expected), rtol=1e-5, atol=1e-5
        )
    assert result.metadata["memory"].startswith("analog:")


def test_reset_policy_evaluates_with_an_empty_memory(tmp_path):
    (record,) = run_sweep(klcycle_config(memory_at_eval="reset"), tmp_path)
    assert not load_run(record.run_dir).model.memory.ready
    result = runner.invoke(
        app, ["forecast", record.run_dir, "--input", str(ETTH1), "--output", str(tmp_path / "f.csv")]
    )
    assert result.exit_code == 0, result.output
    assert "reset: empty" in result.stderr
    modes = runner.invoke(app, ["inspect-modes", record.run_dir, "--output", str(tmp_path / "m.png")])
    assert modes.exit_code == 1 and "--from-data" in modes.stderr
    rebuilt = runner.invoke(
        app, ["inspect-modes", record.run_dir, "--output", str(tmp_path / "m.png"), "--from-data", str(ETTH1)]
    )
    assert rebuilt.exit_code == 0, rebuilt.output
    assert not load_run(record.run_dir).model.memory.ready, "inspecting never rewrites the checkpoint"


def test_inspect_modes_shows_the_analog_memory(klcycle_run, tmp_path):
    figure = tmp_path / "modes.png"
    result = runner.invoke(app, ["inspect-modes", klcycle_run.run_dir, "--output", str(figure), "--top", "6", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    explained = np.array(report["explained_variance"])
    assert report["strategy"] == "analog" and len(explained) == 6 and figure.stat().st_size > 10_000
    assert (np.diff(explained) <= 1e-12).all() and 0 < explained.sum() <= 1
    assert len(report["key_modes"]) == 6 and len(report["key_modes"][0]) == 96  # six modes over the 96-step window
    assert len(report["blend"][0]) == 24  # the blend weight of each forecast step
    assert len(report["value_modes"][0]) == 24  # modes of the stored futures, over the horizon
    assert not {"modes", "components", "tokens"} & set(report)  # no token-memory names for what it does not hold


def test_a_day_long_cycle_follows_the_data_clock(tmp_path):
    """``cycle_len: 1D`` is 24 steps on hourly data and 48 on half-hourly data; the checkpoint stores the steps."""
    frame = pd.read_csv(ETTH1).iloc[:4000]
    frame["date"] = pd.date_range("2020-01-01", periods=len(frame), freq="30min")
    half_hourly = tmp_path / "half_hourly.csv"
    frame.to_csv(half_hourly, index=False)
    raw = klcycle_config(epochs=1).to_dict()
    raw["data"].update({"name": str(half_hourly), "pred_lens": [24]})
    (record,) = run_sweep(config_from_dict(raw), tmp_path / "runs")
    run = load_run(record.run_dir)
    assert run.checkpoint.model_params["cycle_len"] == 48 and run.model.cycle.shape == (48, 7)
    assert run.config.model["cycle_len"] == "1D"
    for value, message in [("45min", "1.5 steps"), ("often", "not a whole number, 'auto' or a duration")]:
        bad = {**raw, "model": {**raw["model"], "cycle_len": value}}
        with pytest.raises(ConfigError, match=message):
            run_sweep(config_from_dict(bad), tmp_path / value)


def test_type3_schedule_and_bad_settings(tmp_path):
    assert [learning_rate(1.0, epoch, "type3") for epoch in range(6)] == pytest.approx([1, 1, 1, 1, 0.9, 0.81])
    raw = klcycle_config().to_dict()
    for section, key, value, message in [
        ("train", "loss", "l3", "train.loss must be one of mse, huber"),
        ("train", "lr_schedule", "cosine", "train.lr_schedule must be one of"),
    ]:
        bad = {**raw, section: {**raw[section], key: value}}
        with pytest.raises(ConfigError, match=message):
            config_from_dict(bad)
    out = tmp_path / "runs"
    result = runner.invoke(
        app, ["train", "--config", "etth1", "--data", str(ETTH1), "--out", str(out), "--set", "model.memory=tokens"]
    )
    assert result.exit_code == 1 and "memory must be 'analog' or 'off'" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("cycle_len", "seq_len", "channels"), [(1, 24, 3), (5, 24, 3), (40, 24, 250), (7, 36, 1200)])
def test_the_cycle_through_the_linear_map_is_the_same_function_on_both_paths(monkeypatch, cycle_len, seq_len, channels):
    """W c_in per phase through the FFT (wide data) equals the direct product (narrow data), values and gradients."""
    from specmem_cli.models import klcycle

    model = KLCycleForecaster(seq_len, 12, channels, cycle_len=cycle_len, memory="off")
    with torch.no_grad():
        model.cycle.normal_(generator=torch.Generator().manual_seed(1))
    results = []
    for fft_from in (10**9, 1):  # direct, then through the FFT
        monkeypatch.setattr(klcycle, "FFT_FROM", fft_from)
        model.zero_grad()
        value = model._weighted_cycle()
        (value * torch.linspace(-1, 1, value.numel()).view_as(value)).sum().backward()
        results.append((value.detach(), model.cycle.grad.clone(), model.linear.weight.grad.clone()))
    for direct, through_fft in zip(*results, strict=True):
        torch.testing.assert_close(through_fft, direct, rtol=1e-4, atol=1e-5)


def test_the_overlap_ranges_mask_exactly_what_the_distance_test_masks():
    from specmem_cli.memory.analog import _overlap_ranges

    generator = torch.Generator().manual_seed(0)
    for _ in range(100):
        size = int(torch.randint(1, 300, (1,), generator=generator))
        stored = torch.randint(0, 500, (size,), generator=generator).sort().values  # sorted, with repeats
        positions = torch.randint(-50, 550, (37,), generator=generator)
        within = int(torch.randint(1, 120, (1,), generator=generator))
        expected = (stored[None, :] - positions[:, None]).abs() < within
        masked = torch.zeros(len(positions), size, dtype=torch.bool)
        for row, (first, end) in enumerate(_overlap_ranges(positions, stored, within)):
            masked[row, first:end] = True
        assert torch.equal(masked, expected)


def test_the_mlp_head_is_the_mlp_of_the_input_less_its_cycle_plus_the_cycle_ahead():
    """Per window, by hand: ``MLP(x_n - c_in) + c_out`` in normalised units; no linear map is built beside it."""
    generator = torch.Generator().manual_seed(0)
    model = KLCycleForecaster(48, 12, 3, cycle_len=24, memory="off", head="mlp", hidden=16)
    assert not hasattr(model, "linear") and model.mlp[0].out_features == 16
    with torch.no_grad():
        model.cycle.normal_(generator=generator)
    inputs, positions = torch.randn(4, 48, 3, generator=generator), torch.tensor([0, 5, 23, 1001])
    expected = []
    for window, start in zip(inputs, positions.tolist(), strict=True):
        mean, std = window.mean(dim=0), torch.sqrt(window.var(dim=0, unbiased=False) + 1e-5)
        c_in = model.cycle[[(start + t) % 24 for t in range(48)]]
        c_out = model.cycle[[(start + 48 + t) % 24 for t in range(12)]]
        hidden = torch.relu(model.mlp[0].weight @ ((window - mean) / std - c_in) + model.mlp[0].bias[:, None])
        normalised = model.mlp[2].weight @ hidden + model.mlp[2].bias[:, None] + c_out
        expected.append(normalised * std + mean)
    torch.testing.assert_close(model(inputs, positions), torch.stack(expected), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="head must be one of linear, mlp"):
        KLCycleForecaster(48, 12, 3, cycle_len=24, head="auto")


def head_config(head, memory="analog"):
    raw = klcycle_config(epochs=3).to_dict()
    raw["model"].update({"head": head, "hidden": 32, "memory": memory})
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def auto_head_run(tmp_path_factory):
    (record,) = run_sweep(head_config("auto"), tmp_path_factory.mktemp("auto_head"))
    return record


def test_head_auto_keeps_the_lowest_validation_mse_of_both_maps_and_their_mix(auto_head_run, tmp_path):
    """Each map is the network a run of that head alone trains (same seed: the same validation MSE); the mix
    is their forecasts and the last value weighted by the shares that minimise validation MSE (never above
    any of the three);
    the kept network's memory is built and gated once, and no epoch state is left behind."""
    run_dir = auto_head_run.run_dir
    fit_log = json.loads((Path(run_dir) / "metrics.json").read_text())["fit"]
    tried = {entry["head"]: entry for entry in fit_log["choice"]["validation_mse"]}
    assert list(tried) == ["linear", "mlp", "mix"]
    mix_entry = tried["mix"]
    assert mix_entry["mse"] <= min(tried["linear"]["mse"], tried["mlp"]["mse"], mix_entry["last_value_mse"]) + 1e-12
    shares = [mix_entry[key] for key in ("linear_share", "mlp_share", "last_value_share")]
    assert min(shares) >= 0 and sum(shares) == pytest.approx(1)
    chosen = fit_log["choice"]["chosen"]["head"]
    assert chosen == min(tried, key=lambda head: tried[head]["mse"]) and fit_log["best_val_mse"] == tried[chosen]["mse"]
    # the closed-form figure is the kept network's own validation MSE (the memory gate scores it without memory)
    assert fit_log["memory"]["val_mse_without_memory"] == pytest.approx(tried[chosen]["mse"], rel=1e-6)
    run = load_run(run_dir)
    assert run.checkpoint.model_params["head"] == chosen and run.config.model["head"] == "auto"
    assert not list(Path(run_dir).glob("training_state*"))
    again = evaluate_run(run_dir)
    assert (again.mse, again.mae) == pytest.approx((auto_head_run.mse, auto_head_run.mae), rel=1e-9)
    alone = {head: run_sweep(head_config(head), tmp_path / head)[0] for head in ("linear", "mlp")}
    for head, record in alone.items():
        assert (
            json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]["best_val_mse"] == tried[head]["mse"]
        )
    linear, mlp = (load_run(record.run_dir).model for record in alone.values())
    share, last_share = mix_entry["linear_share"], mix_entry["last_value_share"]
    mix = KLCycleForecaster(96, 24, 7, cycle_len=linear.cycle_len, memory="off", head="mix", hidden=32)
    mix.mix_from(linear, mlp, share, last_share)
    inputs, positions = torch.randn(5, 96, 7), torch.arange(5) * 7
    last = normalise(inputs)[0][:, -1:]
    expected = (
        share * linear._base(inputs, positions)[1]
        + (1 - share - last_share) * mlp._base(inputs, positions)[1]
        + last_share * last.expand(-1, 24, -1)
    )
    torch.testing.assert_close(mix._base(inputs, positions)[1], expected, rtol=1e-5, atol=1e-5)
    if chosen == "mix":  # the run's kept network holds both maps as trained alone
        kept = dict(run.model.named_parameters())
        for name, value in mix.named_parameters():
            torch.testing.assert_close(kept[name], value, rtol=0, atol=0)


def test_head_auto_with_the_memory_off_keeps_the_same_network(auto_head_run, tmp_path, caplog):
    """The head is chosen before the memory exists, so the memory-off ablation is the very network the
    default keeps (what ``benchmarks/suite.py``'s memory-off row relies on). The log says which network
    is training and which was kept."""
    with caplog.at_level(logging.INFO, logger="specmem_cli"):
        (off,) = run_sweep(head_config("auto", memory="off"), tmp_path / "off")
    assert "klcycle pl=24 seed=3: training head=linear (1 of 2" in caplog.text
    assert "training head=mlp (2 of 2" in caplog.text
    kept_note = next(line for line in caplog.messages if ": kept head=" in line)
    assert "validation MSE head=linear " in kept_note and ", head=mlp " in kept_note
    kept, without = load_run(auto_head_run.run_dir), load_run(off.run_dir)
    assert kept.checkpoint.model_params["head"] == without.checkpoint.model_params["head"]
    kept_parameters = dict(kept.model.named_parameters())
    for name, value in without.model.named_parameters():  # the network's weights (the memory has none)
        torch.testing.assert_close(kept_parameters[name], value, rtol=0, atol=0)


def test_a_head_that_does_not_exist_is_a_one_line_error(tmp_path):
    result = runner.invoke(
        app, ["train", "--data", str(ETTH1), "--out", str(tmp_path / "runs"), "--set", "model.head=cnn"]
    )
    assert result.exit_code == 1 and "model.head must be one of linear, mlp, auto (got 'cnn')" in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "runs").exists()
    mix = runner.invoke(
        app, ["train", "--data", str(ETTH1), "--out", str(tmp_path / "runs"), "--set", "model.head=mix"]
    )
    assert mix.exit_code == 1 and "model.head must be one of linear, mlp, auto (got 'mix')" in mix.stderr


def test_simplex_weights_are_the_lowest_weighted_mean_on_the_simplex():
    """Against a fine grid of the simplex for random error Gram matrices; with a third member far worse than
    two others, the two-member closed form; a perfect member alone; members that err identically."""
    rng = np.random.default_rng(0)
    grid = np.array([(a, b, 1 - a - b) for a in np.linspace(0, 1, 201) for b in np.linspace(0, 1, 201) if a + b <= 1])
    for _ in range(20):
        errors = rng.normal(size=(3, 50)) + rng.normal(size=(1, 50)) * rng.uniform(0, 2)
        gram = errors @ errors.T
        weights = simplex_weights(gram)
        assert weights.min() >= 0 and weights.sum() == pytest.approx(1)
        lowest = np.einsum("ni,ij,nj->n", grid, gram, grid).min()
        assert weights @ gram @ weights <= lowest + 1e-12
    a, b, c = 2.0, 3.0, 0.5  # the third errs with both (the pair's mix erring 1.4375 x ... less): no weight
    weights = simplex_weights(np.array([[a, c, 1.5], [c, b, 1.5], [1.5, 1.5, 50.0]]))
    np.testing.assert_allclose(weights, [(b - c) / (a + b - 2 * c), (a - c) / (a + b - 2 * c), 0.0], atol=1e-12)
    np.testing.assert_array_equal(simplex_weights(np.diag([1.0, 0.0, 2.0])), [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(simplex_weights(np.ones((3, 3))), [1.0, 0.0, 0.0])  # a tie: the first


def test_a_mix_saved_before_the_last_value_was_a_member_loads_without_it():
    """Its state has no ``last_share``: it loads with none, and forecasts as it did (share x linear + the rest x MLP)."""
    torch.manual_seed(0)
    linear, mlp = (KLCycleForecaster(96, 24, 7, cycle_len=24, memory="off", head=head, hidden=32) for head in HEADS)
    saved = KLCycleForecaster(96, 24, 7, cycle_len=24, memory="off", head="mix", hidden=32)
    saved.mix_from(linear, mlp, 0.3)
    state = {key: value for key, value in saved.state_dict().items() if key != "last_share"}
    loaded = KLCycleForecaster(96, 24, 7, cycle_len=24, memory="off", head="mix", hidden=32)
    loaded.last_share.fill_(0.5)
    loaded.load_state_dict(state)
    assert float(loaded.last_share) == 0.0
    inputs, positions = torch.randn(4, 96, 7), torch.arange(4)
    expected = 0.3 * linear._base(inputs, positions)[1] + 0.7 * mlp._base(inputs, positions)[1]
    torch.testing.assert_close(loaded._base(inputs, positions)[1], expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mix shares must be >= 0 and sum to at most 1"):
        loaded.mix_from(linear, mlp, 0.7, 0.4)


def test_on_a_random_walk_the_default_is_never_behind_the_last_value_on_validation(tmp_path):
    """Series that wander like exchange rates: no trained map reproduces the last value, which is the forecast
    to beat there. The run weighs it in, so the kept network's validation MSE is at most the last value's."""
    rng = np.random.default_rng(1)
    rows = 1500
    values = np.exp(np.cumsum(rng.normal(0, 0.006, (rows, 4)), axis=0))
    frame = pd.DataFrame(values, columns=["a", "b", "c", "OT"])
    frame.insert(0, "date", pd.date_range("2000-01-01", periods=rows, freq="D").strftime("%Y-%m-%d"))
    frame.to_csv(tmp_path / "walk.csv", index=False)
    raw = load_config("default").to_dict()
    raw["data"].update({"name": str(tmp_path / "walk.csv"), "pred_lens": [24]})
    raw["model"].update({"hidden": 32, "memory": "off"})
    raw["train"].update({"epochs": 3})
    raw["seeds"] = [3]
    (record,) = run_sweep(config_from_dict(raw), tmp_path / "runs")
    fit_log = json.loads((Path(record.run_dir) / "metrics.json").read_text())["fit"]
    mix = next(entry for entry in fit_log["choice"]["validation_mse"] if entry["head"] == "mix")
    assert fit_log["choice"]["chosen"]["head"] == "mix" and mix["last_value_share"] > 0.5
    assert fit_log["best_val_mse"] == mix["mse"] <= mix["last_value_mse"]
    run = load_run(record.run_dir)
    assert float(run.model.last_share) == pytest.approx(mix["last_value_share"])
