"""``--tta``'s names where users know them: the views stage lives in :mod:`camloc.pipeline.views`
(this module only re-exports it)."""

from camloc.pipeline.views import (  # noqa: F401
    TTA,
    Paired,
    fused_logits,
    fused_maps,
    iter_views,
    map_weight,
    parse_tta,
    run_views,
)

__all__ = ["TTA", "Paired", "fused_logits", "fused_maps", "iter_views", "map_weight", "parse_tta", "run_views"]
