"""Export a CAM network to ONNX: one graph gives the scores, the top-k classes and their maps.

The exported graph takes preprocessed images ``images (B, 3, H, W)`` (any batch size) and
returns ``logits (B, C)``, ``classes (B, k)`` (int64, best first) and ``maps (B, k, h, w)``: the
raw class activation maps ``M_c = sum_k w_k^c f_k`` of the top-k classes, from the same single
forward pass as :func:`camloc.cam`. With a probe attached, the scores and maps are the probe's.
So ONNX Runtime (or any ONNX runtime) localizes without PyTorch; boxes are the paper's rule on
the upsampled maps (:func:`camloc.boxes_from_map`, or any thresholding).

The file's metadata (``metadata_props``) carries what a consumer needs: ``camloc.model``,
``camloc.class_names`` (JSON list), ``camloc.preprocessing`` (JSON: the input shape under the key ``size``, as (H, W), ``mean``,
``std``; pixels are scaled to [0, 1] first), ``camloc.topk`` and ``camloc.bias`` (JSON list, so
``mean(maps) + bias[classes] == logits[classes]`` can be checked).
"""

from __future__ import annotations

import io
import json
import os
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from camloc.cam import class_maps
from camloc.extract import extract
from camloc.models.net import CamNet, evaluating


class CamGraph(nn.Module):
    """``x -> (logits, classes, maps)`` in one forward pass of ``net`` (what gets exported): the
    features and scores of :func:`camloc.extract.extract`, then the top-k classes' maps."""

    def __init__(self, net: CamNet, topk: int) -> None:
        super().__init__()
        self.module = net.module  # registered, so the tracer sees its parameters
        self.probe = net.probe
        self.net = _Unregistered(net)
        self.topk = int(topk)
        self.register_buffer("weight", net.classifier.weight.detach().clone().float())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        features, logits = extract(self.net.net, x)
        classes = logits.topk(self.topk, dim=1).indices
        return logits, classes, class_maps(features, self.weight, classes)


@dataclass
class _Unregistered:
    """Holds the :class:`CamNet` without making it a second path to the same submodules."""

    net: CamNet


@dataclass
class ExportReport:
    """Where the graph went and how its outputs compare with :func:`camloc.cam` on a test batch
    (``None`` when ONNX Runtime is not installed)."""

    path: str
    classes_equal: bool | None
    max_map_error: float | None
    max_logit_error: float | None
    map_shape: tuple[int, int] | None = None  # (h, w) of the maps, when checked

    def __str__(self) -> str:
        if self.classes_equal is None:
            return f"{self.path} (not checked: onnxruntime is not installed)"
        return (f"{self.path}: ONNX Runtime gives the same top-k classes as camloc ({self.classes_equal}), "
                f"maps within {self.max_map_error:.2e}, logits within {self.max_logit_error:.2e}")


def export_onnx(net: CamNet, path: str | os.PathLike, topk: int = 5, opset: int = 17, check: bool = True) -> ExportReport:
    """Write ``net`` as an ONNX graph of scores, top-``topk`` classes and maps (atomically), and
    check it with ONNX Runtime against :func:`camloc.cam` on two test images.

    Raises:
        ValueError: a head where CAM is refused, ``topk`` outside ``1..C``, or a graph whose
            outputs do not match camloc's (one line).

    Examples:
        >>> import os, tempfile
        >>> from camloc.testing.nets import colour_net
        >>> report = camloc.export_onnx(colour_net(), os.path.join(tempfile.mkdtemp(), "m.onnx"), topk=2)
        >>> report.classes_equal, report.max_map_error < 1e-4
        (True, True)
    """
    from camloc.io import atomic_write_bytes

    _require(net, topk, "camloc export")
    data = _with_metadata(graph_bytes(net, topk, opset), net, topk)
    atomic_write_bytes(path, data)
    report = ExportReport(os.fspath(path), None, None, None)
    if check:
        report = _check(net, data, report, topk)
    return report


def graph_bytes(net: CamNet, topk: int, opset: int = 17) -> bytes:
    """The ONNX graph of :class:`CamGraph` (dynamic batch, the preprocessing's image size)."""
    h, w = net.preprocessing.shape
    graph = CamGraph(net, topk).to(net.device)
    example = torch.zeros(1, 3, h, w, device=net.device)
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), evaluating(graph):
        warnings.simplefilter("ignore")  # the tracer's notes on the hook and the top-k are expected
        torch.onnx.export(graph, (example,), buf, input_names=["images"], output_names=["logits", "classes", "maps"],
                          dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}, "classes": {0: "batch"},
                                        "maps": {0: "batch"}},
                          opset_version=opset, dynamo=False)
    return buf.getvalue()


def _require(net: CamNet, topk: int, what: str) -> None:
    """One-line errors before any work: the onnx package ``what`` needs, a head where CAM is
    refused, ``topk`` outside ``1..C``."""
    try:
        import onnx  # noqa: F401  (the exporter and the metadata need it)
    except ImportError:
        raise RuntimeError(f"{what} needs the onnx package: pip install onnx") from None
    if getattr(net, "cam_refused", False):
        raise ValueError(f"{net.name}: CAM is refused for this head, so there are no maps to export")
    if not 1 <= topk <= net.num_classes:
        raise ValueError(f"topk must be in 1..{net.num_classes}, got {topk}")


def _with_metadata(data: bytes, net: CamNet, topk: int) -> bytes:
    import onnx

    model = onnx.load_from_string(data)
    meta = {
        "camloc.model": net.name,
        "camloc.class_names": json.dumps(list(net.class_names)),
        "camloc.preprocessing": json.dumps(net.preprocessing.to_dict()),
        "camloc.topk": str(topk),
        "camloc.bias": json.dumps(net.bias.float().cpu().tolist()),
    }
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    return model.SerializeToString()


def _check(net: CamNet, data: bytes, report: ExportReport, topk: int) -> ExportReport:
    try:
        import onnxruntime as ort
    except ImportError:
        return report
    from camloc.extract import cam

    h, w = net.preprocessing.shape
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 3, h, w)).astype(np.float32))
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    logits, classes, maps = session.run(None, {"images": x.numpy()})
    ref = cam(net, x.to(net.device), topk=topk)
    ref_maps = ref.maps.float().cpu().numpy()
    same = bool((classes == ref.classes.cpu().numpy()).all())
    map_err = float(np.abs(maps - ref_maps).max())
    logit_err = float(np.abs(logits - ref.logits.float().cpu().numpy()).max())
    scale = float(np.abs(ref_maps).max()) + 1.0
    if not same or map_err > 1e-3 * scale:
        raise ValueError(f"{report.path}: the exported graph disagrees with camloc (classes equal: {same}, "
                         f"max map error {map_err:.3g})")
    return ExportReport(report.path, same, map_err, logit_err, (int(maps.shape[2]), int(maps.shape[3])))


def read_metadata(path: str | os.PathLike) -> dict[str, object]:
    """The camloc metadata of an exported file: model, class names, preprocessing, topk, bias."""
    import onnx

    props = {p.key: p.value for p in onnx.load(os.fspath(path), load_external_data=False).metadata_props}
    if "camloc.model" not in props:
        raise ValueError(f"{os.fspath(path)}: not an ONNX file exported by camloc (no camloc metadata)")
    return {"model": props["camloc.model"], "class_names": json.loads(props["camloc.class_names"]),
            "preprocessing": json.loads(props["camloc.preprocessing"]), "topk": int(props["camloc.topk"]),
            "bias": json.loads(props["camloc.bias"])}
