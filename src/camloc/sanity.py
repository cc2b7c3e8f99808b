"""Sanity check of a map method by model parameter randomisation (Adebayo et al., "Sanity Checks
for Saliency Maps", NeurIPS 2018), cascading from the top.

The net's blocks are listed from the output down (the classifier first, then the last blocks:
top-level children, a container such as ResNet's ``layer4`` split into its own blocks). Step
``i`` re-initialises the top ``i`` blocks of a copy (each layer's ``reset_parameters`` under a
fixed seed: fresh random weights, a BatchNorm's identity statistics) and maps the *same* images
for the *same* classes (the original net's top-1). Each step reports the Spearman rank
correlation of every map with the original one, averaged over the images, with its standard
error. A method whose maps depend on what the net learned decorrelates as soon as the
classifier and the top block are random; one whose maps barely change (mean *absolute*
correlation above ``flag_above`` after the classifier and the top block are randomised) is
flagged: its maps explain the image or the architecture, not the classifier. The absolute value,
as the paper also reports: a map that only flips its sign (Eigen-CAM's principal direction has no
sign of its own) keeps its structure, and a negative mean must not pass for a change.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

FLAG_ABOVE = 0.5
"""The flag: mean absolute rank correlation above this after the classifier and the top block are random."""


def blocks(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The blocks with parameters, from the output down: top-level children, a container
    (``nn.Sequential`` / ``nn.ModuleList``) of several such blocks expanded one level."""
    def has_params(m: nn.Module) -> bool:
        return any(p.numel() for p in m.parameters())

    out: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        if not has_params(child):
            continue
        inner = [(f"{name}.{n}", c) for n, c in child.named_children() if has_params(c)]
        if isinstance(child, (nn.Sequential, nn.ModuleList)) and len(inner) > 1:
            out.extend(inner)
        else:
            out.append((name, child))
    if not out and has_params(module):
        out.append(("", module))
    return out[::-1]


def randomize(block: nn.Module, seed: int) -> None:
    """Fresh random weights for every layer of ``block`` that can reset them (seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in block.modules():
            if hasattr(m, "reset_parameters") and any(True for _ in m.parameters(recurse=False)):
                m.reset_parameters()
            if hasattr(m, "reset_running_stats"):
                m.reset_running_stats()


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two maps (0 when either is constant or not finite)."""
    from scipy.stats import spearmanr

    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a, b).statistic)


@dataclass
class SanityResult:
    """Per step: which blocks are random, the mean correlation and its standard error."""

    method: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    num_images: int = 0
    flag_above: float = FLAG_ABOVE

    @property
    def top_block_step(self) -> dict[str, Any] | None:
        """The step after the classifier and the top block are randomised (step 2, or the last
        step when there are fewer); ``None`` without steps."""
        return self.steps[min(1, len(self.steps) - 1)] if self.steps else None

    @property
    def top_block_correlation(self) -> float | None:
        """The mean correlation at :attr:`top_block_step`."""
        step = self.top_block_step
        return None if step is None else step["mean"]

    @property
    def top_block_abs_correlation(self) -> float | None:
        """The mean *absolute* correlation at the same step: what the flag reads."""
        step = self.top_block_step
        return None if step is None else step["abs_mean"]

    @property
    def flagged(self) -> bool:
        r = self.top_block_abs_correlation
        return r is not None and r > self.flag_above

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "num_images": self.num_images, "steps": self.steps,
                "top_block_correlation": self.top_block_correlation,
                "top_block_abs_correlation": self.top_block_abs_correlation, "flag_above": self.flag_above,
                "flagged": self.flagged}

    def markdown(self) -> str:
        lines = [f"{self.method}: {self.num_images} images, Spearman rank correlation with the original maps",
                 "", "| step | randomised (cascading from the top) | mean | s.e. | mean abs | s.e. |",
                 "|---:|---|---:|---:|---:|---:|"]
        for i, s in enumerate(self.steps, 1):
            lines.append(f"| {i} | {s['randomized']} | {s['mean']:.3f} | {s['se']:.3f} | {s['abs_mean']:.3f} | "
                         f"{s['abs_se']:.3f} |")
        verdict = (f"FLAGGED: maps barely change (|r| = {self.top_block_abs_correlation:.3f} > {self.flag_above} after "
                   "the classifier and the top block are random)" if self.flagged else
                   "passes: the maps change when the learned weights go")
        return "\n".join(lines + ["", verdict])


def sanity(net: Any, method: Any, x: torch.Tensor, depth: int | None = 3, seed: int = 0,
           flag_above: float = FLAG_ABOVE, chunk: int = 8) -> SanityResult:
    """Cascading randomisation of ``net`` for ``method`` (a :class:`~camloc.methods.MapMethod`) on
    the preprocessed images ``x (B, 3, H, W)``: ``depth`` steps (``None``: every block)."""
    from camloc.methods.base import logits_of, module_of
    from camloc.models.net import evaluating

    model = module_of(net)
    with evaluating(model), torch.no_grad():
        classes = torch.cat([logits_of(model(x[s : s + chunk])).argmax(1) for s in range(0, len(x), chunk)])

    def maps_of(n: Any) -> np.ndarray:
        out = [method(n, x[s : s + chunk], classes[s : s + chunk, None])[:, 0] for s in range(0, len(x), chunk)]
        return torch.cat(out).detach().float().cpu().numpy()

    original = maps_of(net)
    result = SanityResult(getattr(method, "name", type(method).__name__), num_images=len(x), flag_above=flag_above)
    copy_net = copy.deepcopy(net)
    names = blocks(module_of(copy_net))
    for i, (name, block) in enumerate(names[: depth if depth else len(names)]):
        randomize(block, seed + i)
        rs = np.array([spearman(o, m) for o, m in zip(original, maps_of(copy_net))])
        result.steps.append({"randomized": ", ".join(n or "all" for n, _ in names[: i + 1]),
                             "block": name or "all", "mean": float(rs.mean()), "se": _se(rs),
                             "abs_mean": float(np.abs(rs).mean()), "abs_se": _se(np.abs(rs)),
                             "per_image": rs.round(4).tolist()})
    return result


def _se(v: np.ndarray) -> float:
    """The standard error of the mean of ``v`` (0 for one value)."""
    return float(v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0


def sanity_many(net: Any, methods: Sequence[Any], x: torch.Tensor, **kwargs: Any) -> list[SanityResult]:
    return [sanity(net, m, x, **kwargs) for m in methods]
