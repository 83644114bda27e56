"""Forecasting models, one file each, and the registry that maps config names to them.

Every model takes ``(seq_len, pred_len, n_channels, **hyper_parameters)`` and maps an input
window ``[B, seq_len, C]`` to a forecast ``[B, pred_len, C]``. Models with a memory expose it as
``model.memory`` (a :class:`~specmem_cli.memory.SpectralMemory`, an analog memory, or None), which is
how the trainer applies the evaluation-time memory policy without knowing the model. A model
with ``uses_positions`` true also takes each window's clock position (:func:`forecast` passes
it), and an :class:`~specmem_cli.models.analog_blend.AnalogBlend` builds its analog memory from the
training trajectory after training and decides on validation whether to read it.
"""

from __future__ import annotations

import difflib
import inspect
import itertools
import logging
from dataclasses import asdict, fields, replace

import numpy as np
import pandas as pd
import torch
from torch import nn

from specmem_cli.data.calendar import counted
from specmem_cli.data.seasonality import detect_cycle
from specmem_cli.errors import ConfigError
from specmem_cli.models.autoformer import Autoformer
from specmem_cli.models.dlinear import DLinear
from specmem_cli.models.itransformer import ITransformer
from specmem_cli.models.klcycle import KLCycleForecaster
from specmem_cli.models.klmemory import KLMemoryForecaster
from specmem_cli.models.memory_backbone import MemoryBackbone, MemoryOptions
from specmem_cli.models.multires import MultiresForecaster
from specmem_cli.models.patchtst import PatchTST
from specmem_cli.models.recurrent import GRUForecaster, LSTMForecaster
from specmem_cli.models.s4d import S4DForecaster
from specmem_cli.models.timesnet import TimesNet
from specmem_cli.models.timexer import TimeXer

MODELS: dict[str, type[nn.Module]] = {
    "klmemory": KLMemoryForecaster,
    "klcycle": KLCycleForecaster,
    "dlinear": DLinear,
    "patchtst": PatchTST,
    "itransformer": ITransformer,
    "timexer": TimeXer,
    "timesnet": TimesNet,
    "autoformer": Autoformer,
    "gru": GRUForecaster,
    "lstm": LSTMForecaster,
    "s4d": S4DForecaster,
    "multires": MultiresForecaster,
}
_SHAPE_ARGUMENTS = ("seq_len", "pred_len", "n_channels")
MEMORY_KEYS = frozenset(field.name for field in fields(MemoryOptions))
CALENDAR_TOLERANCE = 0.02  # steps: 365D is 11.9925 mean months, so calendar clocks need a little slack
log = logging.getLogger("specmem_cli.models")


def hyper_parameters(name: str) -> dict[str, object]:
    """The model's tunable arguments and their defaults (everything but the data shape), as a config writes
    them: a memory backbone's :class:`MemoryOptions` group appears as its flat keys."""
    cls = model_class(name)
    signature = inspect.signature(cls.__init__)
    known = {
        key: parameter.default
        for key, parameter in signature.parameters.items()
        if key not in ("self", "memory_options", *_SHAPE_ARGUMENTS)
    }
    if issubclass(cls, MemoryBackbone):
        known.update(asdict(cls.memory_defaults))
    return known


def constructor_arguments(name: str, params: dict[str, object]) -> dict[str, object]:
    """A config's flat ``params`` as the model's constructor takes them: a memory backbone's memory keys
    gathered into one :class:`MemoryOptions` (the class's defaults for the keys not given)."""
    cls = model_class(name)
    if not issubclass(cls, MemoryBackbone):
        return dict(params)
    group = {key: value for key, value in params.items() if key in MEMORY_KEYS}
    own = {key: value for key, value in params.items() if key not in MEMORY_KEYS}
    return {**own, "memory_options": replace(cls.memory_defaults, **group)}


