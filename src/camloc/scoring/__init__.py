"""Scoring maps against samples, written once: :func:`score` (one map, one sample -> an
:class:`Outcome`), :class:`Tally` (outcomes -> the evaluators of :mod:`camloc.metrics`),
:class:`Pool` (chunks scored in worker processes, merged in order) and :func:`evaluate_maps`
(saved maps against WSOL metadata). ``camloc evaluate``, ``camloc evaluate-maps`` and the
reproduction all score through here. Torch-free."""

from camloc.scoring.outcome import Outcome, Scoring, Tally, protocol_map, score, tally_chunk
from camloc.scoring.parallel import Pool
from camloc.scoring.saved import MapsResult, evaluate_maps, load_map, map_path

__all__ = ["MapsResult", "Outcome", "Pool", "Scoring", "Tally", "evaluate_maps", "load_map", "map_path",
           "protocol_map", "score", "tally_chunk"]
