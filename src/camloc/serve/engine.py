"""One uploaded image -> the record ``camloc localize`` writes for it, plus the raw maps the page
draws.

The upload is sniffed with Pillow (its content, never its name or Content-Type), checked against
Pillow's decompression-bomb guard, then written to a private temporary file and run through the
same :class:`camloc.pipeline.Pipeline` and :func:`camloc.localize.predictions_for` as the command:
the same decoder (EXIF rotation, reduced JPEG decoding), geometry and box rule, so the record is
the command's. Nothing uploaded is unpickled: bytes only ever reach Pillow's image decoders.

The model is loaded once; a lock lets one request at a time use it (the backends keep state).
"""

from __future__ import annotations

import io
import os
import tempfile
import threading
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from camloc.errors import ServeError, one_line
from camloc.readings import DEFAULT_NORM

from camloc.method_names import NAMES as METHODS  # the map methods the page offers: every registered one
MAX_UPLOAD = 20 * 1024 * 1024  # bytes; a larger request gets 413
MAX_TOPK = 20


@dataclass
class Options:
    """A request's options, checked: ``topk`` classes, box ``threshold``, map ``method``, an extra
    ``cls`` (index or label) to map besides the top-k, and ``norm`` (how a map is read for boxes)."""

    topk: int = 5
    threshold: float = 0.2
    method: str = "cam"
    cls: str | None = None
    norm: str = DEFAULT_NORM


def parse_options(form: dict[str, Any], default_method: str = "cam") -> Options:
    """Form fields -> :class:`Options`; a bad value is a 400 naming the field."""
    def number(key: str, cast, default):
        raw = form.get(key)
        if raw is None or str(raw).strip() == "":
            return default
        try:
            return cast(str(raw).strip())
        except ValueError:
            raise ServeError(400, f"field {key!r}: not a number ({str(raw)[:40]!r})") from None

    topk = number("topk", int, 5)
    if not 1 <= topk <= MAX_TOPK:
        raise ServeError(400, f"field 'topk': must be in 1..{MAX_TOPK}, got {topk}")
    threshold = number("threshold", float, 0.2)
    if not 0.0 <= threshold < 1.0:
        raise ServeError(400, f"field 'threshold': must be in [0, 1), got {threshold}")
    method = str(form.get("method") or default_method)
    if method not in METHODS:
        raise ServeError(400, f"field 'method': unknown map method {method[:40]!r}; expected one of {', '.join(METHODS)}")
    norm = str(form.get("norm") or DEFAULT_NORM)
    if norm not in ("minmax", "positive"):
        raise ServeError(400, f"field 'norm': expected minmax or positive, got {norm[:40]!r}")
    cls = form.get("class")
    cls = None if cls is None or str(cls).strip() == "" else str(cls).strip()
    return Options(topk, threshold, method, cls, norm)


def sniff(data: bytes, name: str) -> str:
    """The image format Pillow reads in ``data`` (e.g. ``"PNG"``), from the content alone.

    Raises:
        ServeError: 400 for an empty upload, 415 for content that is not an image Pillow knows,
            413 for an image over Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``).
    """
    if not data:
        raise ServeError(400, f"{name}: empty upload")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as img:
                fmt, (w, h) = img.format, img.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ServeError(413, f"{name}: over Pillow's decompression-bomb limit ({err})") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ServeError(415, f"{name}: not an image (unrecognised format)") from None
    limit = Image.MAX_IMAGE_PIXELS
    if limit and w * h > limit:
        raise ServeError(413, f"{name}: {w}x{h} pixels is over Pillow's decompression-bomb limit ({limit} pixels)")
    return str(fmt)


