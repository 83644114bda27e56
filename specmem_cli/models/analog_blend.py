"""The analog memory as a blend any forecaster can carry: fitted after training, read only where it helps.

A forecaster that carries it holds ``memory`` (an :class:`~specmem_cli.memory.analog.AnalogMemory`)
and a ``blend`` buffer (one weight per forecast step, zero: never read), and says how it forecasts
in per-window normalised units (:meth:`AnalogBlend._base`). Its forecast then becomes
``network + blend * (analog - network)``: the memory's analog forecast (the futures of the training
windows that looked like this one) pulls the network's forecast step by step.

Why fitted after the network, and gated: trained jointly, a network learns to lean on the memory, so a
memory that does not generalise to later data drags the whole model down. Instead the network trains
alone (it *is* the memory-off model), then :meth:`AnalogBlend.calibrate_memory` fits the per-step
blend in closed form on training windows (each excluded from reading its own span) and keeps it only
if it lowers the validation error; otherwise the memory is dropped and never read. On any data set
the model is therefore its memory-off self unless validation says the memory helps.
"""

from __future__ import annotations

import torch
from torch import nn

from specmem_cli.data.windows import WindowSet
from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.models.layers import denormalise, normalise

CALIBRATION_ROWS = 65_536  # training window-series rows the blend is fitted on (evenly spaced windows)
SHRINK_CHOICES = (0.25, 0.5, 0.75, 1.0)  # fractions of the fitted blend tried on validation
MIN_GAIN = 0.005  # the memory is kept only if it lowers validation MSE by at least 0.5%
_SUMS = ("error_squared", "error_dot_correction", "correction_squared")


