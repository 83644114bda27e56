"""The `specmem` command line: parse arguments, call the library, render the results.

Human output (progress, tables, messages) goes to stderr; ``--json`` puts one machine-readable
document on stdout. A :class:`SpecmemError` becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from specmem_cli import __version__
from specmem_cli.errors import SpecmemError


# Fixed choices, declared here so that `specmem --help` does not import torch; tests/test_training.py
# checks each against the library's own list.
class Split(str, Enum):
    test = "test"
    val = "val"


class Features(str, Enum):
    M = "M"
    MS = "MS"
    S = "S"


class Fill(str, Enum):
    ffill = "ffill"
    interpolate = "interpolate"


class Backend(str, Enum):
    loky = "loky"
    dask = "dask"


def _parses_as(kind: type):
    def parses(token: str) -> bool:
        try:
            kind(token)
        except ValueError:
            return False
        return True

    return parses


_is_number, _is_float = _parses_as(int), _parses_as(float)


def _is_setting(token: str) -> bool:
    return "=" in token


def _any_value(token: str) -> bool:
    return True


# Each subcommand's list options, with a test of whether a token can be one of its values.
LIST_OPTIONS = {
    "train": {
        "--pred-len": _is_number,
        "--seeds": _is_number,
        "--set": _is_setting,
        "--model": _any_value,
        "--data": _any_value,
        "--columns": _any_value,
        "--value-col": _any_value,
    },
    "import-published": {"--set": _is_setting},
    "evaluate": {"--quantiles": _is_float},
    "forecast": {"--quantiles": _is_float, "--series": _any_value},
}


class MultiValueGroup(TyperGroup):
    """Lets ``--seeds 2019 2020 2021`` mean ``--seeds 2019 --seeds 2020 --seeds 2021`` (click has no nargs=*).

    Only the list options of the subcommand being run (:data:`LIST_OPTIONS`) are expanded, and a
    token that cannot be a value of the option (not ``key=value`` after ``--set``, not an integer
    after ``--seeds``) ends the list, so ``import-published --set model.strategy=kernel ckpt.pth``
    still finds its positional argument.
    """

    def parse_args(self, ctx, args):
        accepts = LIST_OPTIONS.get(args[0], {}) if args else {}
        expanded, current = [], None
        for token in args:
            if token.startswith("-") and not _is_float(token):
                current = token if token in accepts else None
                expanded.append(token)
            elif current is not None and accepts[current](token):
                if expanded[-1] != current:
                    expanded.append(current)
                expanded.append(token)
            else:
                current = None
                expanded.append(token)
        return super().parse_args(ctx, expanded)


app = typer.Typer(
    cls=MultiValueGroup,
    help="Spectral Memory forecasting: download data, train and evaluate under the TSL protocol, forecast, inspect the memory.",
    rich_markup_mode="markdown",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"specmem {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Spectral Memory forecasting from the command line."""


