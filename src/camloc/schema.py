"""JSON Schema of the lines of ``results.jsonl`` (see DESIGN.md), for validating outputs: the run's
header line (:data:`HEADER`, first; :mod:`camloc.provenance`) and one record per image
(:data:`RECORD`); :data:`LINE` is either."""

from __future__ import annotations

BOX = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 4, "maxItems": 4}

PREDICTION = {
    "type": "object",
    "required": ["rank", "class_index", "label", "score", "logit", "box", "threshold"],
    "properties": {
        "rank": {"type": "integer", "minimum": 1},
        "class_index": {"type": "integer", "minimum": 0},
        "label": {"type": "string"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "logit": {"type": "number"},
        "box": {"oneOf": [BOX, {"type": "null"}]},
        "boxes": {"type": "array", "items": BOX},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "norm": {"type": "string", "pattern": r"^(minmax|positive|percentile(:[0-9.eE+-]+)?|meanstd(:[0-9.eE+-]+)?)$"},
        "clamp_negative": {"type": "boolean"},
        "calibrated": {"type": "boolean"},
        "warning": {"type": "string"},
    },
}

RECORD = {
    "type": "object",
    "required": ["image", "error"],
    "properties": {"image": {"type": "string"}, "error": {"type": ["string", "null"]}},
    "oneOf": [
        {
            "required": ["width", "height", "model", "predictions"],
            "properties": {
                "error": {"type": "null"},
                "width": {"type": "integer", "minimum": 1},
                "height": {"type": "integer", "minimum": 1},
                "model": {"type": "string"},
                "tta": {"type": "string"},
                "predictions": {"type": "array", "items": PREDICTION, "minItems": 1},
            },
        },
        {"properties": {"error": {"type": "string"}}, "not": {"required": ["predictions"]}},
    ],
}

# The first line of a ``results.jsonl``: how its records were made (camloc.provenance.run_header).
HEADER = {
    "type": "object",
    "required": ["camloc_run"],
    "additionalProperties": False,
    "properties": {"camloc_run": {
        "type": "object",
        "required": ["camloc_version", "model", "weights_sha256", "geometry", "backend", "method", "norm",
                     "threshold", "temperature"],
        "properties": {
            "camloc_version": {"type": "string"},
            "model": {"type": "string"},
            "weights_sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "num_classes": {"type": "integer", "minimum": 1},
            "geometry": {"type": "object", "required": ["mode", "side", "views"],
                         "properties": {"mode": {"enum": ["aspect", "squash"]},
                                        "side": {"oneOf": [{"type": "integer", "minimum": 1},
                                                           {"type": "array", "items": {"type": "integer"}}]},
                                        "views": {"type": "string"},
                                        "long_step": {"type": "integer", "minimum": 32}}},
            "backend": {"enum": ["torch", "onnxruntime"]},
            "method": {"type": "string"},
            "norm": PREDICTION["properties"]["norm"],
            "threshold": {"type": "number", "minimum": 0, "maximum": 1},
            "clamp_negative": {"type": "boolean"},
            "temperature": {"type": "number", "exclusiveMinimum": 0},
            "temperature_views": {"type": ["string", "null"]},
            "calibration": {"type": ["string", "null"]},
            "topk": {"type": "integer", "minimum": 1},
        },
    }},
}

LINE = {"oneOf": [HEADER, RECORD]}

# ``discover.json`` (``camloc discover``): per class, its patterns with their shares and exemplars.
_LABEL_COUNT = {"type": "object", "required": ["label", "count"],
                "properties": {"label": {"type": "string"}, "count": {"type": "integer", "minimum": 1}}}
_EXEMPLAR = {"type": "object", "required": ["image", "box", "label", "distance"],
             "properties": {"image": {"type": "string"}, "box": BOX, "label": {"type": ["string", "null"]},
                            "distance": {"type": "number", "minimum": 0}}}
_PATTERN = {"type": "object", "required": ["pattern", "share", "num_images", "labels", "exemplars", "images"],
            "properties": {"pattern": {"type": "integer", "minimum": 1},
                           "share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                           "num_images": {"type": "integer", "minimum": 1},
                           "labels": {"type": "array", "items": _LABEL_COUNT},
                           "exemplars": {"type": "array", "items": _EXEMPLAR, "minItems": 1},
                           "images": {"type": "array", "items": {"type": "string"}, "minItems": 1}}}
DISCOVERY = {
    "type": "object",
    "required": ["model", "probe", "num_images", "num_errors", "errors", "threshold", "norm", "within", "classes"],
    "properties": {
        "model": {"type": "string"}, "probe": {"type": ["string", "null"]},
        "num_images": {"type": "integer", "minimum": 0}, "num_errors": {"type": "integer", "minimum": 0},
        "errors": {"type": "array", "items": {"type": "string"}},
        "threshold": {"type": "number", "minimum": 0, "maximum": 1}, "norm": {"enum": ["minmax", "positive"]},
        "within": {"type": "integer", "minimum": 0},
        "classes": {"type": "array", "items": {
            "type": "object",
            "required": ["class_index", "label", "num_images", "k_choice", "silhouette", "patterns", "figure"],
            "properties": {"class_index": {"type": "integer", "minimum": 0}, "label": {"type": "string"},
                           "num_images": {"type": "integer", "minimum": 0},
                           "k_choice": {"enum": ["silhouette", "fixed", "single", "none"]},
                           "silhouette": {"type": ["number", "null"], "minimum": -1, "maximum": 1},
                           "patterns": {"type": "array", "items": _PATTERN},
                           "figure": {"type": "string"}}}},
    },
}
