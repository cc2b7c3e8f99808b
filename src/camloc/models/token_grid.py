"""The gradient methods' default target on class-token transformers: the patch-token grid.

A class-token head (torchvision's ViT, timm ViT/DeiT with ``global_pool='token'``) admits no
CAM, but Grad-CAM and its kin only need activations shaped ``(B, K, h, w)`` that the scores
depend on. The target is the tokens the *last block's attention reads*: the output of that
block's first LayerNorm (timm's ``norm1``, torchvision's ``ln_1``). Not the last block's output:
with a class-token head nothing attends to the patch tokens after the last block, so the score's
gradient there is zero; in the last block the class token attends to them, once.

While :meth:`TokenGrid.capture` is active, a hook on that norm replaces its output tokens
``(B, P + h w, K)`` by the class/prefix tokens followed by the patch tokens *read back from*
their grid ``A (B, K, h, w)``. The forward computes the same values, and the scores are a
function of ``A`` in the autograd graph, so ``dS/dA`` is exactly the gradient at the patch tokens
reshaped to the grid (the prefix tokens keep their own path). No reshape function to write.

The grid is the patch embedding's for the input's size: timm's ``patch_embed.dynamic_feat_size``
(or its fixed ``grid_size``), torchvision's ``image_size // patch_size`` rule; the prefix count
is what is left of the tokens (timm's ``num_prefix_tokens``: class and register tokens).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class TokenGrid:
    """The hooked module (the last block's first norm) and how the input's patch grid is found."""

    block: nn.Module
    embed: nn.Module | None  # timm's patch_embed, or None for torchvision (patch_size below)
    patch_size: int = 0

    def grid(self, x: Tensor) -> tuple[int, int]:
        h, w = x.shape[-2:]
        if self.embed is None:
            return h // self.patch_size, w // self.patch_size
        if hasattr(self.embed, "dynamic_feat_size"):  # the input's own grid (equal to grid_size
            g = self.embed.dynamic_feat_size((h, w))  # at the size a fixed-size model accepts)
        else:
            g = self.embed.grid_size
        return int(g[0]), int(g[1])

    @contextmanager
    def capture(self, x: Tensor) -> Iterator[dict[str, Tensor]]:
        """Within the block, ``store["value"]`` is the patch-token grid ``(B, K, h, w)`` of the
        latest forward of ``x``, the scores a function of it."""
        h, w = self.grid(x)
        store: dict[str, Tensor] = {}

        def hook(_m: nn.Module, _args: tuple, out: object) -> Tensor:
            if not isinstance(out, Tensor) or out.dim() != 3:
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(f"{type(self.block).__name__}: tokens shaped {shape}, not (B, N, K)")
            prefix = out.shape[1] - h * w
            if prefix < 0:
                raise ValueError(f"{out.shape[1]} tokens do not fill the {h}x{w} patch grid")
            grid = out[:, prefix:].transpose(1, 2).reshape(out.shape[0], out.shape[2], h, w)
            store["value"] = grid
            return torch.cat([out[:, :prefix], grid.flatten(2).transpose(1, 2)], dim=1)

        handle = self.block.register_forward_hook(hook)
        try:
            yield store
        finally:
            handle.remove()


def token_grid(model: nn.Module) -> TokenGrid | None:
    """The :class:`TokenGrid` of a class-token transformer (torchvision ``VisionTransformer``,
    a timm model with ``blocks``, ``patch_embed`` and ``num_prefix_tokens``, also wrapped in
    camloc's ``TimmNet``) whose last block has a LayerNorm, else ``None``."""
    model = getattr(model, "model", model) if type(model).__name__ == "TimmNet" else model
    found: tuple[nn.Module, nn.Module | None, int] | None = None
    if hasattr(model, "class_token") and hasattr(model, "encoder") and hasattr(model, "patch_size"):
        layers = getattr(model.encoder, "layers", None)
        if isinstance(layers, nn.Sequential) and len(layers):
            found = layers[-1], None, int(model.patch_size)
    blocks = getattr(model, "blocks", None)
    if found is None and hasattr(model, "patch_embed") and hasattr(model, "num_prefix_tokens"):
        if isinstance(blocks, (nn.Sequential, nn.ModuleList)) and len(blocks):
            found = blocks[-1], model.patch_embed, 0
    if found is None:
        return None
    block, embed, patch = found
    norm = next((m for m in block.modules() if isinstance(m, nn.LayerNorm)), None)
    return None if norm is None else TokenGrid(norm, embed, patch)
