"""Experiment configuration: dataclasses loaded from YAML, with ``key=value`` overrides.

One object holds everything a sweep needs. Unknown keys are errors (with the closest valid key),
because a typo that silently falls back to a default produces a wrong result that looks right.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from collections.abc import Hashable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from specmem_cli.data import PreparedData, SeriesTable, load_table, prepare
from specmem_cli.data.registry import protocol_for, registry
from specmem_cli.data.table import Reading
from specmem_cli.errors import CheckpointError, ConfigError
from specmem_cli.memory.contract import EVALUATION_POLICIES
from specmem_cli.models import check_parameters

LR_SCHEDULES = ("type1", "type3", "constant")
LOSSES = ("mse", "huber")
DEVICE_TYPES = ("cpu", "cuda", "mps")


class _Loader(yaml.SafeLoader):
    """YAML 1.2 scalars: only true/false are booleans (``memory: off`` stays 'off') and ``1e-4`` is a float;
    and a key given twice in one section is an error (PyYAML would keep the last one without a word)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # a list as a key: PyYAML refuses it itself
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key '{key}' appears twice in one section", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)


@dataclass
class DataConfig:
    """What to forecast: ``name`` is a dataset name (``synthetic``, ``ETTh1``, ...) or a CSV path.

    ``seq_len`` and ``pred_lens`` left empty take the data set's protocol
    (:func:`with_protocol`): look-back 36 and horizons 24-60 on ``national_illness``, 96 and 96-720 elsewhere.
    """

    name: str = "synthetic"
    date_col: str | None = None
    id_col: str | None = None
    value_cols: list[str] | None = None
    columns: list[str] | None = None
    features: str = "M"
    target: str | None = None
    split: str = "auto"
    fill: str | None = None
    seq_len: int | None = None
    pred_lens: list[int] | None = None

    def reading(self) -> Reading:
        """How the data file is read (clock, long-format id, value columns, series kept, fill)."""
        return Reading(self.date_col, self.id_col, self.value_cols, self.columns, self.fill)


@dataclass
class TrainConfig:
    """The TSL training protocol; ``max_steps`` caps optimiser steps per run (smoke and timing runs)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-4
    lr_schedule: str = "type1"
    loss: str = "mse"
    patience: int = 3
    max_steps: int | None = None
    # at most this many (window, series) pairs per epoch: a split with more (a wide file: electricity's
    # 321 series give 5.9M) draws a fresh random subset of its windows each epoch, so an epoch's cost
    # stops growing with the width; null: every window, every epoch
    epoch_samples: int | None = None
    # at least this many optimiser steps an epoch: on a small training split the batch shrinks (to no fewer
    # than 8 windows), so that 30 epochs of a few hundred windows are not 90 steps; null: the batch as given
    min_steps_per_epoch: int | None = None
    memory_at_eval: str = "reset"
    threads: int | None = None
    # where the runs train: ``cpu`` (deterministic, and the fastest for the small models) or an
    # accelerator (``cuda``, ``cuda:1``, ``mps``) for the large ones; checkpoints are saved for the CPU
    device: str = "cpu"
    # glibc keeps freed memory for reuse: ~2x faster steps on the paper model; the process keeps its peak heap.
    reuse_freed_memory: bool = True


@dataclass
class ExperimentConfig:
    """A sweep: one model on one data set, every horizon in ``data.pred_lens`` times every seed."""

    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=lambda: {"name": "klmemory"})
    train: TrainConfig = field(default_factory=TrainConfig)
    seeds: list[int] = field(default_factory=lambda: [2021])
    datasets: dict[str, Any] = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return str(self.model.get("name", "klmemory"))

    @property
    def model_params(self) -> dict[str, Any]:
        return {k: v for k, v in self.model.items() if k != "name"}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class RunSpec:
    """One run: a config, one horizon and one seed. Its ``config`` is the single-run config (``pred_lens:
    [pred_len]``, ``seeds: [seed]``) that the run's directory and checkpoint store; everything downstream
    of a sweep (training, the checkpoint, evaluation, forecasting) takes the horizon and seed from here."""

    config: ExperimentConfig
    pred_len: int
    seed: int

    @classmethod
    def of(cls, sweep: ExperimentConfig, pred_len: int, seed: int) -> RunSpec:
        """The run of ``sweep`` at horizon ``pred_len`` with ``seed``."""
        single = updated(
            sweep, data={"pred_lens": [pred_len]}, seeds=[seed], source=f"run (horizon {pred_len}, seed {seed})"
        )
        return cls(single, pred_len, seed)

    @classmethod
    def stored(cls, config: ExperimentConfig, source: str) -> RunSpec:
        """A run's stored single-run config, read back (one horizon and one seed, or a one-line error)."""
        if len(config.data.pred_lens) != 1 or len(config.seeds) != 1:
            raise CheckpointError(
                f"{source}: its config holds horizons {config.data.pred_lens} and seeds {config.seeds}, where a run "
                "holds one of each; the file is damaged: retrain the run with `specmem train`"
            )
        return cls(config, config.data.pred_lens[0], config.seeds[0])

    @property
    def name(self) -> str:
        """The run's directory name, e.g. ``klcycle_ETTh1_sl96_pl96_seed2021``."""
        label = dataset_label(self.config.data.name)
        return f"{self.config.model_name}_{label}_sl{self.config.data.seq_len}_pl{self.pred_len}_seed{self.seed}"


