"""Rich output for the CLI: progress bars and result tables, all on stderr.

stdout is reserved for machine-readable output (``--json``), so piping a command into a file or
``jq`` never picks up a progress bar.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from specmem_cli.training.run import RunRecord
from specmem_cli.training.summary import summarise
from specmem_cli.training.sweep import SweepReporter

stderr = Console(stderr=True)
if not stderr.is_terminal:
    stderr.width = 200  # logs and pipes: never squeeze a results table into 80 columns and truncate numbers


class NoteHandler(logging.Handler):
    """Prints the library's one-line notes (logger ``specmem_cli``: what was detected, chosen or left out)
    on stderr, above any progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        stderr.print(escape(record.getMessage()), style="dim", highlight=False, soft_wrap=True)


def show_notes() -> None:
    logger = logging.getLogger("specmem_cli")
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, NoteHandler) for handler in logger.handlers):
        logger.addHandler(NoteHandler())


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def mean_and_std(mean: float, std: float, n_seeds: int) -> str:
    """``mean ± std``; the mean alone from a single seed, whose spread is unknown, not zero."""
    return f"{mean:.4f} ± {std:.4f}" if n_seeds > 1 else f"{mean:.4f}"


def results_table(records: Sequence[RunRecord], title: str) -> Table:
    """One row per horizon, an (MSE, MAE) column pair per seed, then mean ± std; last row averages horizons.
    Calibrated runs add the coverage and mean width of each central interval and the pinball loss (scaled
    units, means over seeds)."""
    seeds = sorted({r.seed for r in records})
    lookup = {(r.pred_len, r.seed): r for r in records}
    summary = summarise(records)
    table = Table(title=escape(title), title_justify="left")
    table.add_column("horizon", justify="right")
    for seed in seeds:
        table.add_column(f"{seed} MSE", justify="right")
        table.add_column(f"{seed} MAE", justify="right")
    table.add_column("MSE mean ± std", justify="right", style="bold")
    table.add_column("MAE mean ± std", justify="right", style="bold")
    scored = [stats.get("intervals") for stats in summary["horizons"].values()]
    with_intervals = bool(scored) and all(scored)
    if with_intervals:
        names = "/".join(scored[0]["coverage"])
        table.add_column(f"coverage {names}%" if names else "coverage", justify="right")
        table.add_column("width", justify="right")
        table.add_column("pinball", justify="right")
    for pred_len, stats in summary["horizons"].items():
        cells = []
        for seed in seeds:
            run = lookup.get((pred_len, seed))
            cells += [f"{run.mse:.4f}", f"{run.mae:.4f}"] if run else ["-", "-"]
        table.add_row(
            str(pred_len),
            *cells,
            mean_and_std(stats["mse"], stats["mse_std"], stats["seeds"]),
            mean_and_std(stats["mae"], stats["mae_std"], stats["seeds"]),
            *(_interval_cells(stats["intervals"], stats["seeds"]) if with_intervals else []),
        )
    if len(summary["horizons"]) > 1:
        average = summary["average"]
        cells = [f"{average['per_seed'][seed][metric]:.4f}" for seed in seeds for metric in ("mse", "mae")]
        n_seeds = len(average["per_seed"])
        table.add_row(
            "avg",
            *cells,
            mean_and_std(average["mse"], average["mse_std"], n_seeds),
            mean_and_std(average["mae"], average["mae_std"], n_seeds),
            *(_interval_cells(average["intervals"], n_seeds) if with_intervals and "intervals" in average else []),
            style="italic",
        )
    return table


def _interval_cells(intervals: dict, n_seeds: int) -> list[str]:
    """Coverage and width of each central interval (``a/b`` for several), and the pinball loss (mean ± std)."""
    return [
        "/".join(f"{value:.3f}" for value in intervals["coverage"].values()) or "-",
        "/".join(f"{value:.3f}" for value in intervals["width"].values()) or "-",
        mean_and_std(intervals["pinball"], intervals["pinball_std"], n_seeds),
    ]


def comparison_table(records_by_model: dict[str, Sequence[RunRecord]]) -> Table:
    """Model x horizon test MSE (mean ± std over seeds) and the average; the best mean per column in bold."""
    summaries = {name: summarise(records) for name, records in records_by_model.items()}
    horizons = sorted({h for summary in summaries.values() for h in summary["horizons"]})
    columns = [*horizons, "avg"] if len(horizons) > 1 else horizons

    def cell(summary: dict, column) -> dict | None:
        return summary["average"] if column == "avg" else summary["horizons"].get(column)

    best = {}
    for column in columns:
        means = [cell(s, column)["mse"] for s in summaries.values() if cell(s, column) is not None]
        best[column] = min(means) if means else None
    table = Table(title="summary: test MSE, mean ± std over seeds (best in bold)", title_justify="left")
    table.add_column("model")
    for column in columns:
        table.add_column(str(column), justify="right")
    for name, summary in summaries.items():
        cells = []
        for column in columns:
            stats = cell(summary, column)
            if stats is None:
                cells.append("-")
                continue
            n_seeds = len(stats["per_seed"]) if column == "avg" else stats["seeds"]
            text = mean_and_std(stats["mse"], stats["mse_std"], n_seeds)
            cells.append(f"[bold]{text}[/]" if stats["mse"] == best[column] else text)
        table.add_row(name, *cells)
    return table


