"""The data layer: validated CSV tables, TSL splits and windows, the synthetic set, downloads."""

from __future__ import annotations

from specmem_cli.data.registry import DatasetSpec, resolve_data_path
from specmem_cli.data.splits import PreparedData, prepare
from specmem_cli.data.synthetic import SYNTHETIC_NAME, synthetic_table
from specmem_cli.data.table import SeriesTable, read_table


def load_table(
    name_or_path: str,
    date_col: str | None = None,
    fill: str | None = None,
    datasets: dict[str, DatasetSpec] | None = None,
) -> SeriesTable:
    """The table for a data set name (``synthetic``, a downloaded set) or a CSV path."""
    path = resolve_data_path(name_or_path, datasets)
    if path is None:
        return synthetic_table()
    return read_table(path, date_col=date_col, fill=fill)


__all__ = ["SYNTHETIC_NAME", "PreparedData", "SeriesTable", "load_table", "prepare", "synthetic_table"]
