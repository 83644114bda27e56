"""A finished run's checkpoint: one typed, versioned record, one writer and one reader that validates it.

Written atomically (temporary file, then rename) and marked complete only after the run's test
evaluation, so an interrupted run never leaves a file that `evaluate` or `forecast` would accept.
Loaded with ``weights_only=True``: a checkpoint can never execute code. Adding a field to
:class:`RunCheckpoint` means raising :data:`CHECKPOINT_VERSION`: files of another version are refused
with a one-line reason. Older formats are read with their missing fields filled in one place
(:data:`_OLDER_FORMAT_FILLS`): format 1 with the values the 0.1 readers used, format 2 without intervals
(``specmem calibrate`` adds them).
"""

from __future__ import annotations

import dataclasses
import errno
import os
import shutil
import sys
import tempfile
import types
import typing
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from specmem_cli import __version__
from specmem_cli.config import ExperimentConfig, RunSpec, config_from_dict, load_data, read_data, updated
from specmem_cli.data import PreparedData
from specmem_cli.data.scaler import StandardScaler
from specmem_cli.data.splits import infer_split_scheme
from specmem_cli.errors import CheckpointError, SpecmemError
from specmem_cli.files import NEW_FILE_MODE
from specmem_cli.intervals import IntervalCalibration, IntervalError
from specmem_cli.memory import prepare_for_evaluation
from specmem_cli.models import build_model

CHECKPOINT_FORMAT = "specmem-checkpoint"
CHECKPOINT_VERSION = 3
# What an older file lacks, and the value it is read with. Format 1 (specmem 0.1) grew fields without a
# version bump: a file written before a field existed is read with the value the 0.1 readers used in its
# place. Format 2 predates interval calibration. Fields not listed here cannot be filled in.
_FORMAT_1_FILLS: dict[str, Any] = {
    "data_path": None,
    "data_sha256": None,  # no content check: the file is trusted as it is
    "reading": {},  # the default reading: dates found by content, every numeric column
    "layout": None,  # wide format
    "date_column": None,
    "memory_at_eval": "reset",
    "intervals": None,
}
_OLDER_FORMAT_FILLS: dict[int, dict[str, Any]] = {1: _FORMAT_1_FILLS, 2: {"intervals": None}}


@dataclass(frozen=True)
class RunCheckpoint:
    """Everything needed to rebuild a trained forecaster and read new data as its training data was read."""

    model_name: str
    model_params: dict[str, Any]  # seq_len, pred_len, n_channels and the resolved hyper-parameters
    state_dict: dict[str, torch.Tensor]  # on the CPU, whatever device trained it
    config: dict[str, Any]  # the run's ExperimentConfig (one horizon, one seed)
    data_path: str | None  # the training file, resolved
    data_sha256: str | None  # its contents: a changed file is refused
    scaler_mean: torch.Tensor
    scaler_scale: torch.Tensor
    columns: list[str]  # the model's input series, in order
    table_columns: list[str]  # every series the file held (a forecast input must hold the same)
    output_columns: list[str]
    date_column: str | None
    reading: dict[str, Any]  # how the file was read (data.table.Reading)
    layout: dict[str, Any] | None  # long-format id/value columns, if the file was long
    time_axis: dict[str, Any]  # the training clock
    memory_at_eval: str  # the policy every score of this run is taken under
    intervals: dict[str, Any] | None  # IntervalCalibration.to_state(), None for a run saved before it existed


def _kinds(hint: Any) -> tuple[type, ...]:
    """The runtime types a field's annotation allows (``str | None`` -> ``(str, NoneType)``, ``list[str]`` -> ``(list,)``)."""
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return tuple(typing.get_origin(option) or option for option in options)


# what the reader checks, read off RunCheckpoint's annotations so the two cannot drift apart
_KINDS = {name: _kinds(hint) for name, hint in typing.get_type_hints(RunCheckpoint).items()}


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(temp_path)`` then rename over ``path``: readers see the old file or the new one.

    A symbolic link is written through (its target is replaced, the link stays); a device or pipe
    (``/dev/stdout``) cannot be renamed over, so the finished file is copied into it. The file gets the
    permissions of the one it replaces, or the umask's for a new one (a temporary file is private).
    """
    if is_stdout(path) or (path.exists() and not path.is_file() and not path.is_dir()):  # a link's target, too
        _write_through(path, write)
        return
    path = link_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:  # name the user's path, not the temporary file beside it
        if exc.errno == errno.ENOENT:  # the directory is there, yet takes no new file (/proc, a virtual file system)
            raise SpecmemError(f"{path}: no file can be created in {path.parent}; choose another location") from None
        exc.filename = str(path)
        raise
    os.close(handle)
    try:
        mode = path.stat().st_mode & 0o7777 if path.is_file() else NEW_FILE_MODE
        write(Path(temp_name))
        os.chmod(temp_name, mode)
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def link_target(path: Path, option: str = "") -> Path:
    """What a symbolic link points to (``path`` itself if it is none); a loop of links is a one-line error
    naming ``option`` (the flag that gave the path), not Python's RuntimeError or OSError (either, by version)."""
    if not path.is_symlink():
        return path
    try:
        return path.resolve(strict=False)
    except (RuntimeError, OSError):
        where = f"{option} " if option else ""
        raise SpecmemError(f"{path}: a symbolic link that points back to itself; give {where}another path") from None


