"""Trainer protocol, sweeps and resume, checkpoints, configs, and the train/evaluate commands."""

from __future__ import annotations

import datetime
import json
import pickle
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from rich.console import Console
from typer.testing import CliRunner

from specmem_cli.checkpoint import load_checkpoint, load_run
from specmem_cli.cli import app
from specmem_cli.config import apply_overrides, load_config, load_data, read_yaml
from specmem_cli.data.windows import WindowSet
from specmem_cli.errors import CheckpointError, ConfigError, SpecmemError
from specmem_cli.render import comparison_table, results_table, suite_table
from specmem_cli.training.run import RunRecord, evaluate_run
from specmem_cli.training.sanity import sanity_checks
from specmem_cli.training.sweep import SweepReporter, run_sweep
from specmem_cli.training.trainer import TRAINING_STATE, Reporter, fit, horizon_of, learning_rate, training_batch
from tests.conftest import ETTH1, REFERENCE, tiny_config

runner = CliRunner()


def test_type1_schedule_keeps_two_epochs_then_halves():
    assert [learning_rate(1e-4, epoch, "type1") for epoch in range(4)] == [1e-4, 1e-4, 5e-5, 2.5e-5]
    assert learning_rate(1e-4, 5, "constant") == 1e-4


class Recorder(Reporter):
    def __init__(self):
        self.epochs = []

    def end_epoch(self, epoch, train_loss, val_mse, lr, improved):
        self.epochs.append((epoch, val_mse, lr, improved))


def test_early_stopping_on_validation_restores_best_weights(monkeypatch):
    """Validation scores scripted per epoch: best at epoch 1, then two without improvement (patience 2)."""
    from specmem_cli.models import build_model
    from specmem_cli.training import trainer

    config = tiny_config(train={"epochs": 8, "patience": 2, "max_steps": None, "lr": 0.05})
    data = load_data(config, 12)
    model = build_model("klmemory", 48, 12, data.n_inputs, config.model_params)
    scripted, states = iter([1.0, 0.8, 0.9, 0.85, 0.1]), []

    def scripted_validation(model, windows, batch_size, n_outputs, transform=None):
        states.append({key: value.clone() for key, value in model.state_dict().items()})
        return trainer.Metrics(next(scripted), 0.0)

    monkeypatch.setattr(trainer, "evaluate_windows", scripted_validation)
    recorder = Recorder()
    result = fit(model, data, config.train, seed=1, reporter=recorder)
    assert [improved for *_, improved in recorder.epochs] == [True, True, False, False]
    assert (result.epochs_run, result.best_epoch, result.best_val_mse) == (4, 1, 0.8)
    final = model.state_dict()
    assert all(torch.equal(final[key], states[1][key]) for key in final)
    assert not all(torch.equal(final[key], states[3][key]) for key in final)


def test_epoch_samples_caps_each_epoch_to_a_fresh_subset_of_windows():
    """A wide split trains on a fresh random subset each epoch; a split under the cap is untouched."""
    from specmem_cli.models import build_model

    config = tiny_config(train={"epochs": 3, "max_steps": None, "lr": 0.01})
    data = load_data(config, 12)
    windows, series = data.train, data.train.series.shape[1]
    assert windows.windows_for(None) is None and windows.windows_for(windows.count * series) is None
    assert windows.windows_for(64 * series + series - 1) == 64 and windows.windows_for(1) == 1
    generator = torch.Generator().manual_seed(0)
    epochs = [
        torch.cat([positions for *_, positions in windows.batches(32, True, generator, limit=64)]) for _ in range(2)
    ]
    assert all(len(epoch) == len(set(epoch.tolist())) == 64 for epoch in epochs)
    assert not torch.equal(epochs[0].sort().values, epochs[1].sort().values)

    def trained(epoch_samples):
        config.train.epoch_samples = epoch_samples
        model = build_model("klmemory", 48, 12, data.n_inputs, config.model_params)
        recorder = Recorder()
        recorder.batches = []
        recorder.start_epoch = lambda epoch, n_epochs, n_batches: recorder.batches.append(n_batches)
        return fit(model, data, config.train, seed=1, reporter=recorder), recorder.batches

    capped, batches = trained(64 * series)
    assert capped.steps == 3 * 2 and batches == [2, 2, 2]
    everything, uncapped = trained(None)
    assert uncapped == [windows.n_batches(32)] * 3 and everything.steps == 3 * windows.n_batches(32)
    assert trained(windows.count * series)[0].best_val_mse == everything.best_val_mse
    with pytest.raises(ConfigError, match=re.escape("train.epoch_samples must be a positive integer or null")):
        apply_overrides(config, ["train.epoch_samples=0"])


