"""Checkpoints that rebuild a trained forecaster (and its scaler) from the file alone.

Written atomically (temporary file, then rename) and marked complete only after the run's test
evaluation, so an interrupted run never leaves a file that `evaluate` or `forecast` would accept.
Loaded with ``weights_only=True``: a checkpoint can never execute code.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

from specmem_cli import __version__
from specmem_cli.errors import CheckpointError

CHECKPOINT_FORMAT = "specmem-checkpoint"
CHECKPOINT_VERSION = 1
REQUIRED_KEYS = ("model_name", "model_params", "state_dict", "config", "scaler_mean", "scaler_scale", "columns")


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(temp_path)`` then rename over ``path``: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temp_name))
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Save a complete checkpoint: ``payload`` plus format marker and specmem version."""
    document = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "specmem_version": __version__,
        "complete": True,
        **payload,
    }
    try:
        atomic_write(path, lambda temp: torch.save(document, temp))
    except RuntimeError as exc:  # torch reports a failed write (full disk, quota) as a RuntimeError
        free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else 0
        raise CheckpointError(
            f"{path}: could not write the checkpoint ({free / 2**20:.0f} MiB free on that disk: full?); "
            "free space or choose another --out, then rerun: finished runs are kept"
        ) from exc


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint, or raise a one-line :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no checkpoint there; give a run directory or a checkpoint.pt written by `specmem train`"
        )
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises a dozen types for damaged bytes; all mean the same to a user
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"{path}: corrupt or not a specmem checkpoint ({reason}); retrain with `specmem train`"
        ) from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a specmem checkpoint (a bare state dict or another tool's file?); "
            "published TSL weights can be converted with `specmem import-published`"
        )
    if not document.get("complete"):
        raise CheckpointError(
            f"{path}: checkpoint of an unfinished run; rerun the same `specmem train` command to finish it"
        )
    missing = [key for key in REQUIRED_KEYS if key not in document]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}; it is damaged, retrain the run")
    if document.get("format_version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path}: written by a newer specmem ({document.get('specmem_version')}); upgrade specmem"
        )
    return document