def is_stdout(path: Path) -> bool:
    """``-`` or ``/dev/stdout``: standard output, whatever it is redirected to (a file opened by the shell
    must be written through the open stream: reopening it would truncate what ``>>`` appends to)."""
    return str(path) in ("-", "/dev/stdout")


def _write_through(path: Path, write: Any) -> None:
    """Write to a temporary file elsewhere, then stream it into ``path`` (standard output, a device or a pipe)."""
    with tempfile.TemporaryDirectory() as folder:
        temp = Path(folder) / (path.name or "output")
        write(temp)
        with open(temp, "rb") as source:
            if is_stdout(path):
                sys.stdout.flush()
                shutil.copyfileobj(source, sys.stdout.buffer)
                sys.stdout.buffer.flush()
                return
            with open(path, "wb") as sink:
                shutil.copyfileobj(source, sink)


def save_checkpoint(path: Path, checkpoint: RunCheckpoint) -> None:
    """Write ``checkpoint`` with its format marker, version and the specmem version that wrote it."""
    document = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "specmem_version": __version__,
        "complete": True,
        **{field.name: getattr(checkpoint, field.name) for field in dataclasses.fields(RunCheckpoint)},
    }
    save_tensors(path, document, "the checkpoint")


def save_tensors(path: Path, document: Any, what: str) -> None:
    """``torch.save`` atomically; a failed write (a full disk, a quota) is a one-line error naming the free space."""
    try:
        atomic_write(path, lambda temp: torch.save(document, temp))
    except RuntimeError as exc:  # torch reports a failed write (full disk, quota) as a RuntimeError
        free = shutil.disk_usage(path.parent).free if path.parent.is_dir() else 0
        raise CheckpointError(
            f"{path}: could not write {what} ({free / 2**20:.0f} MiB free on that disk: full?); "
            "free space or choose another --out, then rerun: finished runs are kept"
        ) from exc


