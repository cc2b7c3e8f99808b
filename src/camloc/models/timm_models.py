"""timm classifiers by name (``"timm:<name>"``), with weights from a local file only.

The head is found through timm's own API rather than class names: ``forward_features`` gives
the last features, ``forward_head`` the scores, ``get_classifier()`` the linear layer and
``global_pool`` (a pooling module, on the model or its ``head``, or a string for token models)
the pooling. The features may be ``(B, K, h, w)``, channels-last ``(B, h, w, K)`` (Swin) or
tokens ``(B, N, K)`` (ViT, DeiT, BEiT, EVA): tokens average-pooled without the class (and
register) tokens are reshaped to the patch grid, so their maps are exact CAMs on that grid. A
LayerNorm on the pooled vector (``fc_norm``, ConvNeXt's head norm) is carried into the maps
(:mod:`camloc.models.pooled_norm`). The head found is then checked numerically: ``forward_head``
on the model's own features must equal pooling [+ norm] + the linear layer, else the model is
refused with a one-line reason (a conv or an MLP after pooling, as in MobileNetV3), as are
class-token, attention-pooled and two-head (distilled) models.

Weights: ``weights=`` a ``.safetensors`` file or a state dict read with ``weights_only=True``
(a pickle that would run code is refused; :func:`camloc.models.weights.read_state_dict`); the
class count is taken from the file. timm's own
downloading (``pretrained=True``) is never used. Preprocessing (input size, mean, std) comes
from the model's pretrained configuration; images are squashed to that size as everywhere.
"""

from __future__ import annotations

import os
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from camloc.errors import HeadError, ModelError, one_line
from camloc.models.heads import Head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.pooled_norm import is_pooled_norm
from camloc.models.weights import read_state_dict

PREFIX = "timm:"
_ADVICE = "; use a gradient method (--method gradcam) or camloc.gapify"


def is_timm_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.")


