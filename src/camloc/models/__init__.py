"""Models: finding (feature layer, classifier), the registry, the embedded default."""

from camloc.errors import HeadError, ModelError
from camloc.models.heads import Head, find_head
from camloc.models.net import CamNet, Preprocessing
from camloc.models.registry import available_models, load_model, register

__all__ = ["CamNet", "Head", "HeadError", "ModelError", "Preprocessing", "available_models", "find_head",
           "load_model", "register"]
