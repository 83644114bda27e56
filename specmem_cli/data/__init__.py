"""The data layer: validated CSV tables, TSL splits and windows, the synthetic set, downloads."""

from __future__ import annotations

from specmem_cli.data.registry import DatasetSpec, resolve_data_path
from specmem_cli.data.splits import PreparedData, prepare
from specmem_cli.data.synthetic import SYNTHETIC_NAME, synthetic_table
from specmem_cli.data.table import Reading, SeriesTable, read_table


def load_table(
    name_or_path: str, reading: Reading | None = None, datasets: dict[str, DatasetSpec] | None = None
) -> SeriesTable:
    """The table for a data set name (``synthetic``, a downloaded set) or a CSV path."""
    path = resolve_data_path(name_or_path, datasets)
    if path is None:
        return synthetic_table()
    return read_table(path, reading)


__all__ = ["SYNTHETIC_NAME", "PreparedData", "Reading", "SeriesTable", "load_table", "prepare", "synthetic_table"]
