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
        "norm": {"enum": ["minmax", "positive"]},
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
                "predictions": {"type": "array", "items": PREDICTION, "minItems": 1},
            },
        },
        {"properties": {"error": {"type": "string"}}, "not": {"required": ["predictions"]}},
    ],
}
