"""A MultiresConv forecaster: stacked wavelet-tree memory layers over each channel's hidden state."""

from __future__ import annotations

from specmem_cli.models.memory_backbone import MemoryOptions
from specmem_cli.models.multires_conv import MultiresConv
from specmem_cli.models.residual import ResidualMixerForecaster


class MultiresForecaster(ResidualMixerForecaster):
    """Residual MultiresConv blocks over each channel's embedded points, flatten head.

    With ``memory='spectral'`` the mean memory token is added to every step as a conditioning vector;
    ``memory='analog'`` blends the analog memory's forecast in after training.

    Args:
        d_model, e_layers, dropout: width, blocks, dropout.
        kernel_size, selection, wavelet: the :class:`~specmem_cli.models.multires_conv.MultiresConv` settings
            (``wavelet`` = ``haar``, ``db2``, ... initialises the filters; ``null`` for random).
        memory_options: the memory and the spectral memory's settings
            (:class:`~specmem_cli.models.memory_backbone.MemoryOptions`).
    """

    def __init__(
        self,
        seq_len: int,
        pred_len: int,
        n_channels: int,
        d_model: int = 32,
        e_layers: int = 2,
        dropout: float = 0.1,
        kernel_size: int = 2,
        selection: str = "fading",
        wavelet: str | None = "haar",
        memory_options: MemoryOptions | None = None,
    ):
        super().__init__()
        mixers = [MultiresConv(d_model, seq_len, kernel_size, selection, wavelet) for _ in range(e_layers)]
        self.build(seq_len, pred_len, d_model, mixers, dropout, memory_options)
