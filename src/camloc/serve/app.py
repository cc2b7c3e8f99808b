"""The Starlette application of ``camloc serve``: the page, its static files and the JSON API.

Routes:

- ``GET /`` the page; ``GET /static/...`` its script and style (all served from the package:
  no CDN, it works offline);
- ``GET /api/models`` the loaded model, its class names and the options;
- ``POST /api/localize`` multipart: ``file`` (the image) and optional ``topk``, ``threshold``,
  ``method``, ``class``, ``norm`` -> :meth:`camloc.serve.engine.Engine.localize`'s response;
- ``GET /api/samples`` and ``GET /api/samples/{name}``: photos bundled with scikit-image.

Every error is JSON, ``{"error": "<one line>"}``, with a 4xx status. A request body over
``max_upload`` bytes is refused with 413 before it is parsed; an upload that sends nothing for
``read_timeout`` seconds is answered 408 and its connection closed. With ``allowed_hosts``, a
request whose ``Host`` header names another host is refused with 400 before any route runs (a
page on another origin reaching the server through DNS rebinding names its own host).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from camloc.errors import ServeError, one_line
from camloc.serve.engine import MAX_UPLOAD, Engine, parse_options

STATIC = Path(__file__).parent / "static"
SAMPLES = ("chelsea.png", "coffee.png", "astronaut.png", "motorcycle_left.png", "rocket.jpg")
# Everything from this server; blob:/data: for the picked image and the overlay canvas.
CSP = "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"


def sample_paths() -> dict[str, str]:
    """The bundled scikit-image photos the page offers, by file name."""
    try:
        import skimage
    except ImportError:  # the sample list is a convenience: empty without scikit-image ([demo])
        return {}
    folder = os.path.join(os.path.dirname(skimage.__file__), "data")
    return {n: os.path.join(folder, n) for n in SAMPLES if os.path.isfile(os.path.join(folder, n))}


def error(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": one_line(reason)}, status_code=status)


READ_TIMEOUT = 30.0  # seconds an upload may send nothing before it is answered 408


async def _read_limited(request: Request, limit: int, timeout: float = READ_TIMEOUT) -> bytes:
    """The request body, or :class:`ServeError` 413 as soon as it passes ``limit`` bytes (a
    declared Content-Length over the limit is refused before reading), or 408 when no data came
    for ``timeout`` seconds."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ServeError(413, f"upload of {int(declared)} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), timeout)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise ServeError(408, f"upload stalled: no data for {timeout:g} s after {size} bytes") from None
        size += len(chunk)
        if size > limit:
            raise ServeError(413, f"upload is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def host_names(host: str) -> tuple[str, ...] | None:
    """The ``Host`` names a server bound to ``host`` answers: a loopback address answers
    ``localhost`` and its loopback twins, another address itself; ``0.0.0.0`` or ``::`` (every
    interface) ``None``: no check (the page is open to the network anyway)."""
    h = host.strip("[]").lower()
    if h in ("0.0.0.0", "::", ""):
        return None
    if h in ("127.0.0.1", "localhost", "::1"):
        return ("127.0.0.1", "localhost", "::1")
    return (h,)


def _host_of(header: str) -> str:
    """The host part of a ``Host`` header: ``[::1]:8000`` -> ``::1``, ``a.b:80`` -> ``a.b``."""
    h = header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def check_host(app, allowed: Iterable[str]):
    """ASGI middleware: a request whose ``Host`` is not in ``allowed`` gets a one-line JSON 400."""
    names = {a.strip("[]").lower() for a in allowed}

    async def guarded(scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
            if _host_of(header) not in names:
                shown = one_line(header, 80) or "(none)"
                await error(400, f"Host header {shown!r} is not this server's; start camloc serve with "
                            "--allowed-host NAME to answer it")(scope, receive, send)
                return
        await app(scope, receive, send)

    return guarded


def create_app(engine: Engine, max_upload: int = MAX_UPLOAD, read_timeout: float = READ_TIMEOUT,
               allowed_hosts: Iterable[str] | None = None):
    """The application around a loaded :class:`~camloc.serve.engine.Engine`; ``allowed_hosts``:
    the ``Host`` names it answers (``None``: any, the default for the API; ``camloc serve``
    passes :func:`host_names` of its address)."""
    samples = sample_paths()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    async def models(request: Request) -> Response:
        info = engine.info()
        info["max_upload"] = max_upload
        return JSONResponse(info)

    async def list_samples(request: Request) -> Response:
        return JSONResponse({"samples": list(samples)})

    async def sample(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in samples:
            return error(404, f"no bundled photo {name[:60]!r}; GET /api/samples lists them")
        return FileResponse(samples[name])

    async def localize(request: Request) -> Response:
        ctype = request.headers.get("content-type", "")
        if not ctype.startswith("multipart/form-data"):
            return error(415, "POST /api/localize takes multipart/form-data with the image in field 'file'")
        try:
            body = await _read_limited(request, max_upload, read_timeout)
            replay = Request(request.scope, receive=_replay(body))
            try:
                form = await replay.form(max_files=1, max_fields=10)
            except Exception as err:  # python-multipart's parse errors, too many parts
                raise ServeError(400, f"malformed multipart body ({getattr(err, 'detail', err)})") from None
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ServeError(400, "field 'file': missing (the image to localize)")
            data = await upload.read()
            name = os.path.basename((upload.filename or "upload").replace("\\", "/")) or "upload"
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            opts = parse_options(fields, engine.default_method)
            out = await run_in_threadpool(engine.localize, data, name, opts)
        except ServeError as err:
            return error(err.status, err.reason)
        return JSONResponse(out)

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return error(exc.status_code, exc.detail or "not found")

    async def internal(request: Request, exc: Exception) -> Response:  # a bug: still one line of JSON
        return error(500, f"internal error ({type(exc).__name__}: {one_line(exc, 200)})")

    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    from starlette.middleware import Middleware
    from starlette.middleware.base import BaseHTTPMiddleware

    routes = [
        Route("/", index),
        Route("/api/models", models),
        Route("/api/samples", list_samples),
        Route("/api/samples/{name}", sample),
        Route("/api/localize", localize, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found, Exception: internal},
                    middleware=[Middleware(BaseHTTPMiddleware, dispatch=headers)])
    return app if allowed_hosts is None else check_host(app, allowed_hosts)


def _replay(body: bytes):
    """An ASGI ``receive`` that hands ``body`` over once (the body was read to enforce the limit)."""
    sent = False

    async def receive() -> dict:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