def test_a_small_training_split_takes_smaller_batches_for_its_steps():
    """``train.min_steps_per_epoch``: the batch shrinks where an epoch would take fewer steps (never below
    8 windows), is untouched where it would not, and the run records the batch it trained with."""
    from specmem_cli.models import build_model

    config = tiny_config(train={"epochs": 2, "max_steps": None, "lr": 0.01, "batch_size": 32})
    assert training_batch(config.train, 10_000) == 32  # null: the batch as given
    config.train.min_steps_per_epoch = 16
    assert training_batch(config.train, 10_000) == 32  # 312 steps anyway
    assert training_batch(config.train, 320) == 20  # 16 steps of 20
    assert training_batch(config.train, 40) == 8  # never below 8 windows
    data = load_data(config, 12)
    windows = len(data.train)
    config.train.min_steps_per_epoch = -(-windows // 8)  # asks for more steps than 32 windows a batch give
    model = build_model("klmemory", 48, 12, data.n_inputs, config.model_params)
    recorder = Recorder()
    recorder.batches = []
    recorder.start_epoch = lambda epoch, n_epochs, n_batches: recorder.batches.append(n_batches)
    result = fit(model, data, config.train, seed=1, reporter=recorder)
    expected = training_batch(config.train, windows)
    assert expected < 32 and result.batch_size == expected
    assert recorder.batches == [data.train.n_batches(expected)] * 2 and result.steps == 2 * data.train.n_batches(
        expected
    )
    with pytest.raises(ConfigError, match=re.escape("train.min_steps_per_epoch must be a positive integer or null")):
        apply_overrides(config, ["train.min_steps_per_epoch=0"])


def test_same_seed_same_metrics_and_resume(tmp_path):
    config = tiny_config(seeds=[1, 2])
    first = run_sweep(config, tmp_path / "a")
    again = run_sweep(config, tmp_path / "b")
    assert [(r.mse, r.mae) for r in first] == [(r.mse, r.mae) for r in again]
    assert first[0].mse != first[1].mse
    reused = run_sweep(config, tmp_path / "a")
    assert all(r.reused for r in reused) and [r.mse for r in reused] == [r.mse for r in first]
    # an interrupted run (no metrics.json, stray temp file) is redone, the finished one reused
    run_dir = tmp_path / "a" / "klmemory_synthetic_sl48_pl12_seed2"
    (run_dir / "metrics.json").unlink()
    (run_dir / ".checkpoint.pt.123.tmp").write_bytes(b"partial")
    resumed = run_sweep(config, tmp_path / "a")
    assert [r.reused for r in resumed] == [True, False] and resumed[1].mse == first[1].mse
    assert not list(run_dir.glob(".*.tmp"))
    shutil.move(tmp_path / "a", tmp_path / "moved")
    moved = run_sweep(config, tmp_path / "moved")
    assert all(r.reused for r in moved) and [r.mse for r in moved] == [r.mse for r in first]
    assert all(Path(r.run_dir).parent == tmp_path / "moved" for r in moved)
    assert load_run(moved[0].run_dir).checkpoint is not None


def test_changed_settings_do_not_reuse_old_runs(tmp_path):
    run_sweep(tiny_config(), tmp_path)
    with pytest.raises(SpecmemError, match=r"different settings \(train\.lr [0-9.e-]+ -> 0\.002\); use another --out"):
        run_sweep(tiny_config(train={"lr": 0.002}), tmp_path)


@pytest.mark.parametrize("policy", ["reset", "frozen"])
def test_memory_policy_at_evaluation(tmp_path, policy):
    (record,) = run_sweep(tiny_config(train={"memory_at_eval": policy}), tmp_path)
    state = load_checkpoint(record.run_dir).state_dict
    if policy == "reset":
        assert int(state["memory.filled"]) == 0 and not bool(state["memory.is_frozen"])
    else:
        assert int(state["memory.filled"]) > 0 and bool(state["memory.is_frozen"])
        assert state["memory.frozen_tokens"].abs().sum() > 0


def test_evaluate_reproduces_train_numbers_and_sanity(tmp_path):
    (record,) = run_sweep(tiny_config(train={"memory_at_eval": "frozen"}), tmp_path)
    again = evaluate_run(tmp_path / "klmemory_synthetic_sl48_pl12_seed7")
    assert (again.mse, again.mae) == (record.mse, record.mae)
    checks = sanity_checks(tmp_path / "klmemory_synthetic_sl48_pl12_seed7")
    assert checks["normal"]["mse"] == record.mse
    assert checks["inputs replaced by noise"]["mse"] > checks["normal"]["mse"]
    assert checks["memory frozen"]["mse"] == record.mse
    assert checks["memory zeroed"]["mse"] == checks["memory reset per batch"]["mse"]


@pytest.fixture
def finished_run(tmp_path):
    (record,) = run_sweep(tiny_config(), tmp_path / "runs")
    return tmp_path / "runs" / "klmemory_synthetic_sl48_pl12_seed7", record


DAMAGED = "corrupt or not a specmem checkpoint (damaged, cut short, or another kind of file)"


def test_bad_checkpoints_are_one_line_errors(finished_run, tmp_path):
    run_dir, _ = finished_run
    good = (run_dir / "checkpoint.pt").read_bytes()
    cases = {
        "truncated.pt": good[: len(good) // 2],
        "garbage.pt": b"this is not a checkpoint",
        "pickled.pt": pickle.dumps({"when": datetime.date(2020, 1, 1)}, protocol=4),  # torch warns, then refuses
    }
    for name, content in cases.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"weight": torch.zeros(2)}, tmp_path / "foreign.pt")
    document = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    torch.save({**document, "complete": False}, tmp_path / "unfinished.pt")
    torch.save({**document, "format_version": 0}, tmp_path / "older.pt")
    torch.save({**document, "format_version": 99}, tmp_path / "newer.pt")
    torch.save({k: v for k, v in document.items() if k != "time_axis"}, tmp_path / "lacking.pt")
    torch.save({**document, "columns": "a,b"}, tmp_path / "mistyped.pt")
    expected = {
        "truncated.pt": DAMAGED,
        "garbage.pt": DAMAGED,
        "pickled.pt": DAMAGED,
        "foreign.pt": "not a specmem checkpoint",
        "unfinished.pt": "unfinished run",
        "older.pt": "checkpoint format 0",
        "newer.pt": "upgrade specmem",
        "lacking.pt": "lacks time_axis",
        "mistyped.pt": "columns hold the wrong kind",
    }
    for name, fragment in expected.items():
        with pytest.raises(CheckpointError, match=re.escape(fragment)):
            load_checkpoint(tmp_path / name)
        result = runner.invoke(app, ["evaluate", str(tmp_path / name)])
        assert result.exit_code == 1 and fragment in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    missing = runner.invoke(app, ["evaluate", str(tmp_path / "nowhere")])
    assert missing.exit_code == 1 and "nowhere: no such file or directory" in missing.stderr
    # readable, but its stored config is not one run's (two horizons): refused when the run is rebuilt
    two_horizons = {**document["config"], "data": {**document["config"]["data"], "pred_lens": [12, 24]}}
    torch.save({**document, "config": two_horizons}, tmp_path / "two_horizons.pt")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "two_horizons.pt")])
    assert result.exit_code == 1 and "holds horizons [12, 24] and seeds [7]" in result.stderr
    assert "Traceback" not in result.output


