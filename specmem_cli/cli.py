"""The `specmem` command line: parse arguments, call the library, render the results.

Human output (progress, tables, messages) goes to stderr; ``--json`` puts one machine-readable
document on stdout. A :class:`SpecmemError` becomes one line on stderr and exit code 1.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from specmem_cli import __version__
from specmem_cli.errors import SpecmemError

MULTI_VALUE_OPTIONS = ("--pred-len", "--seeds", "--set")


class MultiValueGroup(TyperGroup):
    """Lets ``--seeds 2019 2020 2021`` mean ``--seeds 2019 --seeds 2020 --seeds 2021`` (click has no nargs=*)."""

    def parse_args(self, ctx, args):
        expanded, current = [], None
        for token in args:
            if token.startswith("-"):
                current = token if token in MULTI_VALUE_OPTIONS else None
                expanded.append(token)
            elif current is not None and expanded[-1] != current:
                expanded += [current, token]
            else:
                expanded.append(token)
        return super().parse_args(ctx, expanded)


app = typer.Typer(
    cls=MultiValueGroup,
    help="Spectral Memory forecasting: download data, train and evaluate under the TSL protocol, forecast, inspect the memory.",
    rich_markup_mode="rich",
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
        from specmem_cli.render import error

        try:
            return command(*args, **kwargs)
        except SpecmemError as exc:
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            error("interrupted; finished runs are kept, rerun the same command to resume")
            raise typer.Exit(130) from None

    return wrapper


def _emit_json(document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@app.command()
@user_errors
def download(
    name: Annotated[str, typer.Argument(help="Data set name: ETTh1, ETTh2, ETTm1, ETTm2, or one from --config.")],
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
    from specmem_cli.data.registry import data_dir, lookup, registry
    from specmem_cli.data.registry import download as fetch
    from specmem_cli.render import ByteProgress, stderr
    from specmem_cli.training.config import read_yaml

    extra = read_yaml(config).get("datasets", {}) if config else {}
    spec = lookup(name, registry(extra))
    target_dir = directory or data_dir()
    progress = ByteProgress(f"{spec.name}") if not as_json else False
    try:
        path, transferred = fetch(spec, target_dir, mirror=mirror, force=force, progressbar=progress)
    finally:
        if progress:
            progress.close()
    stderr.print(f"{'downloaded' if transferred else 'already verified'}: {spec.name} -> {path}", highlight=False)
    if as_json:
        _emit_json({"name": spec.name, "path": str(path), "downloaded": transferred})


@app.command()
@user_errors
def train(
    config: Annotated[
        str | None, typer.Option(help="YAML config file or preset name (demo, etth1_paper). Default: demo.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="Data set name (synthetic, ETTh1, ...) or a CSV path.")] = None,
    pred_len: Annotated[
        list[int] | None, typer.Option("--pred-len", help="Horizons, e.g. --pred-len 96 192 336 720.")
    ] = None,
    seeds: Annotated[list[int] | None, typer.Option("--seeds", help="Seeds, e.g. --seeds 2019 2020 2021.")] = None,
    model: Annotated[str | None, typer.Option(help="Model name (klmemory).")] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="Config overrides key=value, e.g. --set train.epochs=3 model.d_model=64."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Output directory for run directories (default: runs/<config name>).")
    ] = None,
    date_col: Annotated[str | None, typer.Option(help="Date column of a CSV (default: auto-detected).")] = None,
    fill: Annotated[str | None, typer.Option(help="Repair NaN/inf in a CSV: ffill or interpolate.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print run records and the summary as JSON on stdout.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train and test every (horizon, seed) run of a config; reruns skip finished runs.

    With no arguments, runs the built-in demo (synthetic data, small model) end to end.
    """
    from specmem_cli.render import RichSweepReporter, results_table, stderr, summarise
    from specmem_cli.training.config import apply_overrides, load_config
    from specmem_cli.training.runs import SweepReporter, run_sweep

    experiment = load_config(config)
    settings = list(overrides or [])
    for key, value in (("data.name", data), ("model.name", model), ("data.date_col", date_col), ("data.fill", fill)):
        if value is not None:
            settings.append(f"{key}={json.dumps(value)}")
    if pred_len:
        settings.append(f"data.pred_lens={json.dumps(pred_len)}")
    if seeds:
        settings.append(f"seeds={json.dumps(seeds)}")
    experiment = apply_overrides(experiment, settings)
    out_dir = out or Path("runs") / Path(config or "demo").stem
    total = len(experiment.data.pred_lens) * len(experiment.seeds)
    if quiet:
        records = run_sweep(experiment, out_dir, SweepReporter())
    else:
        with RichSweepReporter(total) as reporter:
            records = run_sweep(experiment, out_dir, reporter)
    title = f"{experiment.model_name} on {records[0].dataset} (seq_len {experiment.data.seq_len}), test split"
    stderr.print(results_table(records, title))
    stderr.print(f"runs in {out_dir}", highlight=False)
    if as_json:
        _emit_json({"runs": [r.to_dict() for r in records], "summary": summarise(records)})


@app.command()
@user_errors
def evaluate(
    path: Annotated[
        Path, typer.Argument(help="A run directory, a checkpoint file, or a sweep directory holding runs.")
    ],
    split: Annotated[str, typer.Option(help="Split to score: test or val.")] = "test",
    sanity: Annotated[
        bool,
        typer.Option(
            "--sanity", help="Also run destructive checks (shuffled/noise inputs, memory zeroed/frozen/reset)."
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print records as JSON on stdout.")] = False,
) -> None:
    """Recompute metrics from checkpoints alone; prints the same table as `train`."""
    from specmem_cli.render import results_table, sanity_table, stderr, summarise
    from specmem_cli.training.runs import evaluate_run, find_runs
    from specmem_cli.training.sanity import sanity_checks

    if split not in ("test", "val"):
        raise SpecmemError(f"unknown split '{split}'; use test or val")
    runs = find_runs(path)
    records = [evaluate_run(run, split) for run in runs]
    stderr.print(results_table(records, f"{records[0].model} on {records[0].dataset}, {split} split"))
    checks = {}
    if sanity:
        for run in runs:
            checks[str(run)] = sanity_checks(run, split)
            stderr.print(sanity_table(checks[str(run)], title=f"sanity checks: {run}"))
    if as_json:
        _emit_json(
            {
                "runs": [r.to_dict() for r in records],
                "summary": summarise(records),
                **({"sanity": checks} if sanity else {}),
            }
        )


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
    from specmem_cli.render import results_table, stderr
    from specmem_cli.training.config import ExperimentConfig, apply_overrides
    from specmem_cli.training.runs import import_published_run

    config = apply_overrides(ExperimentConfig(), [f"data.name={json.dumps(data)}", *(overrides or [])])
    record = import_published_run(weights, config, n_heads, out)
    stderr.print(results_table([record], f"imported {weights.name}, test split"))
    if as_json:
        _emit_json(record.to_dict())


def _not_built(command: str, issue: str) -> None:
    raise SpecmemError(f"`specmem {command}` is not available in this version yet ({issue}); see the README roadmap")


@app.command(name="forecast")
@user_errors
def forecast() -> None:
    """Forecast a CSV's future from a trained checkpoint into a file (not available yet)."""
    _not_built("forecast", "forecast to CSV/Parquet/JSON")


@app.command(name="inspect-modes")
@user_errors
def inspect_modes() -> None:
    """Plot the memory's eigenmodes and spectrum from a checkpoint (not available yet)."""
    _not_built("inspect-modes", "eigenmode plots")


def main() -> None:
    app()