def suite_table(records_by_run: dict[tuple[str, str], Sequence[RunRecord]]) -> Table:
    """Model x data set: the horizon-averaged test MSE and MAE (mean ± std over seeds); best MSE per data set in bold."""
    summaries = {key: summarise(records)["average"] for key, records in records_by_run.items()}
    datasets = list(dict.fromkeys(dataset for _, dataset in summaries))
    models = list(dict.fromkeys(model for model, _ in summaries))
    best = {d: min(s["mse"] for (_, dd), s in summaries.items() if dd == d) for d in datasets}
    table = Table(
        title="summary: test MSE / MAE averaged over horizons, mean ± std over seeds (best MSE in bold)",
        title_justify="left",
    )
    table.add_column("model")
    for dataset in datasets:
        table.add_column(escape(dataset), justify="right")
    for model in models:
        cells = []
        for dataset in datasets:
            stats = summaries.get((model, dataset))
            if stats is None:
                cells.append("-")
                continue
            text = f"{mean_and_std(stats['mse'], stats['mse_std'], len(stats['per_seed']))} / {stats['mae']:.4f}"
            cells.append(f"[bold]{text}[/]" if stats["mse"] == best[dataset] else text)
        table.add_row(escape(model), *cells)
    return table


class RichSweepReporter(SweepReporter):
    """Run, epoch and step bars with the running loss and ETA."""

    def __init__(self, total_runs: int, quiet: bool = False):
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=False,
            disable=quiet,
        )
        self.quiet = quiet
        self.runs = self.progress.add_task("runs", total=total_runs, info="")
        self.epochs = self.steps = None

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def start_run(self, label: str, index: int, total: int) -> None:
        self.progress.update(self.runs, description=f"run {label}")

    def start_epoch(self, epoch: int, n_epochs: int, n_batches: int) -> None:
        if self.epochs is None:
            self.epochs = self.progress.add_task("epochs", total=n_epochs, info="")
            self.steps = self.progress.add_task("steps", total=n_batches, info="")
        self.progress.reset(self.steps, total=n_batches, info="")
        self.progress.update(self.epochs, total=n_epochs, completed=epoch, description=f"epoch {epoch + 1}")

    def step(self, loss: float) -> None:
        self.progress.update(self.steps, advance=1, info=f"loss {loss:.4f}")

    def end_epoch(self, epoch: int, train_loss: float, val_mse: float, lr: float, improved: bool) -> None:
        mark = " *" if improved else ""
        self.progress.update(self.epochs, completed=epoch + 1, info=f"val {val_mse:.4f}{mark}")
        if not self.quiet:
            self.progress.console.print(
                f"  epoch {epoch + 1}: train {train_loss:.4f}  val {val_mse:.4f}{mark}  lr {lr:.2e}", highlight=False
            )

    def end_run(self, record: RunRecord) -> None:
        if self.epochs is not None:
            self.progress.remove_task(self.epochs)
            self.progress.remove_task(self.steps)
            self.epochs = self.steps = None
        how = "reused" if record.reused else f"{record.seconds:.1f}s"
        if not self.quiet:
            self.progress.console.print(
                f"[green]done[/] {record.model} pl={record.pred_len} seed={record.seed}: "
                f"MSE {record.mse:.4f} MAE {record.mae:.4f} ({how})",
                highlight=False,
            )
        self.progress.advance(self.runs)


class ByteProgress:
    """The tqdm-like object pooch's downloader drives (``total``, ``update``, ``reset``, ``close``)."""

    def __init__(self, label: str):
        self.progress = Progress(
            TextColumn(label),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeRemainingColumn(),
            console=stderr,
        )
        self.task = self.progress.add_task(label, total=None)
        self.progress.start()

    @property
    def total(self):
        return self.progress.tasks[0].total

    @total.setter
    def total(self, value):
        self.progress.update(self.task, total=value)

    def update(self, amount: int) -> None:
        self.progress.advance(self.task, amount)

    def reset(self) -> None:
        self.progress.reset(self.task)

    def close(self) -> None:
        self.progress.stop()


def sanity_table(results: dict[str, dict[str, float] | None], title: str) -> Table:
    """Each destructive check's MSE/MAE next to normal evaluation."""
    table = Table(title=escape(title), title_justify="left")
    for column in ("check", "MSE", "MAE", "MSE vs normal"):
        table.add_column(column, justify="left" if column == "check" else "right")
    normal = results["normal"]["mse"]
    for name, metrics in results.items():
        if metrics is None:
            table.add_row(name, "n/a", "n/a", "nothing to test: no memory, or one reading cannot change")
        else:
            table.add_row(name, f"{metrics['mse']:.4f}", f"{metrics['mae']:.4f}", f"{metrics['mse'] / normal:.3f}x")
    return table