class TimmNet(nn.Module):
    """A timm model run as ``forward_head(forward_features(x))`` (what its ``forward`` does), with
    an identity module between the two for CAM to read; ``self.model`` is the timm model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.features = nn.Identity()
        self.grid: tuple[int, int] | None = None  # the patch grid of the last input (token models)

    def record_grid(self, x: Tensor) -> None:
        """Note the patch grid of input ``x`` (for reshaping tokens; no-op without patch_embed)."""
        embed = getattr(self.model, "patch_embed", None)
        if embed is not None:
            size = tuple(x.shape[-2:])
            grid = embed.dynamic_feat_size(size) if hasattr(embed, "dynamic_feat_size") else embed.grid_size
            self.grid = (int(grid[0]), int(grid[1]))

    def forward(self, x: Tensor) -> Tensor:
        self.record_grid(x)
        return self.model.forward_head(self.features(self.model.forward_features(x)))

    def camloc_head(self) -> Head:
        return timm_head(self)


class _ToMaps:
    """``Head.post`` for timm features: channels-last maps or tokens -> ``(B, K, h, w)``."""

    def __init__(self, net: TimmNet, layout: Literal["NHWC", "NLC"], prefix: int = 0) -> None:
        self.net, self.layout, self.prefix = net, layout, prefix

    def __call__(self, f: Tensor) -> Tensor:
        if self.layout == "NHWC":
            return f.permute(0, 3, 1, 2)
        h, w = self.net.grid
        tokens = f[:, self.prefix:]
        if tokens.shape[1] != h * w:
            raise RuntimeError(f"{tokens.shape[1]} patch tokens do not fill the {h}x{w} patch grid")
        return tokens.transpose(1, 2).reshape(f.shape[0], f.shape[2], h, w)


def _refuse(name: str, reason: str, advice: str = _ADVICE) -> HeadError:
    return HeadError(f"{name}: {reason}, so CAM is not exact{advice}")


def _pooling(model: nn.Module, name: str) -> tuple[str, bool]:
    """``(pool type, tokens?)`` of ``model``'s global pooling (the pooling module's type, or for
    token models the ``global_pool`` string); refuses pooling that is not a plain mean or max."""
    from timm.layers import SelectAdaptivePool2d

    head = getattr(model, "head", None)
    for where in (getattr(head, "global_pool", None), getattr(model, "global_pool", None)):
        if isinstance(where, SelectAdaptivePool2d):
            kind = where.pool_type.lower().removeprefix("fast") or ("avg" if where.pool_type else "")
            if kind not in ("avg", "max"):
                raise _refuse(name, f"global pooling '{where.pool_type or 'none'}' is not a mean or a max")
            return kind, False
    kind = getattr(model, "global_pool", None)
    if not isinstance(kind, str):
        raise _refuse(name, "no global pooling found through timm's API (global_pool)")
    if getattr(model, "attn_pool", None) is not None:
        raise _refuse(name, "attention pooling (global_pool='map') weighs the tokens per image")
    if kind == "token":
        raise _refuse(name, "class-token head (global_pool='token'): the score reads one token, not the mean "
                            "of the patch grid", "; create it with global_pool='avg', or use a gradient method")
    if kind not in ("avg", "max"):
        raise _refuse(name, f"token pooling '{kind or 'none'}' is not a mean or a max")
    if getattr(model, "pool_include_prefix", False):
        raise _refuse(name, "the pooling includes the class token, which is not on the patch grid")
    return kind, True


def timm_head(net: TimmNet, name: str | None = None) -> Head:
    """The CAM head of a wrapped timm model, checked numerically against ``forward_head``.

    Raises:
        HeadError: one line, for heads where CAM is not exact.
    """
    model = net.model
    name = name or f"{PREFIX}{getattr(model, 'default_cfg', {}).get('architecture', type(model).__name__)}"
    classifier = model.get_classifier()
    if isinstance(classifier, (tuple, list)):
        raise _refuse(name, "two classifier heads (a distilled model) whose scores are averaged")
    if not isinstance(classifier, nn.Linear):
        raise _refuse(name, f"classifier is {type(classifier).__name__}, not a linear layer")
    pooling, tokens = _pooling(model, name)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            shape = timm_preprocessing(model).shape
            x = torch.randn(2, 3, *shape, generator=torch.Generator().manual_seed(0))
            x = x.to(next(model.parameters()).device)
            f = model.forward_features(x)
            net.record_grid(x)
            scores = model.forward_head(f)
            k = classifier.in_features
            if tokens:
                if f.dim() != 3:
                    raise _refuse(name, f"token pooling on features shaped {tuple(f.shape)}, not (B, N, K)")
                h, w = net.grid or (0, 0)
                post = _ToMaps(net, "NLC", f.shape[1] - h * w)
            elif f.dim() == 4 and f.shape[1] == k:
                post = None
            elif f.dim() == 4 and f.shape[-1] == k:
                post = _ToMaps(net, "NHWC")
            elif f.dim() == 4:
                raise _refuse(name, f"layers between pooling and the classifier turn {f.shape[1]} feature channels "
                                    f"into its {k} inputs")
            else:
                raise _refuse(name, f"features shaped {tuple(f.shape)} are not maps of {k} channels")
            norms = [getattr(model, "fc_norm", None), getattr(getattr(model, "head", None), "norm", None)]
            for norm in [None, *[m for m in norms if m is not None and is_pooled_norm(m)]]:
                head = Head(net.features, classifier, "input", post=post, pooling=pooling, norm=norm)
                maps = head.post(f) if head.post is not None else f
                pooled = maps.amax(dim=(-2, -1)) if pooling == "max" else maps.mean(dim=(-2, -1))
                recon = F.linear(pooled, classifier.weight, head.bias())
                scale = float(scores.abs().max())
                if recon.shape == scores.shape and float((recon - scores).abs().max()) <= 1e-4 * (1 + scale):
                    return head
    finally:
        model.train(was_training)
    raise _refuse(name, "forward_head is more than global pooling, a norm and one linear layer "
                        "(e.g. a conv or an MLP after pooling)")


def timm_preprocessing(model: nn.Module) -> Preprocessing:
    from timm.data import resolve_model_data_config

    cfg = resolve_model_data_config(model)
    _, h, w = cfg["input_size"]
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    if size is not None:  # built for another size than its pretrained configuration's (img_size=...)
        h, w = size
    return Preprocessing(shape=(int(h), int(w)), mean=tuple(cfg["mean"]), std=tuple(cfg["std"]))


def timm_net(model: nn.Module, name: str | None = None, class_names: list[str] | None = None,
             arch_kwargs: dict[str, Any] | None = None) -> CamNet:
    """A :class:`CamNet` for a timm model instance (wrapped in :class:`TimmNet`)."""
    from camloc.models.torchvision_models import imagenet_classes

    wrapper = TimmNet(model)
    name = name or f"{PREFIX}{model.default_cfg.get('architecture', type(model).__name__)}"
    head = timm_head(wrapper, name)
    n = head.classifier.out_features
    names = list(class_names) if class_names else (imagenet_classes() if n == 1000 else [])
    return CamNet(module=wrapper, name=name, class_names=names, preprocessing=timm_preprocessing(model), head=head,
                  arch_kwargs=dict(arch_kwargs or {}))


def build_timm(arch: str, weights: str | os.PathLike | None = None, **kwargs: Any) -> CamNet:
    """``timm:<arch>``: ``timm.create_model(arch, **kwargs)`` without downloading, ``weights`` a
    local file (its class count wins unless ``num_classes`` is given)."""
    model, arch_kwargs = create_timm(arch, weights, **kwargs)
    return timm_net(model, f"{PREFIX}{arch}", arch_kwargs=arch_kwargs)


def create_timm(arch: str, weights: str | os.PathLike | None = None, **kwargs: Any) -> tuple[nn.Module, dict]:
    """The timm model (eval mode, weights loaded) and the keyword arguments that rebuild it."""
    try:
        import timm
    except ImportError:
        raise ModelError(f"{PREFIX}{arch}: timm is not installed (pip install 'camloc[timm]')") from None
    name = f"{PREFIX}{arch}"
    if kwargs.pop("pretrained", False):
        raise ModelError(f"{name}: weights come from a local file (weights=...), never downloaded")
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch.split('_')[0]}*")[:5]
        raise ModelError(f"unknown timm model '{arch}'" + (f" (e.g. {', '.join(close)})" if close else ""))
    state = read_state_dict(weights, "timm weights") if weights is not None else None
    try:  # token models read any input size (localization keeps the image's aspect), where timm can
        model = timm.create_model(arch, pretrained=False, **{"dynamic_img_size": True, **kwargs})
        kwargs = {"dynamic_img_size": True, **kwargs}
    except TypeError:  # the architecture has no such option
        model = timm.create_model(arch, pretrained=False, **kwargs)
    if state is not None:
        prefix = next(n for n, m in model.named_modules() if m is model.get_classifier())
        w = state.get(f"{prefix}.weight")
        if w is not None and "num_classes" not in kwargs and w.shape[0] != model.num_classes:
            model.reset_classifier(int(w.shape[0]))
        try:
            model.load_state_dict(state)
        except RuntimeError as err:
            raise ModelError(f"{weights}: weights do not fit {name} ({one_line(err, 160)})") from None
    return model.eval(), {**kwargs, "num_classes": int(model.num_classes)}