def dataset_label(name: str) -> str:
    """A data set's name in tables and run names: a registry name as it is, a file by its name without its
    folders (a run's directory stays inside ``--out``), and without ``.csv``."""
    base = Path(name).name or name
    return base[: -len(".csv")] if base.lower().endswith(".csv") else base


_SECTIONS = {"data": DataConfig, "train": TrainConfig}


# Keys that earlier versions had, and why they went: a stored run's config drops them, a user's config
# is told to.
REMOVED_KEYS = {
    ("data", "label_len"): "targets hold the horizon only; a model that needs a decoder start takes it as its "
    "own parameter (model.label_len for autoformer)",
}


def config_from_dict(raw: dict[str, Any], source: str = "config", stored: bool = False) -> ExperimentConfig:
    """Build and validate a config; every key must be known (``model`` keys are checked by the model).

    ``stored``: the config of a run written by an earlier specmem, whose removed keys are dropped.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of sections (data, model, train, seeds)")
    for (section, key), reason in REMOVED_KEYS.items():
        if isinstance(raw.get(section), dict) and key in raw[section]:
            if not stored:
                raise ConfigError(f"{source}: '{section}.{key}' was removed ({reason}); delete it")
            raw = {**raw, section: {k: v for k, v in raw[section].items() if k != key}}
    top_level = {f.name for f in dataclasses.fields(ExperimentConfig)}
    _reject_unknown(raw, top_level, source, prefix="")
    kwargs: dict[str, Any] = {}
    for name, section_type in _SECTIONS.items():
        section = raw.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: '{name}' must be a mapping")
        allowed = {f.name for f in dataclasses.fields(section_type)}
        _reject_unknown(section, allowed, source, prefix=f"{name}.")
        kwargs[name] = section_type(**section)
    model = raw.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"{source}: 'model' must be a mapping with a 'name'")
    kwargs["model"] = {"name": "klmemory", **model}
    kwargs["seeds"] = raw.get("seeds", [2021])
    kwargs["datasets"] = raw.get("datasets") or {}
    config = ExperimentConfig(**kwargs)
    _check_values(config, source)
    check_parameters(config.model_name, config.model_params)
    return config


def _reject_unknown(section: dict[str, Any], allowed: set[str], source: str, prefix: str) -> None:
    for key in section:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; known: {', '.join(sorted(allowed))}"
            raise ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}")


def _check_values(config: ExperimentConfig, source: str) -> None:
    def need(condition: bool, message: str) -> None:
        if not condition:
            raise ConfigError(f"{source}: {message}")

    data, train = config.data, config.train
    need(
        data.pred_lens is None
        or (isinstance(data.pred_lens, list) and data.pred_lens and all(_is_int(p) and p > 0 for p in data.pred_lens)),
        "data.pred_lens must be a non-empty list of positive integers",
    )
    need(
        data.seq_len is None or (_is_int(data.seq_len) and data.seq_len > 0), "data.seq_len must be a positive integer"
    )
    for key in ("value_cols", "columns"):
        names = getattr(data, key)
        need(
            names is None or (isinstance(names, list) and names and all(isinstance(n, str) for n in names)),
            f"data.{key} must be a non-empty list of column names",
        )
    need(
        isinstance(config.seeds, list) and config.seeds and all(_is_int(s) for s in config.seeds),
        "seeds must be a non-empty list of integers",
    )
    for key, values in (("data.pred_lens", data.pred_lens), ("data.columns", data.columns), ("seeds", config.seeds)):
        repeated = next((value for index, value in enumerate(values or []) if value in values[:index]), None)
        need(repeated is None, f"{key} names {repeated} twice; give each once")
    need(_is_int(train.epochs) and train.epochs > 0, "train.epochs must be a positive integer")
    need(_is_int(train.batch_size) and train.batch_size > 0, "train.batch_size must be a positive integer")
    need(isinstance(train.lr, (int, float)) and train.lr > 0, "train.lr must be a positive number")
    need(train.lr_schedule in LR_SCHEDULES, f"train.lr_schedule must be one of {', '.join(LR_SCHEDULES)}")
    need(train.loss in LOSSES, f"train.loss must be one of {', '.join(LOSSES)}")
    need(_is_int(train.patience) and train.patience > 0, "train.patience must be a positive integer")
    need(
        train.max_steps is None or (_is_int(train.max_steps) and train.max_steps > 0),
        "train.max_steps must be a positive integer or null",
    )
    need(
        train.epoch_samples is None or (_is_int(train.epoch_samples) and train.epoch_samples > 0),
        "train.epoch_samples must be a positive integer or null",
    )
    need(
        train.min_steps_per_epoch is None or (_is_int(train.min_steps_per_epoch) and train.min_steps_per_epoch > 0),
        "train.min_steps_per_epoch must be a positive integer or null",
    )
    need(
        train.memory_at_eval in EVALUATION_POLICIES,
        f"train.memory_at_eval must be one of {', '.join(EVALUATION_POLICIES)}",
    )
    need(
        train.threads is None or (_is_int(train.threads) and train.threads > 0),
        "train.threads must be a positive integer",
    )
    need(isinstance(train.reuse_freed_memory, bool), "train.reuse_freed_memory must be true or false")
    need(
        isinstance(train.device, str) and _device_type(train.device) in DEVICE_TYPES,
        f"train.device must be one of {', '.join(DEVICE_TYPES)} (a GPU may carry an index: cuda:1)",
    )
    need(isinstance(config.model.get("name"), str), "model.name must be a string")


def with_protocol(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with its empty window settings taken from its data set's protocol."""
    data = config.data
    if None not in (data.seq_len, data.pred_lens):
        return config
    protocol = protocol_for(data.name)
    seq_len = data.seq_len if data.seq_len is not None else protocol.seq_len
    pred_lens = data.pred_lens if data.pred_lens is not None else list(protocol.pred_lens)
    return dataclasses.replace(config, data=dataclasses.replace(data, seq_len=seq_len, pred_lens=pred_lens))


