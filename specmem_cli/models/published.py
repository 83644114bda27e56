"""Import weights trained with the published TSL ``KLMemory`` code into a ``klmemory`` model.

The published state dict uses TSL's key names, keeps its history as a growing tensor, and holds
an unused deep copy of the encoder layer (``encoder_layer.*``). Hyper-parameters are read off the
tensor shapes, except ``n_heads``, which no shape records.
"""

from __future__ import annotations

import torch

from specmem_cli.errors import CheckpointError

_RENAMES = {
    "pos_encoding": "positions",
    "enc_embedding.weight": "embedding.weight",
    "enc_embedding.bias": "embedding.bias",
    "pooling_layer.weight": "pooling.weight",
    "pooling_layer.bias": "pooling.bias",
}
_REQUIRED = (
    "pos_encoding",
    "enc_embedding.weight",
    "head.weight",
    "memory.projection_mlp.0.weight",
    "memory.norm.weight",
)


def published_hyper_parameters(state: dict[str, torch.Tensor], n_heads: int) -> dict[str, object]:
    """``klmemory`` arguments implied by a published state dict (shape arguments included)."""
    missing = [key for key in _REQUIRED if key not in state]
    if missing:
        raise CheckpointError(f"not a published KLMemory state dict (missing {', '.join(missing)})")
    _, seq_len, d_model = state["pos_encoding"].shape
    hidden, flat_components = state["memory.projection_mlp.0.weight"].shape
    n_components = flat_components // d_model
    layers = {key.split(".")[2] for key in state if key.startswith("encoder.layers.")}
    return {
        "seq_len": int(seq_len),
        "pred_len": int(state["head.weight"].shape[0]),
        "d_model": int(d_model),
        "n_heads": n_heads,
        "d_ff": int(state["encoder.layers.0.linear1.weight"].shape[0]),
        "e_layers": len(layers),
        "n_components": int(n_components),
        "memory_tokens": int(state["memory.projection_mlp.3.weight"].shape[0]) // d_model,
        "projection": "dense" if hidden == 2 * flat_components else "bottleneck",
        "bottleneck_width": int(hidden),
    }


def convert_published_state(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Our parameter names for a published state dict, and its memory history ``(T, d)`` (oldest first)."""
    converted = {}
    for key, value in state.items():
        if key.startswith("encoder_layer.") or key == "memory._history":
            continue
        converted[_RENAMES.get(key, key)] = value
    history = state.get("memory._history", torch.zeros(0, state["pos_encoding"].shape[-1]))
    return converted, history


def load_published(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load published weights (and history) into a ``klmemory`` model of matching shape."""
    converted, history = convert_published_state(state)
    result = model.load_state_dict(converted, strict=False)
    own_buffers = {f"memory.{name}" for name, _ in model.memory.named_buffers()} if model.memory is not None else set()
    missing = [key for key in result.missing_keys if key not in own_buffers]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"published weights do not fit: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}"
        )
    if model.memory is not None:
        model.memory.reset()
        history = history[-model.memory.memory_depth :]
        if history.numel():
            model.memory.write(history)
