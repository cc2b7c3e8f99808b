"""Linear probes on the GAP features of a frozen backbone: CAMs for new tasks.

The global-average-pooled features ``F_k = mean_xy f_k(x, y)`` of a network trained on one task
localize for other tasks: fit a linear classifier ``S_c = sum_k w_k^c F_k + b_c`` on them with
image labels only, and the class activation map of class ``c`` is

    M_c(x, y) = sum_k w_k^c f_k(x, y),      with   mean_xy M_c + b_c = S_c   exactly.

The classifier is a linear SVM (one-vs-rest, as in the paper) or a multinomial logistic
regression (scikit-learn's ``LinearSVC`` and ``LogisticRegression`` objectives), fit for all
classes at once by full-batch L-BFGS in PyTorch (:mod:`camloc.probe.solver`) on centered and
scaled features (by default one scale for all channels, see :func:`fit_linear`); the scaling is folded back into the weights (``w' = w / s``,
``b' = b - w . (m / s)``) so that the stored probe acts on the raw pooled features and its CAM
stays exact.

Two classes: the fit gives one decision function ``d`` (positive for the second class).
The probe stores two rows so that the usual argmax and CAM code work unchanged:
``[-w, w]`` for the SVM (the second row's score is ``d`` itself, the first row's ``-d``) and
``[-w/2, w/2]`` for logistic regression (then ``softmax`` of the two scores is exactly
``predict_proba``, ``sigmoid(d)``).

Pooled features are cached on disk, keyed by the backbone's identity (name, architecture
options, a hash of all its weights but its own classifier's, the feature width and pooling),
the preprocessing, and the list of image files with their sizes and modification times (and
crop boxes); a second fit with other settings reads them back instead of running the network
again.
"""

from camloc._lazy import lazy_exports

_MODULES = {
    "camloc.errors": ("ProbeError",),
    "camloc.probe.base": ("CACHE_FORMAT", "DEFAULT_CS", "PROBE_FORMAT", "Classifier", "Scaling", "default_cache_dir"),
    "camloc.probe.features": ("Features", "backbone_digest", "backbone_identity", "compute_features", "crop_box",
                              "extract_features", "feature_dim", "feature_key", "load_feature_cache",
                              "save_feature_cache", "weights_digest"),
    "camloc.probe.files": ("attach_probe", "check_probe", "load_probe", "save_probe"),
    "camloc.probe.linear": ("Probe",),
    "camloc.probe.fit": ("align_labels", "evaluate_probe", "fit_linear", "fit_probe", "fit_probe_on_features"),
    "camloc.probe.maps": ("CamBox", "MapResult", "box_and_peak", "cam_boxes", "cam_maps"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = [
    "CACHE_FORMAT", "DEFAULT_CS", "PROBE_FORMAT", "CamBox", "Classifier", "Scaling", "Features", "MapResult", "Probe", "ProbeError",
    "align_labels", "attach_probe", "backbone_digest", "backbone_identity", "box_and_peak", "cam_boxes", "cam_maps",
    "check_probe", "compute_features", "crop_box", "default_cache_dir", "evaluate_probe", "extract_features",
    "feature_dim", "feature_key", "fit_linear", "fit_probe", "fit_probe_on_features", "load_feature_cache",
    "load_probe", "save_feature_cache", "save_probe", "weights_digest",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
