"""Pieces the commands share: option checks and loading a net for a map method."""

from __future__ import annotations

import argparse


def add_model_arguments(p: argparse.ArgumentParser, probe: bool = True, default: str | None = None,
                        geometry: str | None = "default") -> None:
    """``--model`` and ``--weights`` (and ``--probe``): the net a command reads maps from
    (``default``: what the help says is loaded without ``--model``; by default
    :func:`camloc.defaults.model_help` with ``geometry``, the geometry the command runs it at,
    ``"default"`` for localize's)."""
    from camloc.defaults import model_help

    p.add_argument("--model", default=None, help="registered name, torchvision name or checkpoint file "
                   f"(default: {default or (model_help(probe) if geometry == 'default' else model_help(probe, geometry))})")
    p.add_argument("--weights", default=None, help="local state-dict file for a torchvision --model")
    if probe:
        p.add_argument("--probe", default=None, help="a probe file (camloc probe fit): the scores and maps of "
                       "its classes on the model's features")


def norm_type(text: str) -> str:
    """argparse ``type`` of ``--norm``: a reading of ``camloc.readings.NORMS`` (torch-free)."""
    from camloc.readings import check_norm

    try:
        return check_norm(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_norm_argument(p: argparse.ArgumentParser, default: str | None = "minmax", clamp: bool = False,
                      shown: str = "minmax") -> None:
    """``--norm`` (how a signed map is read for its boxes, see ``camloc.readings.NORMS``; ``shown``: the
    reading the help names as the default) and, with ``clamp``, ``--clamp-negative`` (maps from the
    classifier's positive weights only)."""
    mark = {n: "default; " if n == shown else "" for n in ("minmax", "positive")}
    p.add_argument("--norm", default=default, type=norm_type, metavar="READING",
                   help=f"how a signed map is read for its boxes: minmax ({mark['minmax']}the published evaluation "
                   f"code), positive ({mark['positive']}its positive part over its max: the paper's '20%% of the max'), "
                   "percentile[:Q] (floor at the map's Q-th percentile, default the median) or meanstd[:K] "
                   "(floor at the mean, top at mean + K std, default K=2)")
    if clamp:
        p.add_argument("--clamp-negative", action="store_true",
                       help="CAM maps from the classifier's positive weights only (scores unchanged)")


def add_pipeline_arguments(p: argparse.ArgumentParser, resize_help: str) -> None:
    """``--backend``, ``--resize`` and ``--workers``: how the inference pipeline runs."""
    from camloc.defaults import add_backend_argument, add_workers_argument

    add_backend_argument(p)
    p.add_argument("--resize", default=None, metavar="MODE[:S]", help=resize_help)
    add_workers_argument(p)
    p.add_argument("--isolate", action="store_true",
                   help="decode in worker processes instead of threads: a decoder that crashes costs its "
                   "image only (an error record), not the run")


def check_pipeline_options(args: argparse.Namespace) -> None:
    """One-line errors for ``--workers`` and ``--resize`` (torch-free)."""
    from camloc.defaults import check_workers
    from camloc.pixels.geometry import parse_resize

    check_workers(args.workers)
    if args.resize is not None:
        parse_resize(args.resize)


def resize_option(text: str | None, net, default=None):
    """``--resize`` for ``net``: ``text`` parsed, ``aspect`` without a size meaning the default
    geometry's side when it is an aspect one (``default``, else localize's
    :func:`camloc.localize.default_resize`), else the net's own side; no ``text``: that default."""
    from camloc.localize import default_resize
    from camloc.pixels.geometry import parse_resize, side_for

    default = default or default_resize(net)
    if text is None:
        return default
    side = default.size if default.mode == "aspect" else side_for(net.preprocessing.shape)
    return parse_resize(text, default_side=side)


def model_for(model: str | None, weights: str | None, probe: str | None) -> str | None:
    """The net to load: ``model`` as named; with a probe and neither ``--model`` nor ``--weights``,
    the backbone the probe was fit on (its registered name); else ``None`` (the default net)."""
    if probe and model is None and weights is None:
        from camloc.probe import load_probe

        return load_probe(probe).backbone
    return model


def load_net(model: str | None, weights: str | None, device: str, method: str = "cam", probe: str | None = None):
    """The net for ``method``: CAM needs an exact head; a gradient method also takes a torchvision
    net whose head CAM refuses (VGG, MobileNetV3, ...). With ``probe`` (a probe file, ``--probe``)
    the probe's classes replace the net's head; with a probe and no ``model``, the net is the
    probe's backbone (the one it was fit on), by its registered name."""
    from camloc.errors import HeadError
    from camloc.models.registry import load_model

    model = model_for(model, weights, probe)
    try:
        net = load_model(model, weights=weights, device=device)
    except HeadError:
        if method == "cam" or model is None:
            raise
        from camloc.models.loading import load_for_gradients

        net = load_for_gradients(model, weights).to(device)
    if probe:
        from camloc.probe import attach_probe

        net = attach_probe(net, probe)
    return net
