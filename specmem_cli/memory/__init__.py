"""The spectral memory layer: K-L decomposition of a hidden-state history, and the module."""

from specmem_cli.memory.kl import Decomposition, explained_variance
from specmem_cli.memory.spectral import SpectralMemory

__all__ = ["Decomposition", "SpectralMemory", "explained_variance"]