def user_errors(command):
    """Turn a :class:`SpecmemError` into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from specmem_cli.errors import describe_os_error
        from specmem_cli.render import error, show_notes

        show_notes()
        try:
            return command(*args, **kwargs)
        except SpecmemError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except OSError as exc:  # full disk, read-only or immutable directory, a path that is a file
            error(describe_os_error(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            error(
                "interrupted; finished runs are kept, and rerunning the same command resumes the others from their "
                "last finished epoch"
                if command.__name__ == "train"
                else "interrupted; nothing half-written was kept (files are written whole or not at all)"
            )
            raise typer.Exit(130) from None

    return wrapper


def _emit_json(document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@app.command()
@user_errors
def download(
    name: Annotated[
        str,
        typer.Argument(
            help="Data set name: ETTh1, ETTh2, ETTm1, ETTm2 (from their publisher), weather (with --mirror), or one "
            "from --config. electricity, traffic, exchange_rate and national_illness have no hash to verify: "
            "place NAME.csv in the data directory instead."
        ),
    ],
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Where to put it (default: $SPECMEM_DATA_DIR or the per-user cache).")
    ] = None,
    mirror: Annotated[
        str | None,
        typer.Option(help="Base http(s) URL or local directory holding the same file name (air-gapped machines)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if a verified copy exists.")] = False,
    config: Annotated[
        str | None, typer.Option(help="YAML file whose 'datasets:' section registers more sets (url + sha256).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {name, path, downloaded} as JSON on stdout.")] = False,
) -> None:
    """Fetch a data set, verify its checksum, and cache it; a verified copy is never fetched twice."""
    from specmem_cli.config import read_yaml
    from specmem_cli.data.registry import data_dir, lookup, registry
    from specmem_cli.data.registry import download as fetch
    from specmem_cli.render import ByteProgress, stderr

    extra = read_yaml(config).get("datasets", {}) if config else {}
    spec = lookup(name, registry(extra), otherwise="or register one in a --config file's 'datasets:' section")
    target_dir = directory or data_dir()
    progress = ByteProgress(f"{spec.name}") if not as_json else False
    try:
        path, transferred = fetch(spec, target_dir, mirror=mirror, force=force, progressbar=progress)
    finally:
        if progress:
            progress.close()
    stderr.print(
        f"{'downloaded' if transferred else 'already verified'}: {spec.name} -> {path}", highlight=False, markup=False
    )
    if as_json:
        _emit_json({"name": spec.name, "path": str(path), "downloaded": transferred})


@app.command()
@user_errors
def train(
    config: Annotated[
        str | None,
        typer.Option(
            help="YAML config file or preset name (default, demo, etth1, etth1_paper, etth1_backbones). "
            "Default: 'default' (the data-agnostic model) when --data is given, else 'demo' (offline synthetic demo)."
        ),
    ] = None,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data",
            help="Data set name(s) (synthetic, ETTh1, ETTh2, ETTm1, ETTm2, weather, electricity, traffic, exchange_rate, "
            "national_illness) or CSV path(s); a known name's protocol (split, look-back, horizons) applies. "
            "Several (--data ETTh1 ETTm1 weather) run one after another, with a model x data set summary.",
        ),
    ] = None,
    pred_len: Annotated[
        list[int] | None, typer.Option("--pred-len", help="Horizons, e.g. --pred-len 96 192 336 720.")
    ] = None,
    seeds: Annotated[list[int] | None, typer.Option("--seeds", help="Seeds, e.g. --seeds 2019 2020 2021.")] = None,
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="Model(s): klcycle, klmemory, dlinear, patchtst, itransformer, ...; several run side by side.",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config overrides key=value, e.g. --set train.epochs=3 model.d_model=64."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Output directory for run directories (default: runs/ and the config's name, e.g. runs/default)."
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Forecast only this series. Models that mix series (itransformer, timexer, ...) read every "
            "series' history for it (--features S: its own alone); the default reads each series on its own, "
            "so with it MS and S forecast alike."
        ),
    ] = None,
    features: Annotated[
        Features | None,
        typer.Option(
            help="M: every series forecasts every series (default); MS: all forecast --target; S: target only."
        ),
    ] = None,
    columns: Annotated[
        list[str] | None, typer.Option("--columns", help="Keep only these series (columns, or ids of a long file).")
    ] = None,
    date_col: Annotated[
        str | None,
        typer.Option(
            help="Date column of a CSV, or a column of rising step numbers (default: the first column whose content "
            "reads as dates; a file of numbers only is read in row order)."
        ),
    ] = None,
    id_col: Annotated[
        str | None,
        typer.Option(help="Series id column of a long-format CSV (id, date, value rows); default: detected."),
    ] = None,
    value_cols: Annotated[
        list[str] | None,
        typer.Option("--value-col", help="Value column(s) of a long-format CSV (default: all numeric)."),
    ] = None,
    fill: Annotated[
        Fill | None,
        typer.Option(help="Repair missing values and put missing clock steps back: ffill or interpolate."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print run records and the summary as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            help="Runs in parallel (worker processes); each run's result equals a serial sweep's at the same "
            "--threads-per-job (torch's thread count can change the last digits)."
        ),
    ] = 1,
    threads_per_job: Annotated[
        int | None, typer.Option(help="Torch threads per run (default: cores / jobs, so jobs never oversubscribe).")
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            help="Where runs train: cpu (the config's default: deterministic, and fastest for the small models), "
            "cuda, cuda:N or mps (for large models such as etth1_paper). Checkpoints load on a CPU either way."
        ),
    ] = None,
    backend: Annotated[
        Backend, typer.Option(help="loky (local processes) or dask (a cluster; pip install 'specmem\\[dask]').")
    ] = Backend.loky,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (tcp://host:8786); without it, --backend dask starts a local cluster."
        ),
    ] = None,
) -> None:
    """Train and test every (horizon, seed) run of a config; reruns skip finished runs.

    Each run's forecast intervals are calibrated on its validation windows when it finishes; the table
    adds the test coverage and width of the 80% interval and the pinball loss, the interval's levels
    adapting to the test errors as their actuals arrive (`evaluate --quantiles` scores other levels). With no arguments, runs the built-in demo (synthetic data, small model) end to end.
    """
    from specmem_cli.config import (
        DATA_DEFAULT_PRESET,
        DEFAULT_PRESET,
        apply_overrides,
        dataset_label,
        load_config,
        updated,
        with_model,
    )
    from specmem_cli.render import RichSweepReporter, comparison_table, results_table, stderr, suite_table
    from specmem_cli.training.summary import summary_by_data_set
    from specmem_cli.training.sweep import plan_sweep, run_sweep

    preset = config or (DATA_DEFAULT_PRESET if data else DEFAULT_PRESET)
    base = load_config(preset)
    if jobs < 1:
        raise SpecmemError("--jobs must be at least 1")
    flags = {
        "date_col": date_col,
        "id_col": id_col,
        "value_cols": value_cols,
        "columns": columns,
        "target": target,
        "features": features.value if features is not None else ("MS" if target is not None else None),
        "fill": fill.value if fill is not None else None,
        "pred_lens": pred_len or None,
    }
    data_flags = {key: value for key, value in flags.items() if value is not None}
    if threads_per_job is not None and threads_per_job < 1:
        raise SpecmemError(f"--threads-per-job must be a positive whole number (got {threads_per_job})")
    train_flags = {key: value for key, value in (("threads", threads_per_job), ("device", device)) if value is not None}

    def experiment(name: str | None, model: str):
        chosen = with_model(base, model)
        if name is not None:
            chosen = updated(chosen, data={"name": name})
        if overrides:
            chosen = apply_overrides(chosen, overrides)
        return updated(chosen, data=data_flags, train=train_flags, seeds=seeds or None)

    experiments = [experiment(name, model) for name in (data or [None]) for model in (models or [base.model_name])]
    labels = [(e.model_name, dataset_label(e.data.name)) for e in experiments]
    if len(set(models or [])) < len(models or []):
        twice = next(model for model in models if models.count(model) > 1)
        raise SpecmemError(f"--model names '{twice}' twice; give each model once")
    if scheduler is not None and backend.value != "dask":
        raise SpecmemError("--scheduler is the address of a Dask cluster; add --backend dask (or drop --scheduler)")
    if len(set(labels)) < len(labels):
        repeated = next(label for label in labels if labels.count(label) > 1)
        raise SpecmemError(
            f"--data names '{repeated[1]}' twice for model {repeated[0]}; their runs would share directories, "
            "so give each data set once (rename one of two files with the same name)"
        )
    out_dir = out or Path("runs") / Path(preset).stem
    tables, planned = {}, []
    for experiment in experiments:  # each data set is read once, and its windows settled, before any training
        reading = (experiment.data.name, experiment.data.reading().key())
        settled, tables[reading] = plan_sweep(experiment, tables.get(reading))
        planned.append((settled, tables[reading]))
    experiments = [settled for settled, _ in planned]
    total = sum(len(e.data.pred_lens) * len(e.seeds) for e in experiments)
    records_by_run = {}
    with RichSweepReporter(total, quiet) as reporter:
        for key, (experiment, table) in zip(labels, planned, strict=True):
            records_by_run[key] = run_sweep(
                experiment, out_dir, reporter, jobs=jobs, backend=backend.value, scheduler=scheduler, table=table
            )
    for experiment, ((model, dataset), records) in zip(experiments, records_by_run.items(), strict=True):
        title = f"{model} on {dataset} (seq_len {experiment.data.seq_len}), test split"
        stderr.print(results_table(records, title))
    datasets = list(dict.fromkeys(dataset for _, dataset in records_by_run))
    models_run = list(dict.fromkeys(model for model, _ in records_by_run))
    if len(datasets) > 1:
        stderr.print(suite_table(records_by_run))
    elif len(models_run) > 1:
        stderr.print(comparison_table({model: records for (model, _), records in records_by_run.items()}))
    stderr.print(f"runs in {out_dir}", highlight=False, markup=False)
    if as_json:
        every = [record for records in records_by_run.values() for record in records]
        _emit_json({"runs": [r.to_dict() for r in every], "summary": summary_by_data_set(every)})


@app.command()
@user_errors
def evaluate(
    path: Annotated[
        Path, typer.Argument(help="A run directory, a checkpoint file, or a sweep directory holding runs.")
    ],
    split: Annotated[Split, typer.Option(help="Split to score.")] = Split.test,
    sanity: Annotated[
        bool,
        typer.Option(
            "--sanity", help="Also run destructive checks (shuffled/noise inputs, memory zeroed/frozen/reset)."
        ),
    ] = False,
    quantiles: Annotated[
        list[float] | None,
        typer.Option(
            "--quantiles",
            help="Score intervals at these levels, e.g. --quantiles 0.05 0.1 0.5 0.9 0.95: coverage and mean width of "
            "each central pair, pinball loss over all (default 0.1 0.5 0.9 where the run is calibrated); the levels "
            "adapt to the split's errors as each window's actuals become known.",
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The CSV the runs were trained on, where it has moved since (its content must be the same; "
            "by default the path the run recorded).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print records as JSON on stdout.")] = False,
) -> None:
    """Recompute metrics from checkpoints alone; prints the same table as `train`."""
    from specmem_cli.checkpoint import find_runs
    from specmem_cli.render import sanity_table, stderr
    from specmem_cli.training.run import evaluate_run
    from specmem_cli.training.sanity import sanity_checks
    from specmem_cli.training.summary import summary_by_data_set

    split = split.value
    runs = find_runs(path)
    records = [evaluate_run(run, split, quantiles, data) for run in runs]
    _print_by_model_and_data(records, f"{split} split")
    checks = {}
    if sanity:
        for run in runs:
            checks[str(run)] = sanity_checks(run, split, source=data)
            stderr.print(sanity_table(checks[str(run)], title=f"sanity checks: {run}"))
    if as_json:
        _emit_json(
            {
                "runs": [r.to_dict() for r in records],
                "summary": summary_by_data_set(records),
                **({"sanity": checks} if sanity else {}),
            }
        )


@app.command()
@user_errors
def calibrate(
    path: Annotated[
        Path, typer.Argument(help="A run directory, a checkpoint file, or a sweep directory holding runs.")
    ],
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="The CSV the runs were trained on, where it has moved since (its content must be the same).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the records as JSON on stdout.")] = False,
) -> None:
    """(Re)calibrate forecast intervals of finished runs on their training file's validation split.

    Runs trained by this specmem are calibrated already; this gives runs saved before intervals existed
    what `forecast --quantiles` and `evaluate --quantiles` need. The weights are not touched; each
    checkpoint is rewritten atomically and the table shows the test split's interval scores.
    """
    from specmem_cli.checkpoint import find_runs, load_checkpoint
    from specmem_cli.training.run import calibrate_run
    from specmem_cli.training.summary import summary_by_data_set

    runs = find_runs(path)
    for run in runs:  # a damaged checkpoint stops the command before any checkpoint of the sweep is rewritten
        load_checkpoint(run)
    records = [calibrate_run(run, data) for run in runs]
    _print_by_model_and_data(records, "calibrated; test split")
    if as_json:
        _emit_json({"runs": [r.to_dict() for r in records], "summary": summary_by_data_set(records)})


def _print_by_model_and_data(records: list, what: str) -> None:
    """One table per model and data set, as `train` prints them (a sweep directory may hold several), and
    the model x data set summary where there are several."""
    from specmem_cli.render import comparison_table, results_table, stderr, suite_table

    groups: dict[tuple[str, str], list] = {}
    for record in records:
        groups.setdefault((record.model, record.dataset), []).append(record)
    for (model, dataset), group in groups.items():
        stderr.print(results_table(group, f"{model} on {dataset}, {what}"))
    if len({dataset for _, dataset in groups}) > 1:
        stderr.print(suite_table(groups))
    elif len(groups) > 1:
        stderr.print(comparison_table({model: group for (model, _), group in groups.items()}))


@app.command(name="import-published")
@user_errors
def import_published(
    weights: Annotated[Path, typer.Argument(help="checkpoint.pth saved by the published TSL KLMemory code.")],
    data: Annotated[
        str, typer.Option(help="The data set it was trained on (name or CSV); fits the scaler as TSL did.")
    ] = "ETTh1",
    n_heads: Annotated[int, typer.Option(help="Attention heads (the only setting no tensor shape records).")] = 8,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Settings shapes cannot tell, e.g. model.strategy=kernel train.memory_at_eval=reset."
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Run directory to create.")] = Path("runs/imported"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the run record as JSON on stdout.")] = False,
) -> None:
    """Convert published TSL weights into a specmem run (checkpoint + test metrics) that evaluate and forecast accept."""
    from specmem_cli.config import ExperimentConfig, apply_overrides
    from specmem_cli.render import results_table, stderr
    from specmem_cli.training.run import import_published_run

    config = apply_overrides(ExperimentConfig(), [f"data.name={json.dumps(data)}", *(overrides or [])])
    record = import_published_run(weights, config, n_heads, out)
    stderr.print(results_table([record], f"imported {weights.name}, test split"))
    if as_json:
        _emit_json(record.to_dict())


@app.command()
@user_errors
def forecast(
    checkpoint: Annotated[Path, typer.Argument(help="A run directory or checkpoint.pt from `specmem train`.")],
    input_csv: Annotated[
        Path, typer.Option("--input", help="CSV with the same date and series columns as the training data.")
    ],
    output: Annotated[
        Path,
        typer.Option(
            help="Where to write: .csv, .parquet or .json (original units); - for standard output (with --format)."
        ),
    ],
    start: Annotated[
        str | None,
        typer.Option(help="Forecast from this timestamp of the file (the first forecast step) instead of its end."),
    ] = None,
    rolling: Annotated[
        int | None,
        typer.Option(
            help="Backtest (needs --start): a forecast every STEP rows from --start to the end, actuals beside them."
        ),
    ] = None,
    freq: Annotated[
        str | None, typer.Option(help="Time step for future timestamps when it cannot be inferred (h, 15min, D).")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or json (default: from the extension).")
    ] = None,
    quantiles: Annotated[
        list[float] | None,
        typer.Option(
            "--quantiles",
            help="Also write these quantiles, e.g. --quantiles 0.1 0.5 0.9 (columns OT_q0.1, ...), calibrated on the "
            "run's validation windows (split-conformal, per step and series); a --rolling backtest's levels adapt to "
            "its errors as its actuals arrive, a forecast from the file's end reads them where the test split left them.",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw a fan chart (.png, .svg or .pdf): the input, the forecast, shaded --quantiles intervals "
            "and actuals where the file has them; the last forecast of a --rolling backtest."
        ),
    ] = None,
    series: Annotated[
        list[str] | None,
        typer.Option("--series", help="Series to draw in --plot (default: the first 6)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output (and plot) files.")] = False,
) -> None:
    """Forecast the next pred_len steps of a CSV with a trained model and write them to a file."""
    from specmem_cli.inference.fan_chart import plot_forecast, plot_format
    from specmem_cli.inference.forecast import check_output, output_format, write_forecast
    from specmem_cli.inference.forecast import forecast as run_forecast
    from specmem_cli.render import stderr

    check_output(output, overwrite)  # before the forecast, so a wrong --output costs nothing
    chosen = output_format(output, fmt)
    if input_csv.exists() and output.resolve() == input_csv.resolve():
        raise SpecmemError("--output names the --input file; write the forecast to another file")
    if plot is not None:
        plot_format(plot)
        check_output(plot, overwrite, option="--plot")
        if input_csv.exists() and plot.resolve() == input_csv.resolve():
            raise SpecmemError("--plot names the --input file; give the figure its own path")
        if plot.resolve() == output.resolve():
            raise SpecmemError("--plot and --output name the same file; give the figure its own path")
    if series and plot is None:
        raise SpecmemError("--series chooses what --plot draws; add --plot FILE.png")
    result = run_forecast(checkpoint, input_csv, start=start, rolling=rolling, freq=freq, quantiles=quantiles)
    if plot is not None:  # the figure first: if it cannot be drawn or written, no forecast file is left behind
        plot_forecast(result, plot, series)
    write_forecast(result, output, chosen, overwrite)
    scored = [w for w in result.windows if w.mse is not None]
    stderr.print(f"memory: {result.metadata['memory']}", highlight=False, markup=False)
    summary = (
        f"; mean window MSE {statistics.fmean(w.mse for w in scored):.4f} (scaled) over {len(scored)} windows"
        if scored
        else ""
    )
    stderr.print(
        f"wrote {len(result.windows)} forecast(s) of {result.metadata['pred_len']} steps to {output}{summary}",
        highlight=False,
        markup=False,
    )
    if "intervals" in result.metadata:
        stderr.print(f"quantiles: {result.metadata['intervals']}", highlight=False, markup=False)
    if plot is not None:
        stderr.print(f"fan chart in {plot}", highlight=False, markup=False)


@app.command(name="inspect-modes")
@user_errors
def inspect_modes(
    checkpoint: Annotated[Path, typer.Argument(help="A run directory or checkpoint.pt with a spectral memory.")],
    output: Annotated[
        Path, typer.Option(help="Figure file (an existing one is replaced only with --overwrite).")
    ] = Path("modes.png"),
    top: Annotated[int | None, typer.Option(help="Show the top K modes (default: all components).")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="png, svg or pdf (default: from the extension).")] = None,
    from_data: Annotated[
        Path | None, typer.Option(help="Rebuild an empty memory by running the model over this CSV's training windows.")
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print eigenvalues, explained variance, modes, components and tokens as JSON on stdout "
            "(for an analog memory: key_modes, value_modes and blend).",
        ),
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing figure file.")] = False,
) -> None:
    """Plot the memory's temporal eigenmodes, spectrum, K-L components and tokens; tabulate the spectrum."""
    from rich.markup import escape
    from rich.table import Table

    from specmem_cli.inference.forecast import check_output
    from specmem_cli.inference.modes import PLOT_FORMATS, plot_modes
    from specmem_cli.inference.modes import inspect_modes as run_inspect
    from specmem_cli.render import stderr

    check_output(output, overwrite)  # before the work, and never over a file the user did not offer
    chosen = (fmt or output.suffix.lstrip(".")).lower()
    if chosen not in PLOT_FORMATS:
        raise SpecmemError(f"unknown figure format '{chosen}'; use png, svg or pdf")
    if top is not None and top < 1:
        raise SpecmemError("--top must be at least 1")
    report = run_inspect(checkpoint, top=top, from_data=from_data)
    plot_modes(report, output, chosen)
    table = Table(
        title=escape(f"memory spectrum ({report.strategy}, {report.history_rows} rows, {report.source})"),
        title_justify="left",
    )
    for column in ("rank", "eigenvalue", "explained", "cumulative"):
        table.add_column(column, justify="right")
    for rank, (value, share, total) in enumerate(
        zip(report.eigenvalues, report.explained, report.cumulative, strict=True), 1
    ):
        table.add_row(str(rank), f"{value:.4g}", f"{share:.2%}", f"{total:.2%}")
    stderr.print(table)
    stderr.print(f"figure: {output}", highlight=False, markup=False)
    if as_json:
        _emit_json(report.to_json())


def main() -> None:
    app()