def test_config_overrides_and_unknown_keys():
    config = apply_overrides(load_config("demo"), ["train.epochs=5", "data.pred_lens=[12, 24]", "model.d_model=8"])
    assert config.train.epochs == 5 and config.data.pred_lens == [12, 24] and config.model["d_model"] == 8
    with pytest.raises(ConfigError, match=re.escape("unknown key 'train.epoch'; did you mean 'train.epochs'")):
        apply_overrides(config, ["train.epoch=3"])
    with pytest.raises(ConfigError, match="not key=value"):
        apply_overrides(config, ["train.epochs"])
    with pytest.raises(ConfigError, match=re.escape("train.batch_size must be a positive integer")):
        apply_overrides(config, ["train.batch_size=0"])
    with pytest.raises(ConfigError, match=re.escape("train.reuse_freed_memory must be true or false")):
        apply_overrides(config, ["train.reuse_freed_memory=maybe"])
    with pytest.raises(ConfigError, match="did you mean 'etth1_paper'"):
        load_config("etth1_papr")
    for setting, message in (
        ("data.pred_lens=[24, 48, 24]", "data.pred_lens names 24 twice; give each once"),
        ("seeds=[1, 1]", "seeds names 1 twice; give each once"),
        ("data.columns=[OT, OT]", "data.columns names OT twice; give each once"),
    ):
        with pytest.raises(ConfigError, match=re.escape(message)):
            apply_overrides(config, [setting])


