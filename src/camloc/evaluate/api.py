"""``camloc.evaluate(model, data)``: the evaluation from Python, returning the metrics dict that
``camloc evaluate`` writes to ``metrics.json``."""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

from camloc.data.base import Split


def evaluate(model: Any, data: str | os.PathLike | Split, split: str = "val", *, format: str = "auto",
             weights: str | os.PathLike | None = None, device: str | None = None,
             **options: Any) -> dict[str, Any]:
    """Evaluate a classifier's maps on a dataset with boxes (or masks): classification error, the
    paper's localization errors and GT-known accuracy, MaxBoxAcc/MaxBoxAccV2, PxAP.

    Args:
        model: anything :func:`camloc.load_model` takes (a :class:`camloc.CamNet`, a name, a
            checkpoint file, an ``nn.Module``); a gradient method (``method="gradcam"``) also
            takes nets whose head CAM refuses.
        data: a dataset root (ILSVRC, CUB, WSOL metadata, a folder: see ``camloc evaluate``)
            or a :class:`camloc.data.base.Split`.
        split: the split to read from ``data`` (``"val"``, ``"test"``, ...).
        format: ``"auto"`` or a format name of :func:`camloc.data.open_dataset`.
        **options: fields of :class:`camloc.evaluate.EvalOptions`, e.g. ``method="gradcam"``,
            ``norm="positive"``, ``resize=Resize("aspect", 256)``, ``faithfulness=True``.

    Returns:
        ``{"num_images": ..., "top1_cls_error": ..., "gt_known_loc_acc": ..., "MaxBoxAcc": ...,
        "MaxBoxAccV2": ..., ..., "num_skipped": N, "skipped": [...]}``: plain numbers, in
        percent, as in ``metrics.json``.

    Example (a hand-built net whose maps are the fixture's objects: every box is found):

        >>> import tempfile, camloc
        >>> from camloc.testing import write_wsol_fixture
        >>> from camloc.testing.nets import colour_net
        >>> root = write_wsol_fixture(tempfile.mkdtemp(), "test", num_classes=3, per_class=2).root
        >>> m = camloc.evaluate(colour_net(), root, "test", progress=False)
        >>> m["num_images"], m["top1_cls_error"], m["gt_known_loc_acc"], m["MaxBoxAcc"]
        (6, 0.0, 100.0, 100.0)
        >>> camloc.evaluate(colour_net(), root, "test", method="gradcam", progress=False)["method"]
        'gradcam'
        >>> camloc.evaluate(colour_net(), root, "test", colour=True)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: camloc.evaluate: unknown option(s) colour; expected backend, batch_size, ...
    """
    from camloc.data import open_dataset
    from camloc.evaluate.harness import evaluate as run_evaluation
    from camloc.evaluate.options import EvalOptions

    known = {f.name for f in fields(EvalOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"camloc.evaluate: unknown option(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
    opts = EvalOptions(**{"examples": 0, **options})
    net = _net(model, weights, device, opts.method)
    samples = data if isinstance(data, Split) else open_dataset(data, split, format)
    result = run_evaluation(net, samples, opts)
    skipped = list(samples.skipped) + result.skipped
    metrics = {k: v.item() if hasattr(v, "item") else v for k, v in result.metrics.items()}  # plain numbers
    return {**metrics, "num_skipped": len(skipped), "skipped": skipped}


def _net(model: Any, weights: str | os.PathLike | None, device: str | None, method: str) -> Any:
    """The net for ``method``: CAM needs an exact head; a gradient method also takes a named net
    whose head CAM refuses."""
    from camloc.errors import HeadError
    from camloc.models import CamNet, load_model

    if isinstance(model, CamNet):
        return model.to(device) if device else model
    try:
        return load_model(model, weights=weights, device=device)
    except HeadError:
        if method == "cam" or not isinstance(model, (str, os.PathLike)):
            raise
        from camloc.models.loading import load_for_gradients

        return load_for_gradients(os.fspath(model), os.fspath(weights) if weights else None).to(device or "cpu")
