"""Memories a forecaster reads: the spectral memory (K-L decomposition of a hidden-state history),
the analog memory (K-L keys over training windows), and the contract both keep."""

from specmem_cli.memory.contract import (
    ForecastMemory,
    memory_of,
    prepare_for_evaluation,
    resume_training,
    start_epoch,
)
from specmem_cli.memory.kl import Decomposition, explained_variance
from specmem_cli.memory.spectral import SpectralMemory

__all__ = [
    "Decomposition",
    "ForecastMemory",
    "SpectralMemory",
    "explained_variance",
    "memory_of",
    "prepare_for_evaluation",
    "resume_training",
    "start_epoch",
]