def _device_type(name: str) -> str | None:
    try:
        return torch.device(name).type
    except (RuntimeError, ValueError):
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


DEFAULT_PRESET = "demo"  # `specmem train` with no arguments: offline, about a minute
DATA_DEFAULT_PRESET = "default"  # `specmem train --data X` without --config: the data-agnostic model


def presets() -> dict[str, Path]:
    """The YAML presets shipped with specmem (the repository's ``configs/``), by name."""
    folder = resources.files("specmem_cli") / "configs"
    return {entry.name[: -len(".yaml")]: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".yaml")}


def load_config(path_or_preset: str | Path | None = None) -> ExperimentConfig:
    """Read a YAML config file or a preset by name (``demo``, ``etth1_paper``); None is the demo."""
    name = str(path_or_preset) if path_or_preset is not None else DEFAULT_PRESET
    path = Path(name)
    if not path.is_file():
        known = presets()
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(
                f"config '{name}' is neither a file nor a preset; {hint}presets: {', '.join(sorted(known))}"
            )
        path = known[name]
    raw = read_yaml(path)
    if not raw:
        raise ConfigError(f"{path} is empty; give a config with at least a model (see configs/default.yaml)")
    if isinstance(raw, dict):  # a misspelt section ('modle:') is named before its absence is
        _reject_unknown(raw, {f.name for f in dataclasses.fields(ExperimentConfig)}, str(path), prefix="")
    if isinstance(raw, dict) and not isinstance(raw.get("model"), dict):
        raise ConfigError(
            f"{path}: no 'model' section naming the model (e.g. model: {{name: klcycle}}); see configs/default.yaml"
        )
    return config_from_dict(raw, source=str(path))


