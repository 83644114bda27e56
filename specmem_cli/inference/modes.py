"""What the spectral memory holds: eigenvalues, temporal modes, components and tokens, and a figure.

A checkpoint trained with the published ``reset`` policy carries an empty memory; ``from_data``
rebuilds it by running the trained model over the training windows in order, writing one pooled
summary per batch as training did (without dropout and without changing any weight). An analog
memory (``klcycle``) shows the K-L modes of its stored windows and futures, and the model's
per-step blend weight; ``from_data`` rebuilds it from the training windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from specmem_cli.checkpoint import atomic_write, load_run
from specmem_cli.errors import SpecmemError
from specmem_cli.memory import explained_variance
from specmem_cli.memory.analog import AnalogMemory

PLOT_FORMATS = ("png", "svg", "pdf")


@dataclass
class ModeReport:
    strategy: str
    history_rows: int
    eigenvalues: np.ndarray  # [K]
    explained: np.ndarray  # [K] share of total variance
    modes: np.ndarray  # [T, K] temporal eigenvectors, oldest row first
    components: np.ndarray  # [K, d_model]
    tokens: np.ndarray  # [M, d_model]
    source: str
    # what the three array panels show, and their JSON keys (the analog memory's differ from the token memory's)
    labels: tuple[str, str, str] = (
        "Temporal eigenmodes over the history",
        "K-L components (K x d_model)",
        "Memory tokens (M x d_model)",
    )
    keys: tuple[str, str, str] = ("modes", "components", "tokens")

    @property
    def cumulative(self) -> np.ndarray:
        return np.cumsum(self.explained)

    def to_json(self) -> dict:
        return {
            "strategy": self.strategy,
            "history_rows": self.history_rows,
            "source": self.source,
            "eigenvalues": self.eigenvalues.tolist(),
            "explained_variance": self.explained.tolist(),
            "cumulative": self.cumulative.tolist(),
            self.keys[0]: self.modes.T.tolist(),
            self.keys[1]: self.components.tolist(),
            self.keys[2]: self.tokens.tolist(),
            "labels": dict(zip(self.keys, self.labels, strict=True)),
        }


def inspect_modes(checkpoint: Path, top: int | None = None, from_data: Path | None = None) -> ModeReport:
    """The memory's top modes; an error that offers ``--from-data`` when the checkpoint's memory is empty."""
    run = load_run(checkpoint)
    memory = getattr(run.model, "memory", None)
    if memory is None:
        raise SpecmemError(f"{run.path}: model '{run.config.model_name}' has no spectral memory (memory: off)")
    if isinstance(memory, AnalogMemory):
        return _analog_report(run, top, from_data)
    source = "checkpoint"
    if from_data is not None:
        _rebuild(run, from_data)
        source = f"rebuilt from the training windows of {from_data}"
    elif not memory.ready:
        raise SpecmemError(
            f"{run.path}: the memory is empty ({memory.n_rows} rows; memory_at_eval=reset clears it, as published); "
            "rebuild it with --from-data DATA.csv"
        )
    spectrum = memory.spectrum()
    keep = min(top or memory.n_components, memory.n_components)
    return ModeReport(
        memory.strategy,
        memory.n_rows,
        spectrum.eigenvalues[:keep].numpy(),
        explained_variance(spectrum)[:keep].numpy(),
        spectrum.modes[:, :keep].numpy(),
        spectrum.components[:keep].numpy(),
        memory.snapshot().numpy(),
        source,
    )


def _analog_report(run, top: int | None, from_data: Path | None) -> ModeReport:
    memory = run.model.memory
    source = "checkpoint"
    if from_data is not None:
        memory.reset()
        run.model.build_memory(run.data(from_data).train)
        source = f"rebuilt from the training windows of {from_data}"
    elif not memory.ready:
        raise SpecmemError(
            f"{run.path}: the memory is empty (memory_at_eval=reset clears it, and training drops a memory that "
            "did not lower the validation error); rebuild it with --from-data DATA.csv"
        )
    keep = min(top or memory.key_modes, memory.key_modes)
    eigenvalues = memory.key_eigenvalues[:keep].double()
    blend = run.model.blend.detach()[None]
    return ModeReport(
        "analog",
        memory.n_entries,
        eigenvalues.numpy(),
        (eigenvalues / float(memory.key_total_variance)).numpy(),
        memory.key_basis[:, :keep].double().numpy(),
        memory.value_basis[:, :keep].T.double().numpy(),
        blend.double().numpy(),
        source,
        (
            "K-L modes of the stored input windows",
            "K-L modes of the stored futures (K x horizon)",
            "Memory blend weight per forecast step",
        ),
        ("key_modes", "value_modes", "blend"),
    )


def _rebuild(run, csv_path: Path) -> None:
    data = run.data(csv_path)
    memory = run.model.memory
    memory.reset()
    run.model.eval()
    with torch.no_grad():
        for inputs, *_ in data.train.batches(run.config.train.batch_size):
            run.model(inputs, write_memory=True)
    if not memory.ready:
        raise SpecmemError(f"{csv_path}: too few training windows to fill the memory ({memory.n_rows} rows)")


_AXIS_NAMES = {"K": "mode", "M": "memory token", "d_model": "hidden unit", "horizon": "forecast step"}


def _heatmap_axes(title: str) -> tuple[str, str]:
    """``(row, column)`` axis names from a panel title's ``(K x horizon)``; a one-row panel is per forecast step."""
    if "(" in title and " x " in title:
        rows, columns = title[title.rindex("(") + 1 : title.rindex(")")].split(" x ")
        return _AXIS_NAMES.get(rows, rows), _AXIS_NAMES.get(columns, columns)
    return "", "forecast step"


