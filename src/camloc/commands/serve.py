"""``camloc serve``: a local web page to explore maps (the optional ``serve`` extra)."""

from __future__ import annotations

import argparse
import sys

NAME = "serve"
MAX_UPLOAD_MB = 1024  # the largest --max-upload-mb
HELP = "a local web page to explore maps: drop an image, see classes, maps and boxes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from camloc.commands._common import add_model_arguments
    from camloc.commands._method_args import add_method_arguments
    from camloc.defaults import add_backend_argument, add_device_argument

    add_model_arguments(p)
    add_method_arguments(p)  # the method the page opens with and a request without a method field gets
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine "
                   "only; another address exposes the page to the network)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_device_argument(p, "cpu")
    add_backend_argument(p, "what runs the CAM forward pass (as for localize)")
    p.add_argument("--max-upload-mb", type=float, default=20.0,
                   help=f"largest accepted request, in MB (default 20, at most {MAX_UPLOAD_MB})")
    p.add_argument("--read-timeout", type=float, default=30.0, metavar="SECONDS",
                   help="an upload that sends nothing for this long is answered 408 and closed (default 30)")
    p.add_argument("--max-connections", type=int, default=32, metavar="N",
                   help="connections served at once; more are answered 503 (default 32)")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="also answer requests whose Host header is NAME (repeatable; by default only the "
                   "address of --host is answered, localhost for a loopback address, any for 0.0.0.0)")
    p.add_argument("--calibration", default=None, metavar="FILE|none",
                   help="the scores' temperature from this calibration file (as for localize; default: the file "
                   "beside your checkpoint, weights or probe, else the temperature shipped for an embedded net; "
                   "none: raw softmax); the page sets the box threshold and reading per request")
    p.add_argument("--calibration-force", action="store_true",
                   help="apply a calibration made for another model (weights hash) or other views")


def check(args: argparse.Namespace) -> None:
    from camloc.commands._method_args import check_method_arguments

    check_method_arguments(args, NAME)
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    if not 0 < args.max_upload_mb <= MAX_UPLOAD_MB:
        raise ValueError(f"--max-upload-mb must be more than 0 and at most {MAX_UPLOAD_MB}, got {args.max_upload_mb}")
    if not 0 < args.read_timeout <= 3600:
        raise ValueError(f"--read-timeout must be more than 0 and at most 3600 seconds, got {args.read_timeout}")
    if not 1 <= args.max_connections <= 10000:
        raise ValueError(f"--max-connections must be in 1..10000, got {args.max_connections}")


def run(args: argparse.Namespace) -> int:
    check(args)
    try:
        import uvicorn

        from camloc.serve.app import create_app
    except ImportError as err:
        print(f"camloc serve: error: {err.name or err} is not installed; pip install 'camloc[serve]'", file=sys.stderr)
        return 2
    from camloc.commands._common import load_net
    from camloc.serve.engine import Engine

    from camloc.calibrate import find_calibration, views_of
    from camloc.localize import default_resize

    net = load_net(args.model, args.weights, args.device or "cpu", "gradcam", args.probe)
    resize = default_resize(net)  # localize's geometry for this net
    cal, _ = find_calibration(net, views_of(resize), args.model, args.probe, args.weights, args.calibration,
                              args.calibration_force)
    temperature = 1.0 if args.calibration == "none" else cal.get("temperature") if cal else None
    engine = Engine(net, backend=args.backend, resize=resize, temperature=temperature,  # localize's scores
                    method=args.method, method_options=args.method_options)
    from camloc.serve.app import host_names

    hosts = host_names(args.host)
    app = create_app(engine, max_upload=int(args.max_upload_mb * 1024 * 1024), read_timeout=args.read_timeout,
                     allowed_hosts=None if hosts is None else (*hosts, *args.allowed_host))
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"camloc serve: listening on {args.host}: the page is reachable from other machines", file=sys.stderr)
    print(f"camloc serve: {net.name} on http://{args.host}:{args.port}/ (Ctrl-C stops)", file=sys.stderr)
    # uvicorn answers 503 once the connections, the new one included, reach limit_concurrency
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", limit_concurrency=args.max_connections + 1,
                timeout_keep_alive=5)
    return 0