def model_preset(name: str) -> dict[str, Any]:
    """Default hyper-parameters of a registered model for ETTh1 at look-back 96 (``configs/models/NAME.yaml``)."""
    path = resources.files("specmem_cli") / "configs" / "models" / f"{name}.yaml"
    if not path.is_file():
        return {"name": name}
    return {**read_yaml(Path(str(path))), "name": name}


def with_model(config: ExperimentConfig, name: str) -> ExperimentConfig:
    """The same data and seeds with another model, trained with that model's own recipe: the TSL training
    defaults, updated by its preset's ``train`` section (a preset may carry its paper's settings), never
    the config's model's recipe (a baseline trained with klcycle's settings is a different baseline)."""
    if name == config.model_name:
        return config
    raw = config.to_dict()
    preset = model_preset(name)
    raw["train"] = {**dataclasses.asdict(TrainConfig()), **preset.pop("train", {})}
    raw["model"] = preset
    return config_from_dict(raw)


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found; see configs/ for examples")
    try:
        loaded = parse_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file; save the config as UTF-8 YAML") from None
    except yaml.YAMLError as exc:
        mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: invalid YAML{where}{f': {problem}' if problem else ''}; fix the syntax") from None
    return loaded or {}


def updated(
    config: ExperimentConfig,
    *,
    data: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    seeds: list[int] | None = None,
    source: str = "command line",
) -> ExperimentConfig:
    """``config`` with typed changes (command-line flags, one run's horizon and seed), checked as a config
    file is: no round trip through dicts, strings and YAML."""
    changed = dataclasses.replace(
        config,
        data=dataclasses.replace(config.data, **(data or {})),
        train=dataclasses.replace(config.train, **(train or {})),
        seeds=list(seeds) if seeds is not None else config.seeds,
    )
    _check_values(changed, source)
    return changed


def apply_overrides(config: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply ``section.key=value`` strings (values parsed as YAML: ``3``, ``0.1``, ``[96, 192]``, ``null``)."""
    raw = copy.deepcopy(config.to_dict())
    for override in overrides:
        key, sep, text = override.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{override}' is not key=value (e.g. --set train.epochs=3)")
        try:
            value = parse_yaml(text)
        except yaml.YAMLError:
            value = text
        path = key.strip().split(".")
        node = raw
        for part in path[:-1]:
            if part not in node or not isinstance(node[part], dict):
                close = difflib.get_close_matches(part, [k for k, v in node.items() if isinstance(v, dict)], n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ConfigError(f"override '{override}': unknown section '{part}'{hint}")
            node = node[part]
        node[path[-1]] = value
    return config_from_dict(raw, source="--set")


def read_data(config: ExperimentConfig) -> SeriesTable:
    return load_table(config.data.name, config.data.reading(), registry(config.datasets))


def load_data(config: ExperimentConfig, pred_len: int, table: SeriesTable | None = None) -> PreparedData:
    data = config.data
    table = table if table is not None else read_data(config)
    return prepare(table, data.seq_len, pred_len, data.features, data.target, data.split)
