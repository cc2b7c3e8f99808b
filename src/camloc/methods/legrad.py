"""LeGrad (arXiv 2024, "LeGrad: An Explainability Method for Vision Transformers via Feature
Formation Sensitivity"), for class-token vision transformers (timm's ViT/DeiT):

    s^l   = head(norm(Z^l))_c          (block l's tokens read by the final norm and head)
    E^l   = mean_{heads, queries} ReLU(d s^l / d P^l)   (P^l: block l's post-softmax attention)
    M_c   = mean_l E^l                 (the patch keys, on the patch grid)

Every block (or the last ``blocks``): one forward, and per class column one backward per block
(each block's score to its own attention). Attention is computed unfused while the method runs, so the probabilities
are in the graph. Refuses a net without timm-style attention blocks.
"""

from __future__ import annotations

from contextlib import ExitStack

import torch
from torch import Tensor, nn

from camloc.errors import MethodError
from camloc.hooks import capture
from camloc.methods.base import MapMethod, Net, module_of
from camloc.methods.targets import ClassTarget
from camloc.models.net import evaluating


def _blocks(model: nn.Module) -> list[nn.Module]:
    blocks = getattr(model, "blocks", None)
    ok = blocks is not None and all(hasattr(getattr(b, "attn", None), "attn_drop") and hasattr(b.attn, "fused_attn")
                                    for b in blocks)
    if not ok or not hasattr(model, "forward_head") or not hasattr(model, "patch_embed"):
        raise MethodError(f"legrad: {type(model).__name__} is not a timm vision transformer (blocks with attention); "
                          "use gradcam (the token grid) or a CNN method")
    return list(blocks)


class LeGrad(MapMethod):
    name = "legrad"
    family = "gradient"

    def __init__(self, blocks: int | None = None) -> None:
        if blocks is not None and (isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1):
            raise MethodError(f"legrad: blocks must be an integer >= 1, got {blocks!r}")
        self.blocks = blocks
        self.target = ClassTarget()

    def maps(self, net: Net, x: Tensor, classes: Tensor) -> Tensor:
        model = module_of(net)
        blocks = _blocks(model)[-self.blocks:] if self.blocks else _blocks(model)
        g = model.patch_embed.dynamic_feat_size(x.shape[-2:]) if hasattr(model.patch_embed, "dynamic_feat_size") \
            else model.patch_embed.grid_size
        h, w = int(g[0]), int(g[1])
        prefix = getattr(model, "num_prefix_tokens", 1)
        fused = [b.attn.fused_attn for b in blocks]
        try:
            for b in blocks:
                b.attn.fused_attn = False
            with evaluating(model), torch.enable_grad(), ExitStack() as stack:
                probs = [stack.enter_context(capture(b.attn.attn_drop, "output")) for b in blocks]
                tokens = [stack.enter_context(capture(b, "output")) for b in blocks]
                model(x)
                scores = [model.forward_head(model.norm(t["value"])) for t in tokens]
                attn = [p["value"] for p in probs]
                out = []
                for j in range(classes.shape[1]):
                    # each block's own score against its own attention (a later block's score also
                    # depends on earlier attention; the paper's E^l is d s^l / d P^l alone)
                    grads = [torch.autograd.grad(self.target(sc, classes[:, j]).sum(), p, retain_graph=True)[0]
                             for sc, p in zip(scores, attn)]
                    with torch.no_grad():
                        e = torch.stack([gr.clamp_min(0).mean(dim=(1, 2))[:, prefix:] for gr in grads]).mean(0)
                        out.append(e.reshape(x.shape[0], h, w))
        finally:
            for b, f in zip(blocks, fused):
                b.attn.fused_attn = f
        return torch.stack(out, dim=1)