class Engine:
    """The loaded model and one backend per map method, shared by every request."""

    def __init__(self, net, backend: str = "auto", model_label: str | None = None, resize: Any = None,
                 temperature: float | None = None, method: str = "cam",
                 method_options: dict[str, Any] | None = None) -> None:
        """``temperature``: the scores' (a calibration file's, as ``localize`` finds it); ``None``:
        the one shipped for an embedded net at this geometry, else 1. ``method`` (with its
        ``method_options``): the map method the page opens with and a request without a ``method``
        field gets (``serve --method``); cam on a head that refuses it opens with gradcam."""
        from camloc.localize import BOX_CAP, default_resize, score_temperature
        from camloc.pipeline.backends import make_backend

        self.net = net
        self.resize = resize or default_resize(net)  # localize's geometry for this net
        self.temperature = float(temperature) if temperature is not None else score_temperature(net, self.resize)[0]
        self.box_cap = BOX_CAP
        self.cam_refused = bool(getattr(net, "cam_refused", False))
        self._backend = None if self.cam_refused else make_backend(net, backend)
        self._methods: dict[str, Any] = {}
        self._lock = threading.Lock()
        self.model_label = model_label or net.name
        if method not in METHODS:
            raise ValueError(f"serve: unknown map method {str(method)[:40]!r}; expected one of {', '.join(METHODS)}")
        self.default_method = "gradcam" if method == "cam" and self.cam_refused else method
        if method_options and self.default_method != "cam":
            from camloc.methods import get_method

            self._methods[self.default_method] = get_method(self.default_method, **method_options)

    def info(self) -> dict[str, Any]:
        """What ``GET /api/models`` returns: the loaded model, its classes and the options."""
        from camloc.models.registry import available_models

        return {
            "model": self.net.name,
            "num_classes": self.net.num_classes,
            "class_names": list(self.net.class_names),
            "methods": [m for m in METHODS if not (m == "cam" and self.cam_refused)],
            "default_method": self.default_method,
            "backend": "torch" if self._backend is None else getattr(self._backend, "name", "torch"),
            "resize": f"{self.resize.mode}:{self.resize.size}",
            "temperature": self.temperature,
            "box_cap": self.box_cap,
            "max_upload": MAX_UPLOAD,
            "available": available_models(),
        }

    def _method(self, name: str):
        if name == "cam":
            if self.cam_refused:
                raise ServeError(400, f"{self.net.name}: CAM is refused for this head; pick gradcam or gradcampp")
            return None
        if name not in self._methods:
            from camloc.methods import get_method

            try:
                self._methods[name] = get_method(name)
            except ValueError as err:  # e.g. a method that needs an option the page does not send
                raise ServeError(400, f"field 'method': {one_line(err)}") from None
        return self._methods[name]

    def localize(self, data: bytes, name: str, opts: Options) -> dict[str, Any]:
        """The response for one upload: ``record`` (what ``camloc localize`` writes for this image:
        the same :func:`camloc.localize.iter_localize`), ``maps`` (the raw maps of its predictions,
        same order: ``{"class_index", "shape": [h, w], "data": row-major float32 values}``), and
        with ``opts.cls`` a ``selected`` prediction (``rank`` is the class's rank among all
        classes) with its ``selected_map``."""
        from camloc.localize import iter_localize
        from camloc.pipeline.run import Job
        from camloc.units import class_index

        fmt = sniff(data, name)
        wanted = None
        if opts.cls is not None:
            try:
                wanted = class_index(self.net, opts.cls, "field 'class'")
            except ValueError as err:
                raise ServeError(400, str(err)) from None
        with tempfile.TemporaryDirectory(prefix="camloc-serve-") as tmp:
            path = os.path.join(tmp, "upload." + fmt.lower())
            with open(path, "wb") as f:
                f.write(data)
            with self._lock:
                method = self._method(opts.method)
                backend = self._backend if self._backend is not None else "torch"
                try:
                    item = next(iter_localize(self.net, [Job(path, 0, name)], topk=opts.topk,
                                              threshold=opts.threshold, batch_size=1, progress=False,
                                              method=method, norm=opts.norm, backend=backend, resize=self.resize,
                                              workers=0, box_cap=self.box_cap, temperature=self.temperature))
                except ValueError as err:
                    raise ServeError(422, f"{name}: {err}") from None
                record = item.record
                if record["error"] is not None:
                    raise ServeError(422, record["error"])
                out: dict[str, Any] = {"record": record, "method": opts.method,
                                       "maps": [_map_json(p["class_index"], m)
                                                for p, m in zip(record["predictions"], item.maps)]}
                if wanted is not None:
                    out["selected"], out["selected_map"] = self._selected(path, name, wanted, record, item.maps,
                                                                          method, backend, opts)
        return out

    def _selected(self, path: str, name: str, cls: int, record: dict[str, Any], maps: np.ndarray, method: Any,
                  backend: Any, opts: Options) -> tuple[dict[str, Any], dict[str, Any]]:
        """The prediction and raw map of class ``cls``: taken from the record when it is in the
        top-k, else from one more pass that maps it (:attr:`camloc.pipeline.Job.classes`), with
        its rank among all classes and the marks every prediction of the record carries."""
        from camloc.localize import predictions_for
        from camloc.pipeline.run import Job, Pipeline

        for pred, m in zip(record["predictions"], maps):
            if pred["class_index"] == cls:
                return dict(pred), _map_json(cls, m)
        pipe = Pipeline(self.net, resize=self.resize, backend=backend, method=method, topk=0, batch_size=1,
                        workers=0, progress=False)
        res = next(iter(pipe.run([Job(path, 0, name, classes=(cls,))])))
        if res.error is not None:
            raise ServeError(422, res.error)
        sel = predictions_for(self.net, res.logits, np.asarray([cls]), res.extra_maps, res.size, opts.threshold,
                              norm=opts.norm, box_cap=self.box_cap, temperature=self.temperature)[0]
        sel["rank"] = int((res.logits > res.logits[cls]).sum()) + 1
        marks = {k: v for k, v in record["predictions"][0].items() if k not in sel} if record["predictions"] else {}
        return {**sel, **marks}, _map_json(cls, res.extra_maps[0])


def _map_json(cls: int, m: np.ndarray) -> dict[str, Any]:
    """A raw map as JSON: float32 values written exactly (the shortest repr of each value reads
    back as the same float32 in the page, so its boxes use the server's numbers)."""
    m = np.asarray(m, dtype=np.float32)
    return {"class_index": int(cls), "shape": list(m.shape),
            "data": [float(v) if np.isfinite(v) else None for v in m.ravel()]}