def plot_modes(report: ModeReport, path: Path, fmt: str) -> None:
    """One figure: temporal modes, spectrum with cumulative explained variance, component and token heatmaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    figure, axes = plt.subplots(2, 2, figsize=(12, 8), dpi=100)
    modes_axis, spectrum_axis, components_axis, tokens_axis = axes.ravel()
    steps = np.arange(report.modes.shape[0])
    for rank in range(report.modes.shape[1]):
        modes_axis.plot(steps, report.modes[:, rank], label=f"mode {rank + 1}", linewidth=1)
    modes_axis.set(title=f"{report.labels[0]} ({report.history_rows} rows)", xlabel="row (oldest first)")
    modes_axis.legend(fontsize="small", ncol=2)
    ranks = np.arange(1, len(report.eigenvalues) + 1)
    spectrum_axis.bar(ranks, report.explained, color="tab:blue", label="explained variance")
    spectrum_axis.plot(ranks, report.cumulative, color="tab:orange", marker="o", label="cumulative")
    spectrum_axis.set(title=f"Spectrum ({report.strategy})", xlabel="rank", ylabel="share of variance", ylim=(0, 1.05))
    spectrum_axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    spectrum_axis.legend(fontsize="small")
    for axis, matrix, title in (
        (components_axis, report.components, report.labels[1]),
        (tokens_axis, report.tokens, report.labels[2]),
    ):
        rows_count, columns_count = np.atleast_2d(matrix).shape
        extent = (0.5, columns_count + 0.5, rows_count + 0.5, 0.5)  # counted from 1, as the legend's "mode 1"
        image = axis.imshow(matrix, aspect="auto", cmap="RdBu_r", interpolation="nearest", extent=extent)
        rows, columns = _heatmap_axes(title)
        axis.set(title=title, xlabel=columns, ylabel=rows)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))  # cells are whole indices, not half steps
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))
        figure.colorbar(image, ax=axis)
    figure.tight_layout()
    atomic_write(path, lambda temp: figure.savefig(temp, format=fmt))
    plt.close(figure)
