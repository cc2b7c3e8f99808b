"""Which architectures camloc maps exactly: the coverage table of docs/coverage.md.

Every torchvision classification architecture and a representative set of timm families is
built with random weights (its classifier and any norm after pooling given non-trivial
values), loaded with :func:`camloc.load_model` and marked

- ``exact``: GAP [+ a norm on the pooled vector] + one linear layer; the measured
  ``max |mean(M_c) + b_c - S_c|`` over all classes of two random images is given;
- ``max-pooled``: global max pooling + one linear layer (the paper's GMP maps, not exact);
- ``refused``: CAM is not exact for this head; the one-line reason camloc gives. The gradient
  methods (``--method gradcam``) still map these nets at a convolutional layer.

    .venv/bin/python -m tools.coverage docs/coverage.md

``tests/test_heads.py`` checks that the table lists every torchvision architecture and that
its verdicts hold for a sample of rows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

# timm families: (name, create_model options)
TIMM = (
    ("resnet50", {}),
    ("efficientnet_b0", {}),
    ("regnety_008", {}),
    ("convnext_tiny", {}),
    ("mobilenetv3_large_100", {}),
    ("swin_tiny_patch4_window7_224", {}),
    ("vit_small_patch16_224", {"global_pool": "avg"}),
    ("vit_small_patch16_224", {}),
    ("deit_tiny_distilled_patch16_224", {}),
    ("beit_base_patch16_224", {}),
    ("vit_medium_patch16_gap_256", {}),
)


@dataclass
class Row:
    name: str
    verdict: str  # "exact", "max-pooled" or "refused"
    detail: str  # the measured error, or the reason


def _randomize_head(net, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in (net.head.classifier, net.head.norm):
            if m is not None and getattr(m, "weight", None) is not None:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g))


def _verdict(name: str, build: Any, size: int) -> Row:
    import camloc
    from camloc.errors import HeadError

    torch.manual_seed(0)  # the architectures' own initialization: the same numbers on every run
    try:
        net = build()
    except HeadError as err:
        reason = str(err).split(": ", 1)[-1].split(", so CAM is not exact")[0]
        return Row(name, "refused", reason)
    _randomize_head(net)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    report = camloc.check_exact(net, x)
    if net.head.pooling == "max":
        return Row(name, "max-pooled", f"scores are not the maps' means ({report.max_abs_error:.1e})")
    if not report.exact:
        return Row(name, "NOT exact", f"{report.max_abs_error:.1e} at logit scale {report.scale:.1f}")
    return Row(name, "exact", f"{report.max_abs_error:.1e} at logit scale {report.scale:.1f}")


def torchvision_row(name: str) -> Row:
    """The verdict for one torchvision architecture (random weights, 10 classes)."""
    import torchvision

    import camloc

    extra: dict[str, Any] = {"aux_logits": False, "init_weights": False} if name in ("googlenet", "inception_v3") else {}

    def build():
        module: nn.Module = torchvision.models.get_model(name, weights=None, num_classes=10, **extra)
        return camloc.load_model(module)

    return _verdict(name, build, 96 if name == "inception_v3" else 64)


def timm_row(name: str, options: dict[str, Any]) -> Row:
    """The verdict for one timm architecture (random weights, 10 classes, its own input size)."""
    import camloc

    label = f"timm:{name}" + "".join(f" {k}={v!r}" for k, v in options.items())
    built: list[Any] = []

    def build():
        built.append(camloc.load_model(f"timm:{name}", num_classes=10, **options))
        return built[-1]

    row = _verdict(label, build, 224)
    if built and row.verdict == "exact":  # measured at the model's own size
        row = _verdict(label, lambda: built[0], built[0].preprocessing.shape[0])
    return row


def rows(timm: bool = True) -> list[Row]:
    import torchvision

    out = [torchvision_row(n) for n in torchvision.models.list_models(module=torchvision.models)]
    if timm:
        out += [timm_row(n, o) for n, o in TIMM]
    return out


def table(all_rows: list[Row]) -> str:
    lines = [
        "# Coverage: which architectures camloc maps exactly",
        "",
        "Every torchvision classification architecture (`torchvision.models.list_models(module=torchvision.models)`)",
        "and a representative set of timm families, built with random weights and loaded with `camloc.load_model`.",
        "`exact`: the error is `max |mean(M_c) + b_c - S_c|` over all classes of two random images (float32",
        "features, float64 sum). `refused`: the reason camloc gives; the gradient methods (`--method gradcam`)",
        "still map these nets at a convolutional layer. Produced by `.venv/bin/python -m tools.coverage",
        "docs/coverage.md`; `tests/test_heads.py` keeps it true.",
        "",
        "| architecture | CAM | measured error / reason |",
        "|---|---|---|",
    ]
    lines += [f"| `{r.name}` | {r.verdict} | {r.detail} |" for r in all_rows]
    return "\n".join(lines) + "\n"


def parse(text: str) -> dict[str, tuple[str, str]]:
    """``{architecture: (verdict, detail)}`` from a coverage table."""
    out = {}
    for line in text.splitlines():
        if line.startswith("| `"):
            name, verdict, detail = (c.strip() for c in line.strip("|").split(" | ", 2))
            out[name.strip("`")] = (verdict, detail)
    return out


def main(argv: list[str]) -> int:
    from camloc.io import atomic_write_text

    text = table(rows())
    if argv:
        atomic_write_text(argv[0], text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
