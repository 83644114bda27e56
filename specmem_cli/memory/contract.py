"""The contract every memory keeps with the trainer, the evaluator, ``forecast`` and ``inspect-modes``.

The trainer and the evaluators never look inside a memory: they call these methods, through the
functions below, on a model's ``memory`` attribute (None: the model has none, or it is off).
"""

from __future__ import annotations

from torch import nn

EVALUATION_POLICIES = ("reset", "frozen")


class ForecastMemory(nn.Module):
    """A memory a forecaster reads.

    ``changes_while_read`` says whether reading (or writing during evaluation) can change what it
    returns: a written history can, so ``frozen`` fixes it; a memory built once from data cannot,
    so ``frozen`` leaves it as it is, and a sanity check that freezes it has nothing to test.
    """

    changes_while_read: bool

    @property
    def ready(self) -> bool:
        """Whether it holds anything to read."""
        raise NotImplementedError

    def reset(self) -> None:
        """Empty it: reads return nothing (zero tokens, or no analog forecast)."""
        raise NotImplementedError

    def start_epoch(self) -> None:
        """Called before every training epoch."""
        raise NotImplementedError

    def prepare_for_evaluation(self, policy: str) -> None:
        """``reset``: empty it (the published evaluation). ``frozen``: fix what it returns until
        :meth:`resume_training` (nothing to do where it cannot change)."""
        raise NotImplementedError

    def resume_training(self) -> None:
        """Called after each validation pass: undo what ``frozen`` fixed."""
        raise NotImplementedError

    def describe(self, policy: str) -> str:
        """One line on what forecasts read from it, for ``forecast``'s metadata."""
        raise NotImplementedError


def memory_of(model: nn.Module) -> ForecastMemory | None:
    memory = getattr(model, "memory", None)
    return memory if isinstance(memory, ForecastMemory) else None


def start_epoch(model: nn.Module) -> None:
    if (memory := memory_of(model)) is not None:
        memory.start_epoch()


def prepare_for_evaluation(model: nn.Module, policy: str) -> None:
    if policy not in EVALUATION_POLICIES:
        raise ValueError(f"unknown memory policy '{policy}'; use one of {', '.join(EVALUATION_POLICIES)}")
    if (memory := memory_of(model)) is not None:
        memory.prepare_for_evaluation(policy)


def resume_training(model: nn.Module) -> None:
    if (memory := memory_of(model)) is not None:
        memory.resume_training()