def model_class(name: str) -> type[nn.Module]:
    if name not in MODELS:
        close = [known for known in MODELS if known.lower() == str(name).lower()] or difflib.get_close_matches(
            str(name).lower(), list(MODELS), n=1
        )
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"unknown model '{name}'; {hint}known: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def resolve_step_parameters(
    name: str,
    params: dict[str, object],
    time_step: pd.Timedelta,
    training: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, object]:
    """Whole-number hyper-parameters given as a duration (``1D``, ``24h``) become steps of the data's clock,
    so one config means "a day" on hourly and on 15-minute data alike; a model's ``step_parameters`` may
    also be ``auto``, chosen from ``training`` (the training split's values ``[rows, series]`` and clock
    positions ``[rows]``) by :func:`~specmem_cli.data.seasonality.detect_cycle`."""
    defaults = hyper_parameters(name)
    declared = getattr(model_class(name), "step_parameters", ())
    resolved = {key: defaults[key] for key in declared if key not in params and isinstance(defaults[key], str)}
    resolved.update(params)
    for key, value in resolved.items():
        default = defaults.get(key)
        takes_steps = key in declared or (isinstance(default, int) and not isinstance(default, bool))
        if not isinstance(value, str) or not takes_steps:
            continue
        if value == "auto" and key in declared:
            if training is None:
                raise ConfigError(f"model.{key}: 'auto' is chosen from training data; give a number of steps here")
            resolved[key] = detect_cycle(*training, None if counted(time_step) else time_step)
            continue
        if counted(time_step):
            raise ConfigError(
                f"model.{key}: '{value}' is a duration, but this data has numbered steps and no clock; "
                "give a whole number of steps"
            )
        try:
            steps = pd.Timedelta(value) / time_step
        except ValueError:
            expected = "a whole number, 'auto' or a duration" if key in declared else "a whole number or a duration"
            raise ConfigError(f"model.{key}: '{value}' is not {expected} such as 1D or 24h") from None
        if key in declared and steps < 1:
            # a day means nothing on weekly or monthly steps: no cycle of that length exists in the data
            log.info("note: model.%s: %s is shorter than one step of this data's clock; using 1 (none)", key, value)
            resolved[key] = 1
            continue
        if steps < 1 or abs(steps - round(steps)) > CALENDAR_TOLERANCE:
            raise ConfigError(
                f"model.{key}: {value} is {steps:g} steps of this data's {time_step}; give a whole number of steps"
                + (" or 'auto'" if key in declared else "")
            )
        resolved[key] = round(steps)
    return resolved


def open_choices(name: str, params: dict[str, object]) -> list[dict[str, object]]:
    """The settings a run must try, one dict each: every combination of the model's ``choices`` that
    ``params`` leaves as ``auto`` (``[{}]`` when none is), in the order the class lists them."""
    choices = getattr(model_class(name), "choices", {})
    defaults = hyper_parameters(name)
    open_keys = [key for key in choices if params.get(key, defaults[key]) == "auto"]
    return [dict(zip(open_keys, values, strict=True)) for values in itertools.product(*(choices[k] for k in open_keys))]


def build_model(name: str, seq_len: int, pred_len: int, n_channels: int, params: dict[str, object]) -> nn.Module:
    """Instantiate a registered model; an unknown hyper-parameter is a one-line config error."""
    check_parameters(name, params, resolved=True)
    try:
        return model_class(name)(seq_len, pred_len, n_channels, **constructor_arguments(name, params))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"model '{name}': {exc}") from None


def check_parameters(name: str, params: dict[str, object], resolved: bool = False) -> None:
    """An unknown model, an unknown parameter (listing the valid ones) or a value of the wrong kind
    (``model.temperature=hot``) as a one-line config error, when the config is read rather than after
    the data has loaded. Until ``resolved`` (the data's clock known), a whole number may be a duration."""
    known = hyper_parameters(name)
    for key in params:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"did you mean 'model.{close[0]}'? " if close else ""
            raise ConfigError(f"model '{name}' has no parameter '{key}'; {hint}its parameters: {', '.join(known)}")
    steps = getattr(model_class(name), "step_parameters", ())
    choices = getattr(model_class(name), "choices", {})
    for key, value in params.items():
        default = known[key]
        if key in choices:  # a resolved value may also be one a run made (klcycle's mix): the model checks it
            allowed = (*choices[key], "auto")
            if not resolved and value not in allowed:
                raise ConfigError(f"model.{key} must be one of {', '.join(allowed)} (got {value!r})")
            continue
        if isinstance(value, str) and (key in steps or (not resolved and _whole_number(default))):
            if not resolved and not (value == "auto" and key in steps) and not _duration(value):
                expected = "a whole number, 'auto' or a duration" if key in steps else "a whole number or a duration"
                raise ConfigError(f"model.{key}: '{value}' is not {expected} such as 1D or 24h")
            continue  # a duration or 'auto', turned into steps by resolve_step_parameters
        if isinstance(default, bool):
            expected, ok = "true or false", isinstance(value, bool)
        elif _whole_number(default) or key in steps:
            expected, ok = "a whole number", _whole_number(value)
        elif isinstance(default, float):
            expected, ok = "a number", isinstance(value, (int, float)) and not isinstance(value, bool)
        elif isinstance(default, str):
            expected, ok = "a word", isinstance(value, str)
        else:
            continue
        if not ok:
            raise ConfigError(f"model.{key} must be {expected} (got {value!r}); fix it in the config or --set")


def _duration(text: str) -> bool:
    try:
        pd.Timedelta(text)
    except ValueError:
        return False
    return True


def _whole_number(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def forecast(model: nn.Module, inputs: torch.Tensor, positions: torch.Tensor | None = None, **options) -> torch.Tensor:
    """Run any registered model on ``inputs``; phase-aware models also get the windows' ``positions``."""
    if getattr(model, "uses_positions", False):
        return model(inputs, positions=positions, **options)
    return model(inputs, **options)
