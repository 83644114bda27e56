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
        intervals = summarise_intervals(runs)
        if intervals is not None:
            horizons[pred_len]["intervals"] = intervals
    seeds = sorted({r.seed for r in records})
    per_seed = {
        s: {metric: statistics.fmean(getattr(r, metric) for r in records if r.seed == s) for metric in ("mse", "mae")}
        for s in seeds
    }
    avg_mse, avg_mse_std = mean_std([v["mse"] for v in per_seed.values()])
    avg_mae, avg_mae_std = mean_std([v["mae"] for v in per_seed.values()])
    average = {"mse": avg_mse, "mse_std": avg_mse_std, "mae": avg_mae, "mae_std": avg_mae_std, "per_seed": per_seed}
    intervals = summarise_intervals(records)
    if intervals is not None and all("intervals" in stats for stats in horizons.values()):
        per_seed_pinball = [statistics.fmean(r.intervals["pinball"] for r in records if r.seed == s) for s in seeds]
        intervals["pinball"], intervals["pinball_std"] = mean_std(per_seed_pinball)
        average["intervals"] = intervals  # coverage and width: means over every run, so over horizons too
    return {"horizons": horizons, "average": average}


def summarise_intervals(records: Sequence[RunRecord]) -> dict | None:
    """Mean (and std over seeds) coverage and width of each central interval and the pinball loss, if
    every run was scored at the same levels the same way; None otherwise (a run saved before intervals existed,
    or scored before the levels adapted)."""
    scored = [r.intervals for r in records]
    if not scored or any(s is None for s in scored):
        return None
    # runs scored before levels adapted (no "adapting" key) are not averaged with runs scored since
    if any(
        (s["levels"], s.get("adapting", False)) != (scored[0]["levels"], scored[0].get("adapting", False))
        for s in scored
    ):
        return None
    pinball, pinball_std = mean_std([s["pinball"] for s in scored])
    return {
        "levels": scored[0]["levels"],
        "coverage": {name: statistics.fmean(s["coverage"][name] for s in scored) for name in scored[0]["coverage"]},
        "width": {name: statistics.fmean(s["width"][name] for s in scored) for name in scored[0]["width"]},
        "pinball": pinball,
        "pinball_std": pinball_std,
    }


def summary_by_data_set(records: Sequence[RunRecord]) -> dict[str, dict[str, dict]]:
    """``{data set: {model: summarise(its runs)}}``: the one shape of every ``--json`` summary, however
    many models and data sets the runs cover."""
    groups: dict[str, dict[str, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        groups[record.dataset][record.model].append(record)
    return {dataset: {model: summarise(runs) for model, runs in models.items()} for dataset, models in groups.items()}
