"""Statistics over runs: per horizon and overall mean ± sample std over seeds, for tables and ``--json``."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence

from specmem_cli.training.run import RunRecord


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(records: Sequence[RunRecord]) -> dict:
    """Per-horizon and overall mean/std of MSE and MAE over seeds, for ``--json`` and the table."""
    by_horizon: dict[int, list[RunRecord]] = defaultdict(list)
    for record in records:
        by_horizon[record.pred_len].append(record)
    horizons = {}
    for pred_len in sorted(by_horizon):
        runs = by_horizon[pred_len]
        mse, mse_std = mean_std([r.mse for r in runs])
        mae, mae_std = mean_std([r.mae for r in runs])
        horizons[pred_len] = {"mse": mse, "mse_std": mse_std, "mae": mae, "mae_std": mae_std, "seeds": len(runs)}
    seeds = sorted({r.seed for r in records})
    per_seed = {
        s: {metric: statistics.fmean(getattr(r, metric) for r in records if r.seed == s) for metric in ("mse", "mae")}
        for s in seeds
    }
    avg_mse, avg_mse_std = mean_std([v["mse"] for v in per_seed.values()])
    avg_mae, avg_mae_std = mean_std([v["mae"] for v in per_seed.values()])
    return {
        "horizons": horizons,
        "average": {
            "mse": avg_mse,
            "mse_std": avg_mse_std,
            "mae": avg_mae,
            "mae_std": avg_mae_std,
            "per_seed": per_seed,
        },
    }


def summary_by_data_set(records: Sequence[RunRecord]) -> dict[str, dict[str, dict]]:
    """``{data set: {model: summarise(its runs)}}``: the one shape of every ``--json`` summary, however
    many models and data sets the runs cover."""
    groups: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record.dataset][record.model].append(record)
    return {dataset: {model: summarise(runs) for model, runs in models.items()} for dataset, models in groups.items()}