def test_a_config_that_is_not_utf8_text_is_a_one_line_error(tmp_path):
    for name, content in (("utf16.yaml", "train:\n  epochs: 2\n".encode("utf-16")), ("binary.yaml", bytes(range(256)))):
        path = tmp_path / name
        path.write_bytes(content)
        result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "runs"), "-q"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert f"{path}: not a UTF-8 text file; save the config as UTF-8 YAML" in result.output
        assert not (tmp_path / "runs").exists()


def test_a_key_given_twice_in_a_config_is_a_one_line_error(tmp_path):
    """YAML itself would keep the second value silently; a config that says one thing twice is a mistake."""
    path = tmp_path / "twice.yaml"
    path.write_text("train:\n  epochs: 2\n  lr: 0.01\n  epochs: 3\n")
    result = runner.invoke(app, ["train", "--config", str(path), "--out", str(tmp_path / "runs"), "-q"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{path}: invalid YAML at line 4: key 'epochs' appears twice in one section; fix the syntax" in result.output
    assert not (tmp_path / "runs").exists()
    path.write_text("train:\n  epochs: 2\nmodel:\n  epochs: 2\n")  # the same name in two sections is fine
    assert read_yaml(path) == {"train": {"epochs": 2}, "model": {"epochs": 2}}


def test_unknown_model_parameter_via_cli(tmp_path):
    result = runner.invoke(app, ["train", "--set", "model.d_modl=8", "--out", str(tmp_path), "-q"])
    assert result.exit_code == 1 and "did you mean 'model.d_model'" in result.stderr
    assert "Traceback" not in result.output


def test_cli_train_multi_value_options_and_json(tmp_path):
    config = tmp_path / "tiny.yaml"
    import yaml

    config.write_text(yaml.safe_dump(tiny_config().to_dict()))
    args = [
        "train",
        "--config",
        str(config),
        "--pred-len",
        "6",
        "12",
        "--seeds",
        "1",
        "2",
        "--out",
        str(tmp_path / "o"),
        "--json",
        "-q",
        "--set",
        "train.max_steps=4",
        "train.epochs=1",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert sorted((r["pred_len"], r["seed"]) for r in document["runs"]) == [(6, 1), (6, 2), (12, 1), (12, 2)]
    assert set(document["summary"]["synthetic"]["klmemory"]["horizons"]) == {"6", "12"}
    evaluated = runner.invoke(app, ["evaluate", str(tmp_path / "o"), "--json"])
    assert evaluated.exit_code == 0
    assert json.loads(evaluated.stdout)["summary"] == document["summary"]


def test_cli_bad_data_is_one_line(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("date,a\n2020-01-01,1\n2020-01-01,2\n")
    result = runner.invoke(app, ["train", "--data", str(bad), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1 and "duplicated timestamp" in result.stderr and "Traceback" not in result.output
    result = runner.invoke(app, ["train", "--data", "ETTh1", "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1 and "specmem download ETTh1" in result.stderr


def test_import_published_weights(tmp_path):
    weights = tmp_path / "checkpoint.pth"
    torch.save(
        torch.load(REFERENCE / "klmemory_model_reference.pt", weights_only=True)["cases"]["empirical"]["state_dict"],
        weights,
    )
    # --set (a list option) before the positional weights: the list ends at the first token that is not key=value
    args = ["import-published", "--set", "model.memory_depth=50", "train.memory_at_eval=reset", str(weights)]
    args += ["--data", str(ETTH1), "--n-heads", "4", "--out", str(tmp_path / "run"), "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["pred_len"] == 24 and record["mse"] > 0
    # the weights carry a written memory; the run's policy (reset, as published) empties it for every use
    assert torch.load(weights, weights_only=True)["memory._history"].shape[0] > 0
    assert not load_run(tmp_path / "run").model.memory.ready
    assert evaluate_run(tmp_path / "run").mse == record["mse"]
    foreign = runner.invoke(app, ["evaluate", str(weights)])
    assert foreign.exit_code == 1 and "import-published" in foreign.stderr


def test_train_with_no_arguments_runs_the_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--set", "train.max_steps=3"])
    assert result.exit_code == 0, result.output
    assert "klmemory on synthetic" in result.stderr and "avg" in result.stderr
    assert sorted(p.name for p in (tmp_path / "runs" / "demo").glob("[!.]*")) == [
        "klmemory_synthetic_sl96_pl24_seed2021",
        "klmemory_synthetic_sl96_pl48_seed2021",
    ]


def test_version_and_help():
    assert runner.invoke(app, ["--version"]).stdout.startswith("specmem ")
    help_text = runner.invoke(app, ["--help"]).stdout
    for command in ("download", "train", "evaluate", "forecast", "inspect-modes"):
        assert command in help_text


def test_command_descriptions_flow_as_paragraphs_whatever_their_source_line_breaks():
    """A docstring wrapped at 120 columns in the source must not break lines mid-sentence in --help."""
    wide = runner.invoke(app, ["calibrate", "--help"], env={"COLUMNS": "200"}).stdout
    assert "this gives runs saved before intervals existed what forecast --quantiles" in wide


def test_error_messages_keep_square_brackets(tmp_path):
    missing = tmp_path / "sales[2024].csv"
    result = runner.invoke(app, ["train", "--data", str(missing), "--out", str(tmp_path / "o"), "-q"])
    assert result.exit_code == 1 and "sales[2024].csv: file not found" in result.stderr


def test_wide_data_is_scored_in_smaller_batches_with_the_same_metrics(monkeypatch):
    from specmem_cli.data.windows import WindowSet
    from specmem_cli.models.klcycle import KLCycleForecaster
    from specmem_cli.training import trainer

    series = torch.randn(120, 40, generator=torch.Generator().manual_seed(0))
    windows = WindowSet(series, 24, 12, slice(0, 40))
    model = KLCycleForecaster(24, 12, 40, cycle_len=4, memory="off")
    assert trainer.evaluation_batch(256, windows) == 256  # 40 series x 256 windows fit in one batch
    whole = trainer.evaluate_windows(model, windows, 256, 40)
    monkeypatch.setattr(trainer, "EVALUATION_ROWS", 40 * 3)
    assert trainer.evaluation_batch(256, windows) == 3
    sliced = trainer.evaluate_windows(model, windows, 256, 40)
    assert sliced.mse == pytest.approx(whole.mse, rel=1e-6) and sliced.mae == pytest.approx(whole.mae, rel=1e-6)


def test_every_list_option_is_expanded_and_only_those():
    """``--seeds 1 2`` works for each option declared as a list, and LIST_OPTIONS names no other option."""
    import typer

    from specmem_cli.cli import LIST_OPTIONS

    group = typer.main.get_command(app)
    for name, command in group.commands.items():
        declared = {opt for param in command.params if getattr(param, "multiple", False) for opt in param.opts}
        assert declared == set(LIST_OPTIONS.get(name, {})), name


def test_model_names_and_parameters_are_checked_when_the_config_is_read(tmp_path):
    """Before any data is read: the file below does not exist, and the model error is what is reported."""
    missing = str(tmp_path / "absent.csv")
    with pytest.raises(ConfigError, match="its parameters: d_model, n_heads"):
        tiny_config(model={"d_modle": 3})
    with pytest.raises(ConfigError, match=r"model\.d_model: 'x' is not a whole number"):
        tiny_config(model={"d_model": "x"})
    for args, message in (
        (["--model", "klcycel"], "unknown model 'klcycel'; did you mean 'klcycle'?"),
        (["--model", "KLCycle"], "unknown model 'KLCycle'; did you mean 'klcycle'?"),
        (["--threads-per-job", "0"], "--threads-per-job must be a positive whole number (got 0)"),
        (["--set", "model.cycle_lne=24", "--model", "klcycle"], "did you mean 'model.cycle_len'?"),
    ):
        result = runner.invoke(app, ["train", "--data", missing, "--out", str(tmp_path / "o"), "-q", *args])
        assert result.exit_code == 1 and message in result.stderr and "file not found" not in result.stderr


class InterruptAfterEpoch(SweepReporter):
    """Stops the process (as Ctrl-C would) once ``epoch`` has finished; records the epochs it sees."""

    def __init__(self, epoch: int | None):
        self.epoch, self.seen = epoch, []

    def start_epoch(self, epoch, n_epochs, n_batches):
        self.seen.append(epoch)

    def end_epoch(self, epoch, train_loss, val_mse, lr, improved):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def resumable_config(**train):
    return tiny_config(
        model={"dropout": 0.1}, train={"epochs": 5, "patience": 5, "max_steps": None, "lr": 0.003, **train}
    )


def test_a_run_killed_between_epochs_resumes_there_with_the_same_metrics(tmp_path):
    config = resumable_config()
    (whole,) = run_sweep(config, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, tmp_path / "cut", InterruptAfterEpoch(2))
    run_dir = tmp_path / "cut" / Path(whole.run_dir).name
    assert (run_dir / TRAINING_STATE).is_file() and not (run_dir / "metrics.json").exists()
    assert not list((tmp_path / "cut").glob("*/checkpoint.pt"))  # nothing that looks finished
    watcher = InterruptAfterEpoch(None)
    (again,) = run_sweep(config, tmp_path / "cut", watcher)
    assert watcher.seen == [3, 4]  # epochs 0-2 were not trained again
    assert (again.mse, again.mae) == (whole.mse, whole.mae)
    fit_logs = [json.loads((Path(r.run_dir) / "metrics.json").read_text())["fit"] for r in (whole, again)]
    keys = ("best_epoch", "epochs_run", "steps", "best_val_mse")
    assert [log[k] for k in keys for log in fit_logs[:1]] == [log[k] for k in keys for log in fit_logs[1:]]
    assert not (run_dir / TRAINING_STATE).exists()


def test_a_state_saved_under_other_settings_is_not_continued(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_sweep(resumable_config(lr=0.01), tmp_path / "cut", InterruptAfterEpoch(1))
    (stale,) = list((tmp_path / "cut").glob("*/" + TRAINING_STATE))
    target = tmp_path / "other" / stale.parent.name
    target.mkdir(parents=True)
    shutil.copy(stale, target / TRAINING_STATE)
    watcher = InterruptAfterEpoch(None)
    (record,) = run_sweep(resumable_config(), tmp_path / "other", watcher)
    (fresh,) = run_sweep(resumable_config(), tmp_path / "fresh")
    assert watcher.seen[0] == 0 and record.mse == fresh.mse


def test_a_bad_model_value_is_reported_before_the_run_directories_are_checked(tmp_path):
    run_sweep(tiny_config(), tmp_path)  # a finished run with other settings now sits in tmp_path
    with pytest.raises(ConfigError, match="projection must be one of"):
        run_sweep(tiny_config(model={"projection": "sparse"}), tmp_path)


def test_a_removed_key_is_named_with_the_reason_and_a_stored_run_still_loads(finished_run, tmp_path):
    with pytest.raises(ConfigError, match=r"'data\.label_len' was removed \(targets hold the horizon only"):
        tiny_config(data={"name": "synthetic", "seq_len": 48, "label_len": 24, "pred_lens": [12]})
    run_dir, _ = finished_run
    old = yaml.safe_load((run_dir / "config.yaml").read_text())
    old["data"]["label_len"] = 24  # as specmem 0.1 wrote it
    (run_dir / "config.yaml").write_text(yaml.safe_dump(old))
    config = tiny_config()
    assert run_sweep(config, run_dir.parent)[0].reused  # the same settings: reused, not refused


def test_model_presets_hold_only_what_differs_from_the_model_defaults():
    from specmem_cli.config import model_preset
    from specmem_cli.models import MODELS, hyper_parameters

    for name in MODELS:
        defaults = hyper_parameters(name)
        repeated = [k for k, v in model_preset(name).items() if k in defaults and defaults[k] == v]
        assert not repeated, f"configs/models/{name}.yaml repeats defaults: {repeated}"


def test_the_cli_choices_are_the_library_choices():
    from specmem_cli import cli
    from specmem_cli.data.splits import FEATURE_MODES, SPLIT_NAMES
    from specmem_cli.data.table import FILL_METHODS
    from specmem_cli.training.parallel import BACKENDS

    def values(choices):
        return {choice.value for choice in choices}

    assert values(cli.Features) == set(FEATURE_MODES) and values(cli.Fill) == set(FILL_METHODS)
    assert values(cli.Backend) == set(BACKENDS) and values(cli.Split) == set(SPLIT_NAMES) - {"train"}


def test_tables_give_a_spread_only_where_there_are_several_seeds():
    """One seed has no spread: its tables show the mean alone, not '± 0.0000'."""

    def record(seed, mse):
        return RunRecord("klcycle", "ETTh1", 96, seed, mse, mse / 2, "runs/x", 1.0)

    def text(table):
        console = Console(width=200, record=True)
        console.print(table)
        return console.export_text()

    one, two = [record(2019, 0.4)], [record(2019, 0.4), record(2020, 0.5)]
    for table in (results_table(one, "one"), comparison_table({"m": one}), suite_table({("m", "ETTh1"): one})):
        assert "0.4000" in text(table) and "± 0.0000" not in text(table)
    for table in (results_table(two, "two"), comparison_table({"m": two}), suite_table({("m", "ETTh1"): two})):
        assert "0.4500 ± 0.0707" in text(table)


def test_batches_hold_contiguous_targets_and_an_exact_forecast_is_scored_unsliced():
    """The loss reads targets in the forecast's layout, and a forecast that is exactly the horizon is not
    sliced (a slice's backward fills a zero gradient and copies into it): both for speed, same values."""
    series = torch.arange(60.0).view(20, 3).T.contiguous().T  # channel-major storage, as the splits hold it
    windows = WindowSet(series, seq_len=4, pred_len=3, output_channels=slice(1, 3))
    inputs, targets, _ = windows.batch(torch.tensor([5, 0]))
    assert targets.is_contiguous() and targets.shape == (2, 3, 2)
    assert torch.equal(targets[0], series[9:12, 1:]) and torch.equal(inputs[1], series[0:4])
    exact = torch.randn(2, 3, 2)
    assert horizon_of(exact, 3, 2) is exact
    longer = torch.randn(2, 5, 3)  # a decoder's label rows and an input-only channel
    assert torch.equal(horizon_of(longer, 3, 2), longer[:, 2:, 1:])


def test_a_span_of_windows_holds_the_same_windows_and_positions():
    """A held-out part of a split (the interval benchmark's check) is those windows exactly, clock included."""
    series = torch.randn(40, 3)
    windows = WindowSet(series, seq_len=6, pred_len=4, output_channels=slice(1, 3), positions=torch.arange(100, 140))
    part = windows.span(10, 25)
    assert len(part) == 15
    index = torch.arange(15)
    for mine, theirs in zip(part.batch(index), windows.batch(index + 10), strict=True):
        assert torch.equal(mine, theirs)
    with pytest.raises(ValueError, match="outside"):
        windows.span(20, len(windows) + 1)
