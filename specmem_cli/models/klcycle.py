"""The CPU-first Spectral Memory forecaster: a cycle-aware linear (or small MLP) model plus a gated K-L analog memory.

Why this shape: at look-back 96 a 157M-parameter Transformer is beaten by a linear map with a
learned seasonal cycle (CycleNet/Linear), and the published memory is all zero at evaluation.
Here the memory is the training trajectory itself, compressed to its dominant K-L modes
(:class:`~specmem_cli.memory.analog.AnalogMemory`), and it is read at evaluation: each window's
K-L coefficients retrieve the training windows that looked like it, and their futures are
blended into the network's forecast with a weight per forecast step.

The memory is fitted after the network and kept only where validation says it helps
(:mod:`specmem_cli.models.analog_blend`, which every memory backbone can carry too).

The map from the input less its cycle to the forecast is linear (CycleNet/Linear) or a one-hidden-layer
MLP (CycleNet/MLP). Neither wins everywhere: on ETTh1's validation split the MLP is worse beyond horizon 96,
on ETTm1's, ETTm2's and weather's it is better at every horizon tried. So ``head: auto`` lets a run train both and
keep the one with the lower validation MSE, or a validation-weighted mix of their forecasts and the last value
(``head: mix``, :meth:`mix_from`) where that is lower still (:func:`specmem_cli.training.run.train_run`).
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from specmem_cli.memory.analog import AnalogMemory
from specmem_cli.models.analog_blend import AnalogBlend
from specmem_cli.models.layers import denormalise, normalise

HEADS = ("linear", "mlp")  # the maps a config may name (or ``auto``); ``mix`` is made from both by a run
FFT_FROM = 8_192  # cycle values (cycle_len x series) from which W c_in is computed through the FFT


class KLCycleForecaster(AnalogBlend):
    """Instance normalisation -> learned cycle removed -> shared linear map or MLP -> cycle restored -> memory blend.

    Args:
        seq_len, pred_len, n_channels: look-back, horizon and number of series (channel-independent).
        cycle_len: period of the learned cycle in steps; a config may say ``auto`` (chosen from the
            training rows: a day, a week or a year of the data's clock, or none) or a duration such as
            ``1D``, which a run turns into steps of its data's clock. 1 means no cycle.
        memory: ``analog`` (K-L analog memory of the training windows, kept only where validation
            says it helps) or ``off``.
        key_modes, value_modes: K-L modes kept for the memory's keys (inputs) and values (futures).
        temperature: softmax temperature of the memory read-out (larger averages more analogs).
        memory_stride: store at most every n-th training window (neighbouring windows are near copies).
        top_k: analogs averaged per read.
        max_entries: most window-series rows the memory stores (wide data is thinned to fit).
        head: ``linear`` or ``mlp`` (a config may say ``auto``: a run trains both and keeps the one with
            the lower validation MSE, or their validation-weighted mix with the last value, ``mix``: see
            :meth:`mix_from`).
        hidden: the MLP head's hidden width.
    """

    uses_positions = True
    step_parameters = ("cycle_len",)  # whole steps that a config may give as a duration or ``auto``
    # parameters a config may give as ``auto``: a run tries each, validation picks
    choices: ClassVar[dict[str, tuple[str, ...]]] = {"head": HEADS}

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        cycle_len: int | str = "auto",
        memory: str = "analog",
        key_modes: int = 32,
        value_modes: int = 32,
        temperature: float = 8.0,
        memory_stride: int = 2,
        top_k: int = 64,
        max_entries: int = 32_768,
        head: str = "linear",
        hidden: int = 128,
    ):
        super().__init__()
        if memory not in ("analog", "off"):
            raise ValueError(f"memory must be 'analog' or 'off', got '{memory}'")
        if cycle_len == "auto":
            raise ValueError(
                "cycle_len 'auto' is chosen from training data when a run builds the model "
                "(models.resolve_step_parameters); give a whole number of steps to build it directly"
            )
        if not isinstance(cycle_len, int) or cycle_len < 1:
            raise ValueError(f"cycle_len must be a whole number of steps >= 1, got {cycle_len!r}")
        if head not in (*HEADS, "mix"):
            raise ValueError(
                f"head must be one of {', '.join(HEADS)} (or 'auto' in a config, chosen by a run), got {head!r}"
            )
        if hidden < 1:
            raise ValueError(f"hidden must be a whole number >= 1, got {hidden!r}")
        self.seq_len, self.pred_len, self.cycle_len, self.head = seq_len, pred_len, cycle_len, head
        self.cycle = nn.Parameter(torch.zeros(cycle_len, n_channels))  # the MLP's own where the head is mlp
        if head in ("linear", "mix"):
            self.linear = nn.Linear(seq_len, pred_len)
        if head in ("mlp", "mix"):
            self.mlp = nn.Sequential(nn.Linear(seq_len, hidden), nn.ReLU(), nn.Linear(hidden, pred_len))
        if head == "mix":  # two networks trained apart: each keeps its own cycle
            self.mlp_cycle = nn.Parameter(torch.zeros(cycle_len, n_channels))
            self.register_buffer("linear_share", torch.tensor(1.0))  # the linear map's weight in the mix
            self.register_buffer("last_share", torch.tensor(0.0))  # the last value's; the MLP has the rest
        self.memory = (
            AnalogMemory(seq_len, pred_len, key_modes, value_modes, temperature, memory_stride, top_k, max_entries)
            if memory == "analog"
            else None
        )
        self.register_buffer("blend", torch.zeros(pred_len))  # per-step memory weight; zero: never read

    @torch.no_grad()
    def mix_from(
        self, linear: KLCycleForecaster, mlp: KLCycleForecaster, linear_share: float, last_share: float = 0.0
    ) -> None:
        """Make this ``head: mix`` network forecast ``a * linear + (1 - a - b) * mlp + b * last value`` from a
        trained linear and a trained MLP network (each keeps its own cycle), with ``a = linear_share`` and
        ``b = last_share``; its memory, if any, is built afterwards.

        Why: the two maps err differently, so a weighted mean of their forecasts is often below both on
        validation; and where the series wander like random walks (exchange rates), the last value, which
        no trained map quite reproduces, is the forecast to beat. A run weighs all three on validation
        (:func:`specmem_cli.training.run.train_run`).
        """
        if self.head != "mix" or linear.head != "linear" or mlp.head != "mlp":
            raise ValueError(
                f"mix_from needs a mix, a linear and an mlp network (got {self.head}, {linear.head}, {mlp.head})"
            )
        if min(linear_share, last_share) < 0 or linear_share + last_share > 1 + 1e-9:  # rounding of a sum of 1
            raise ValueError(f"mix shares must be >= 0 and sum to at most 1, got {linear_share} and {last_share}")
        self.cycle.copy_(linear.cycle)
        self.linear.load_state_dict(linear.linear.state_dict())
        self.mlp_cycle.copy_(mlp.cycle)
        self.mlp.load_state_dict(mlp.mlp.state_dict())
        self.linear_share.fill_(linear_share)
        self.last_share.fill_(last_share)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A mix saved before the last value was a member (no ``last_share``) gave it no weight: load it so."""
        if self.head == "mix" and prefix + "linear_share" in state_dict:
            state_dict.setdefault(prefix + "last_share", torch.tensor(0.0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _stretches(self, offset: int, length: int, cycle: torch.Tensor | None = None) -> torch.Tensor:
        """For each phase ``p``: the learned cycle (``self.cycle`` unless given) over ``length`` steps from
        ``p + offset`` ``[C, cycle, length]``.

        Gathered by index rather than unfolded from a repeated cycle: the gradient of a gather is one
        ``index_add``, where unfolding's backward took an eighth of a training step on weather.
        """
        cycle = self.cycle if cycle is None else cycle
        phases = torch.arange(self.cycle_len, device=cycle.device)
        steps = torch.arange(offset, offset + length, device=cycle.device)
        index = (phases[:, None] + steps).remainder_(self.cycle_len).flatten()
        return cycle.T.index_select(1, index).view(-1, self.cycle_len, length)

    def _weighted_cycle(self) -> torch.Tensor:
        """``W c_in`` for every phase ``[C, cycle, pred_len]``: the linear map applied to the cycle's
        stretch over the input, as a circular cross-correlation of the cycle with ``W`` folded onto
        one period (``W`` columns ``t`` and ``t + cycle`` meet the same cycle value).

        Why through the FFT on wide data: directly it is ``cycle x C x seq_len x pred_len``
        multiply-adds per step (1 GFLOP on electricity's 321 series with a weekly cycle, as much as
        the linear map itself; forward and backward 93 ms against 18 ms through the FFT, which needs
        ``C x pred_len x cycle log cycle``). Below :data:`FFT_FROM` cycle values the direct product is
        as fast (24 x 7 on ETTh1: 0.9 ms either way) and is kept. The same function up to rounding.
        """
        if self.cycle_len * self.cycle.shape[1] < FFT_FROM:
            return self._stretches(0, self.seq_len) @ self.linear.weight.T
        folded = self.linear.weight.new_zeros(self.pred_len, self.cycle_len).index_add(
            1, torch.arange(self.seq_len, device=self.cycle.device) % self.cycle_len, self.linear.weight
        )
        spectrum = torch.fft.rfft(self.cycle, dim=0).T  # [C, frequencies]
        kernel = torch.fft.rfft(folded, dim=1).conj()  # [pred_len, frequencies]
        return torch.fft.irfft(spectrum[:, None, :] * kernel[None], n=self.cycle_len, dim=2).transpose(1, 2)

    def _base(self, x: torch.Tensor, positions: torch.Tensor):
        """``(normalised input, network forecast in normalised units, mean, std)``.

        The network is ``W (x - c_in) + b + c_out`` with the cycle's stretches ``c_in`` over the input and
        ``c_out`` over the horizon (the MLP head: ``MLP(x - c_in) + c_out``, per window). Both depend on the window's phase only, so ``c_out - W c_in`` is
        computed once per phase (:meth:`_weighted_cycle`) and each window picks its row: far cheaper
        than subtracting and adding per window, and the same function.

        Why series-major (``[C, ., pred_len]``) until the last step: the linear map's output comes out
        that way, and one copy into ``[B, pred_len, C]`` at the end makes the loss and its gradient
        run over contiguous memory (1.2-1.6x per training step against batch-major transposed views,
        by ``benchmarks/klcycle_step.py``).
        """
        if positions is None:
            raise ValueError("KLCycleForecaster needs each window's position (the phase of its cycle)")
        normalised, mean, std = normalise(x)
        if self.head == "linear":
            forecast = self._linear_forecast(normalised, positions)
        elif self.head == "mlp":
            forecast = self._mlp_forecast(normalised, positions, self.cycle)
        else:
            linear, last = self.linear_share, self.last_share
            forecast = (
                linear * self._linear_forecast(normalised, positions)
                + (1 - linear - last) * self._mlp_forecast(normalised, positions, self.mlp_cycle)
                + last * normalised[:, -1:, :].transpose(1, 2)  # the last value, in normalised units
            )
        return normalised, forecast.transpose(1, 2).contiguous(), mean, std

    def _linear_forecast(self, normalised: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        per_phase = self._stretches(self.seq_len, self.pred_len) - self._weighted_cycle()  # [C, cycle, pred_len]
        cycle = per_phase.index_select(1, positions % self.cycle_len).transpose(0, 1)  # [B, C, pred_len]
        return self.linear(normalised.transpose(1, 2)) + cycle

    def _mlp_forecast(self, normalised: torch.Tensor, positions: torch.Tensor, cycle: torch.Tensor) -> torch.Tensor:
        """Not linear: the cycle is taken out of and put back into each window ``[B, C, pred_len]``."""
        phases = positions % self.cycle_len
        cycle_in = self._stretches(0, self.seq_len, cycle).index_select(1, phases).transpose(0, 1)  # [B, C, seq_len]
        cycle_out = self._stretches(self.seq_len, self.pred_len, cycle).index_select(1, phases).transpose(0, 1)
        return self.mlp(normalised.transpose(1, 2) - cycle_in) + cycle_out

    def forward(self, x: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``[B, seq_len, C]`` -> ``[B, pred_len, C]``; ``positions`` ``[B]``: each window's first row on the clock."""
        normalised, forecast, mean, std = self._base(x, positions)
        return denormalise(self.blended(normalised, forecast, positions), mean, std)
