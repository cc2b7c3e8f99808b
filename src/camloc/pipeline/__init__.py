"""The one inference pipeline every command uses:

    inputs (streamed) -> decode workers -> resize mode -> shape buckets -> batch
      -> backend (torch | onnxruntime, cached graph | gradient method)
      -> (logits, classes, maps) -> boxes -> records (streamed JSONL) | evaluators | features

See :class:`~camloc.pipeline.run.Pipeline`. Names are imported on first use, so the torch-free
parts (geometry, input discovery, records) load without torch.
"""

from camloc._lazy import lazy_exports

_EXPORTS = {
    "MODES": "camloc.pixels.geometry", "Resize": "camloc.pixels.geometry",
    "parse_resize": "camloc.pixels.geometry", "iter_paths": "camloc.pipeline.inputs",
    "Job": "camloc.pipeline.run", "Pipeline": "camloc.pipeline.run", "Result": "camloc.pipeline.run",
    "as_jobs": "camloc.pipeline.run", "shard": "camloc.pipeline.run",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
