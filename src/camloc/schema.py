"""JSON Schema of a ``results.jsonl`` record (see DESIGN.md), for validating outputs."""

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
