"""A forecast as a fan chart: the input the model read, the point forecast, shaded central intervals and the
actuals where the file has them, one panel per series (the last forecast of a rolling backtest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from specmem_cli.checkpoint import atomic_write
from specmem_cli.errors import DataError
from specmem_cli.inference.forecast import ForecastResult
from specmem_cli.intervals import central_pairs, interval_name

PLOT_FORMATS = ("png", "svg", "pdf")
MAX_PANELS = 6  # beyond this a figure stops being readable: the rest are named in the title, --series picks


def plot_format(path: Path) -> str:
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in PLOT_FORMATS:
        raise DataError(f"--plot {path}: unknown figure format '{fmt or path.name}'; use a .png, .svg or .pdf file")
    return fmt


def chosen_series(columns: list[str], series: list[str] | None) -> list[str]:
    """``series`` (checked against the forecast's columns), or the first :data:`MAX_PANELS` columns."""
    if not series:
        return columns[:MAX_PANELS]
    unknown = [name for name in series if name not in columns]
    if unknown:
        shown = ", ".join(columns[:10]) + (", ..." if len(columns) > 10 else "")
        raise DataError(f"--series {', '.join(unknown)}: not forecast by this model; choose from {shown}")
    return list(dict.fromkeys(series))


def plot_forecast(result: ForecastResult, path: Path, series: list[str] | None = None) -> None:
    """Write the fan chart of ``result``'s last forecast to ``path`` (png, svg or pdf, from the extension)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fmt = plot_format(path)
    names = chosen_series(result.columns, series)
    window = result.windows[-1]
    levels = np.array(sorted(window.quantiles))
    pairs = central_pairs(levels)
    figure, axes = plt.subplots(len(names), 1, figsize=(11, 2.6 * len(names)), dpi=100, squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=True):
        index = result.columns.index(name)
        if result.history is not None:
            axis.plot(result.history.index, result.history[name], color="0.35", linewidth=1, label="input")
        for rank, (low, high) in enumerate(sorted(pairs, key=lambda pair: pair[0])):  # widest first, lightest
            axis.fill_between(
                window.dates,
                window.quantiles[low][:, index],
                window.quantiles[high][:, index],
                color="tab:blue",
                alpha=0.15 + 0.2 * rank / max(len(pairs), 1),
                linewidth=0,
                label=f"{interval_name(low)}% interval",
            )
        axis.plot(window.dates, window.forecast[:, index], color="tab:blue", linewidth=1.5, label="forecast")
        if window.actual is not None:
            axis.plot(window.dates, window.actual[:, index], color="tab:orange", linewidth=1, label="actual")
        axis.set_title(name, fontsize="medium", loc="left")
        axis.legend(fontsize="small", loc="upper left", ncol=4)
    hidden = len(result.columns) - len(names)
    title = f"forecast from {window.dates[0]}" + (f" ({hidden} more series: choose with --series)" if hidden else "")
    figure.suptitle(title, fontsize="medium")
    figure.tight_layout()
    atomic_write(path, lambda temp: figure.savefig(temp, format=fmt))
    plt.close(figure)