def load_checkpoint(path: str | Path) -> RunCheckpoint:
    """The one reader: load, check marker, version, completeness and every field's kind, or raise a
    one-line :class:`CheckpointError`."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise CheckpointError(
            f"{path}: no checkpoint there; give a run directory or a checkpoint.pt written by `specmem train`"
        )
    try:
        with warnings.catch_warnings():  # torch warns about pickled objects before refusing them: the error says it
            warnings.simplefilter("ignore")
            document = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises a dozen types (and texts) for damaged bytes; all mean the same to a user
        raise CheckpointError(
            f"{path}: corrupt or not a specmem checkpoint (damaged, cut short, or another kind of file); "
            "retrain with `specmem train`"
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
    version = document.get("format_version")
    if version in _OLDER_FORMAT_FILLS:
        fills = dict(_OLDER_FORMAT_FILLS[version])
        if version == 1:
            fills["table_columns"] = document.get("columns")
        document = {**{k: v for k, v in fills.items() if k not in document}, **document}
        version = CHECKPOINT_VERSION
    if version != CHECKPOINT_VERSION:
        newer = isinstance(version, int) and version > CHECKPOINT_VERSION
        raise CheckpointError(
            f"{path}: checkpoint format {version} (specmem {document.get('specmem_version')}), this specmem reads "
            f"format {CHECKPOINT_VERSION}; " + ("upgrade specmem" if newer else "retrain the run with `specmem train`")
        )
    missing = [name for name in _KINDS if name not in document]
    if missing:
        raise CheckpointError(
            f"{path}: checkpoint lacks {', '.join(missing)} (written by specmem {document.get('specmem_version')} "
            "before those existed, or damaged); retrain the run with `specmem train`"
        )
    wrong = [name for name, kinds in _KINDS.items() if not isinstance(document[name], kinds)]
    if wrong:
        raise CheckpointError(
            f"{path}: checkpoint field(s) {', '.join(wrong)} hold the wrong kind of value; retrain the run"
        )
    return RunCheckpoint(**{name: document[name] for name in _KINDS})


@dataclass
class LoadedRun:
    """A checkpoint turned back into a model, its config and its data."""

    model: nn.Module
    spec: RunSpec
    checkpoint: RunCheckpoint
    scaler: StandardScaler
    path: Path

    @property
    def config(self) -> ExperimentConfig:
        return self.spec.config

    def calibration(self) -> IntervalCalibration:
        """The run's interval calibration, or a one-line error saying how to add it."""
        if self.checkpoint.intervals is None:
            raise IntervalError(
                f"{self.path} was saved before specmem calibrated intervals; add them with "
                f"`specmem calibrate {self.path.parent}` (reads the training file's validation split)"
            )
        return IntervalCalibration.from_state(self.checkpoint.intervals)

    def data(self, source: str | Path | None = None) -> PreparedData:
        """Re-prepare the training data set (or ``source``, a copy of it); an error if it no longer matches
        the checkpoint's scaler and columns, since the model only understands inputs scaled as in training."""
        name = str(source) if source is not None else self.checkpoint.data_path or self.config.data.name
        if source is None and self.checkpoint.data_path and not Path(self.checkpoint.data_path).exists():
            raise SpecmemError(
                f"{self.checkpoint.data_path}: the file {self.path} was trained on is no longer there; put it back, "
                "or give its new place (--data FILE)"
            )
        trained_name = self.checkpoint.data_path or self.config.data.name
        # the split as trained: a copy under another name (ETTh1_2016.csv) must not switch ETT's month borders
        # for the 70/10/20 ratio
        split = infer_split_scheme(trained_name) if self.config.data.split == "auto" else self.config.data.split
        config = updated(self.config, data={"name": name, "split": split})
        table = read_data(config)  # checked before its windows: another file fails on its series, not its length
        fix = "give the file it was trained on" if source is not None else "put back the file it was trained on"
        trained_columns = self.checkpoint.table_columns or self.checkpoint.columns
        if table.columns != list(trained_columns) and not set(self.checkpoint.columns) <= set(table.columns):
            raise SpecmemError(
                f"{name}: its series ({', '.join(table.columns)}) are not those {self.path} was trained on "
                f"({', '.join(trained_columns)}); {fix}"
            )
        trained_on = self.checkpoint.data_sha256
        if trained_on and table.sha256 and trained_on != table.sha256:
            raise SpecmemError(
                f"{name}: the file changed since {self.path} was trained (its content hash differs); "
                f"{fix}, or retrain on this one"
            )
        data = load_data(config, self.spec.pred_len, table)
        if data.columns != self.checkpoint.columns:
            raise SpecmemError(
                f"{name}: its series ({', '.join(data.columns)}) are not those {self.path} was trained on "
                f"({', '.join(self.checkpoint.columns)}); {fix}"
            )
        same = np.allclose(data.scaler.mean_, self.scaler.mean_, rtol=1e-9, atol=1e-12) and np.allclose(
            data.scaler.scale_, self.scaler.scale_, rtol=1e-9, atol=1e-12
        )
        if not same:
            raise SpecmemError(f"{name}: the data changed since {self.path} was trained (its scaling differs)")
        return data


def load_run(path: str | Path) -> LoadedRun:
    """Rebuild a trained model from a run directory or checkpoint file, its memory prepared under the
    run's policy (every use of a run scores it as training scored it)."""
    checkpoint = load_checkpoint(path)
    params = dict(checkpoint.model_params)
    shape = [params.pop(key) for key in ("seq_len", "pred_len", "n_channels")]
    model = build_model(checkpoint.model_name, *shape, params)
    try:
        model.load_state_dict(checkpoint.state_dict)
    except RuntimeError:
        raise CheckpointError(
            f"{path}: weights do not fit model '{checkpoint.model_name}'; the file is damaged"
        ) from None
    model.eval()
    prepare_for_evaluation(model, checkpoint.memory_at_eval)
    scaler = StandardScaler.from_state(checkpoint.scaler_mean.numpy(), checkpoint.scaler_scale.numpy())
    checkpoint_path = Path(path) / "checkpoint.pt" if Path(path).is_dir() else Path(path)
    config = config_from_dict(checkpoint.config, source=str(checkpoint_path), stored=True)
    return LoadedRun(model, RunSpec.stored(config, str(checkpoint_path)), checkpoint, scaler, checkpoint_path)


def find_runs(path: Path) -> list[Path]:
    """Run directories under ``path`` (itself, if it is one), or the checkpoint file given."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise CheckpointError(f"{path}: no such file or directory; give a run directory, a sweep's or a checkpoint")
    if (path / "checkpoint.pt").exists() or (path / "metrics.json").exists():
        return [path]
    runs = sorted(p.parent for p in path.glob("*/checkpoint.pt"))
    if not runs:
        raise CheckpointError(f"{path}: no runs found (no */checkpoint.pt); give a run directory or a checkpoint")
    return runs