class AnalogBlend(nn.Module):
    """Mixin for forecasters that blend an analog memory's forecast into their own (see the module)."""

    memory: nn.Module | None
    blend: torch.Tensor

    def _base(self, x: torch.Tensor, positions: torch.Tensor | None):
        """``(normalised input, network forecast in normalised units, mean, std)`` for ``x`` ``[B, L, C]``."""
        raise NotImplementedError

    @property
    def analog(self) -> AnalogMemory | None:
        return self.memory if isinstance(self.memory, AnalogMemory) else None

    @property
    def reads_memory(self) -> bool:
        return self.analog is not None and self.analog.ready and bool(self.blend.any())

    def blended(self, normalised: torch.Tensor, forecast: torch.Tensor, positions: torch.Tensor | None):
        """``forecast`` (normalised units) pulled toward the analog forecast by the per-step blend, if it is read."""
        if not self.reads_memory:
            return forecast
        return forecast + self.blend[None, :, None] * (self.recall(normalised, positions) - forecast)

    def recall(self, normalised: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """The memory's analog forecast ``[B, pred_len, C]`` (normalised units).

        Stored windows overlapping the query's own span are never read, in training or evaluation.
        """
        memory = self.analog
        batch, length, channels = normalised.shape
        rows = normalised.transpose(1, 2).reshape(batch * channels, length)
        read = memory.read(rows, positions.repeat_interleave(channels), memory.input_len + memory.horizon)
        return read.reshape(batch, channels, memory.horizon).transpose(1, 2)

    @torch.no_grad()
    def build_memory(self, train: WindowSet) -> None:
        """Fill the memory with training windows and their futures, normalised as the forecaster does."""
        memory = self.analog
        inputs, futures = train.inputs_and_futures()  # [N, C, L], [N, C, H] views
        starts = memory.starts_to_store(len(train), inputs.shape[1])
        inputs, futures = inputs[starts], futures[starts]
        normalised, mean, std = normalise(inputs.transpose(1, 2))
        rows = normalised.transpose(1, 2).reshape(-1, memory.input_len)  # one row per window and series
        future_rows = ((futures.transpose(1, 2) - mean) / std).transpose(1, 2).reshape(-1, memory.horizon)
        positions = train.positions[starts].repeat_interleave(inputs.shape[1])
        memory.build(*(t.to(self.blend.device) for t in (rows, future_rows, positions)))

    @torch.no_grad()
    def calibrate_memory(self, train: WindowSet, val: WindowSet, n_outputs: int, batch_size: int) -> dict | None:
        """Build the memory, fit the per-step blend, and keep it only if it lowers validation MSE.

        The blend minimising training MSE is closed-form per step (``w = <s, e> / <s, s>`` with ``e``
        the network's error and ``s`` the memory's correction, in the data's scaled units), clipped
        to [0, 1]. Validation picks how much of it to use (:data:`SHRINK_CHOICES`, or none); a gain
        under :data:`MIN_GAIN` drops the memory. Returns the figures behind the decision (None
        without an analog memory).

        Validation is read first: the same closed form fitted on validation itself is the lowest error
        any blend can reach there, and where even that gains under :data:`MIN_GAIN`, no blend fitted on
        training windows can pass the gate, so the memory is dropped without reading training windows
        (the same decision, for two fifths less of the gate's time on weather: benchmarks/memory_gate.py).
        """
        memory = self.analog
        if memory is None:
            return None
        self.eval()
        self.blend.zero_()
        self.build_memory(train)
        held_out = self._correction_sums(val, torch.arange(len(val)), n_outputs, batch_size)
        base_sse, count = float(held_out["error_squared"].sum()), held_out["count"]

        def sse(blend: torch.Tensor) -> float:
            return base_sse + float(
                (-2 * blend * held_out["error_dot_correction"] + blend**2 * held_out["correction_squared"]).sum()
            )

        best_sse = sse(_least_squares_blend(held_out))
        decision = {"val_mse_without_memory": base_sse / count, "val_mse_best_blend": best_sse / count}
        if best_sse > (1 - MIN_GAIN) * base_sse:
            memory.reset()
            return {"memory_used": False, **decision, "val_mse_with_memory": None, "shrink": 0.0, "entries": 0}
        sample = torch.linspace(0, len(train) - 1, max(1, min(len(train), CALIBRATION_ROWS // train.series.shape[1])))
        weights = _least_squares_blend(
            self._correction_sums(train, sample.round().long().unique(), n_outputs, batch_size)
        )
        shrink = min(SHRINK_CHOICES, key=lambda fraction: sse(fraction * weights))
        kept = sse(shrink * weights) <= (1 - MIN_GAIN) * base_sse
        if kept:
            self.blend.copy_(shrink * weights)
        else:
            memory.reset()
        return {
            "memory_used": kept,
            **decision,
            "val_mse_with_memory": sse(shrink * weights) / count,
            "shrink": shrink if kept else 0.0,
            "entries": memory.n_entries,  # 0 once dropped
        }

    def _correction_sums(self, windows: WindowSet, index: torch.Tensor, n_outputs: int, batch_size: int):
        """Per-step sums over ``windows[index]`` and output series of ``e^2``, ``s e`` and ``s^2``."""
        device, horizon = self.blend.device, self.analog.horizon
        sums = {name: torch.zeros(horizon, dtype=torch.float64, device=device) for name in _SUMS}
        for start in range(0, len(index), batch_size):
            inputs, targets, positions = (t.to(device) for t in windows.batch(index[start : start + batch_size]))
            normalised, forecast, mean, std = self._base(inputs, positions)
            correction = ((self.recall(normalised, positions) - forecast) * std)[..., -n_outputs:].double()
            error = (targets[:, -horizon:] - denormalise(forecast, mean, std)[..., -n_outputs:]).double()
            sums["error_squared"] += error.square().sum(dim=(0, 2))
            sums["error_dot_correction"] += (error * correction).sum(dim=(0, 2))
            sums["correction_squared"] += correction.square().sum(dim=(0, 2))
        return {**sums, "count": len(index) * horizon * n_outputs}


def _least_squares_blend(sums: dict) -> torch.Tensor:
    """The per-step blend in [0, 1] minimising the squared error over the windows ``sums`` came from."""
    return (sums["error_dot_correction"] / sums["correction_squared"].clamp_min(1e-12)).clamp(0.0, 1.0)
