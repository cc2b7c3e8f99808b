"""Pieces the commands share: options declared and checked for several commands (the options every
command shares are :mod:`camloc.defaults`'), reading a split for a command, one-line warnings, and
loading a net for a map method."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from camloc.errors import one_line


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


def add_data_arguments(p: argparse.ArgumentParser) -> None:
    """``--data``, ``--split``, ``--format``, ``--image-root``, ``--strict`` (as ``evaluate`` reads them)."""
    p.add_argument("--data", required=True, help="dataset root with boxes (WSOL metadata, CUB, ILSVRC); with "
                   "--scores any labelled set: also class folders, or a folder with labels.csv (file,class_index) "
                   "and images/")
    p.add_argument("--split", default="val", help="split to use (default val)")
    p.add_argument("--format", default="auto", help="dataset format (default: detect)")
    p.add_argument("--image-root", default=None, help="WSOL metadata only: folder the image ids are relative to")
    p.add_argument("--strict", action="store_true", help="stop at the first bad metadata line instead of skipping")


def norms_list(text: str | None) -> tuple[str, ...]:
    """``--norms R1,R2,...``: the readings named (checked), all of them without ``text``."""
    from camloc.readings import NORMS, check_norm

    if text is None:
        return NORMS
    out = tuple(n.strip() for n in text.split(",") if n.strip())
    if not out:
        raise ValueError("--norms: give at least one reading")
    for n in out:
        check_norm(n)
    return out


def floats_type(text: str) -> list[float]:
    """argparse ``type`` of a comma list of positive numbers (``--C 0.01,0.1``)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got '{text}'") from None
    if not values or any(not v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers, got '{text}'")
    return values


def open_split(root: str, split: str, prog: str = "camloc probe"):
    """The ``split`` of the dataset at ``root`` (format detected by :func:`camloc.data.open_dataset`);
    the reader's skipped lines are reported on stderr."""
    from camloc.data import open_dataset

    data = open_dataset(root, split)
    for reason in data.skipped:
        print(f"{prog}: {reason}", file=sys.stderr)
    return data


@contextmanager
def one_line_warnings(prog: str) -> Iterator[None]:
    """Within the block, warnings print as ``<prog>: warning: <one line>`` on stderr."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"{prog}: warning: {one_line(message)}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


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
