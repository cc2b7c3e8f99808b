"""``camloc export``: the network as one ONNX graph of scores, top-k classes and their maps."""

from __future__ import annotations

import argparse

NAME = "export"
HELP = "export a model (or a probe on its backbone) to ONNX: scores, top-k classes and CAMs in one graph"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments
    from camloc.defaults import add_topk_argument

    add_model_arguments(p, geometry="at its square input")
    add_topk_argument(p, "classes mapped per image")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="where to write the graph")


def check(args: argparse.Namespace) -> None:
    from camloc.defaults import check_topk

    check_topk(args.topk)


def run(args: argparse.Namespace) -> int:
    from camloc.commands._common import load_net
    from camloc.export import export_onnx

    net = load_net(args.model, args.weights, "cpu", probe=args.probe)
    report = export_onnx(net, args.out, topk=args.topk, opset=args.opset)
    h, w = net.preprocessing.shape
    mh, mw = report.map_shape or ("h", "w")
    print(f"{net.name}: images (B, 3, {h}, {w}) -> logits (B, {net.num_classes}), classes (B, {args.topk}), "
          f"maps (B, {args.topk}, {mh}, {mw})")
    print(report)
    return 0
