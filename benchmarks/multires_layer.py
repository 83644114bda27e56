"""Time the MultiresConv layer two ways on the same input: the tree step by step, and one Toeplitz product.

    python benchmarks/multires_layer.py [--batch 896] [--channels 32] [--length 96] [--threads 1] [--repeats 20]

What it measures: one forward and backward (gradients for the input and every parameter) of one
``MultiresConv`` layer (Haar-initialised, ``fading`` selection) on ``[batch, channels, length]``:

- ``tree``: :meth:`MultiresConv.transform`, the definition - ``2 x depth`` dilated depthwise
  convolutions, then the weighted selection;
- ``product``: :meth:`MultiresConv.forward`, what training runs - the tree applied to one unit impulse
  gives each channel's kernel, and one ``[length, length]`` causal Toeplitz product per channel applies it.

The defaults are the memory ablation's multires shape (batch 128 windows x 7 series, ``d_model`` 32,
look-back 96) on one torch thread, as each of its two parallel runs has. Printed: median ms per
forward + backward for each, their ratio, and the largest difference between the two outputs.
"""

from __future__ import annotations

import argparse

import torch
from memory import median_ms

from specmem_cli.models.multires_conv import MultiresConv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=896, help="sequences: windows x series")
    parser.add_argument("--channels", type=int, default=32, help="the layer's width (d_model)")
    parser.add_argument("--length", type=int, default=96, help="look-back")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    layer = MultiresConv(args.channels, args.length, wavelet="haar")
    x = torch.randn(args.batch, args.channels, args.length, requires_grad=True)

    def step(apply):
        def run():
            apply(x).square().mean().backward()
            layer.zero_grad(set_to_none=True)
            x.grad = None

        return run

    timings = {
        name: median_ms(step(apply), args.repeats) for name, apply in [("tree", layer.transform), ("product", layer)]
    }
    with torch.no_grad():
        difference = (layer(x) - layer.transform(x)).abs().max().item()
    print(
        f"MultiresConv forward + backward, [{args.batch}, {args.channels}, {args.length}], depth {layer.depth}, "
        f"{args.threads} thread(s), median of {args.repeats}"
    )
    print(f"{'tree':>8}: {timings['tree']:8.1f} ms")
    print(f"{'product':>8}: {timings['product']:8.1f} ms")
    print(f"   ratio: {timings['tree'] / timings['product']:.1f}x  (largest output difference {difference:.1e})")


if __name__ == "__main__":
    main()
