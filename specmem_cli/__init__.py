"""specmem: Spectral Memory forecasting as a library and a command-line tool.

The package is layered so that a reader can follow one `specmem train` call forward:
``data`` (CSV loading, TSL splits, windows, downloads) -> ``memory`` (the K-L spectral memory
module) -> ``models`` (forecasters built on it) -> ``training`` (configs, trainer, checkpoints,
sweeps) -> ``cli`` (argument parsing and rendering only).
"""

__version__ = "0.1.0"
