"""camloc's errors, all here, share one base, :class:`CamlocError`: a problem with what camloc was
given (an input file, an option, a model, a data set, a request), whose ``str()`` is one line naming
what and where.

It subclasses ``ValueError``, so code that caught the older ``ValueError`` subclasses still works.
The command line prints such errors as one line; :func:`is_user_error` tells them from bugs.
"""

from __future__ import annotations

import os
import re
import traceback

_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_REMOTE_FRAME = re.compile(r'File "([^"]+)", line \d+, in [^\n]*\n[ \t]*([^\n]*)')


class CamlocError(ValueError):
    """A problem with camloc's input (file, option, model, data); ``str(err)`` is one line."""


def one_line(text: object, limit: int | None = None) -> str:
    """``str(text)`` with its white space folded to single spaces, cut to ``limit`` characters."""
    return " ".join(str(text).split())[:limit]


class MethodError(CamlocError):
    """A map method that cannot run as asked (unknown name or option, a net it cannot explain
    exactly, a target layer that is not there); ``str(err)`` is one line with the reason."""


class ModelError(CamlocError):
    """A model that cannot be loaded; ``str(err)`` is one line.

    Examples:
        >>> import camloc
        >>> try:
        ...     camloc.load_model("no_such_net")
        ... except camloc.ModelError as err:
        ...     print(str(err)[:46])
        unknown model 'no_such_net': not a file, a reg
    """


class HeadError(CamlocError):
    """A model whose head does not admit plain CAM; ``str(err)`` is one line with the reason.

    Examples:
        >>> import camloc, torchvision
        >>> try:
        ...     camloc.load_model(torchvision.models.vgg11(num_classes=10))
        ... except camloc.HeadError as err:
        ...     print(str(err)[:56])
        VGG: fully connected stack (Linear-ReLU-Dropout-Linear-R
    """


class ProbeError(CamlocError):
    """A probe, its data or its feature cache cannot be used; ``str(err)`` is one line."""


class DataError(CamlocError):
    """Unusable dataset metadata; ``str(err)`` is one line, ``<file>:<line>: <reason>`` where
    a line is to blame, else ``<file>: <reason>``."""


class ImageError(CamlocError):
    """An image that cannot be used; ``str(err)`` is one line: ``<file>: <reason>``."""


class IdxError(CamlocError):
    """A file that is not a valid IDX file; ``str(err)`` is one line naming it."""


class TextlocError(CamlocError):
    """A textloc folder that cannot be read; ``str(err)`` is one line."""


class ConfigError(CamlocError):
    """A bad configuration; ``str(err)`` is one line naming the file/line or override and the key."""


class CalibrationError(CamlocError):
    """A calibration file that cannot be used (one line naming the file)."""


class ServeError(CamlocError):
    """A request the server refuses: an HTTP status (4xx) and a one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = one_line(reason)


class MissingExtraError(CamlocError, ImportError):
    """An optional dependency that is not installed; ``str(err)`` is one line naming the package
    and the ``pip install 'camloc[EXTRA]'`` that brings it. Also an ``ImportError``."""


class OutputError(CamlocError, OSError):
    """A file that cannot be written; ``str(err)`` is one line naming it (``errno`` kept). Also an
    ``OSError``, as the failed write it reports."""

    def __init__(self, path: str | os.PathLike, err: OSError, action: str = "write") -> None:
        reason = err.strerror or one_line(err) or type(err).__name__
        super().__init__(f"{os.fspath(path)}: cannot {action} ({reason})")
        self.errno = err.errno


def is_user_error(err: BaseException) -> bool:
    """Whether ``err`` is meant for the user (printed as one line) rather than a bug (shown with its
    traceback): a :class:`CamlocError`, an ``OSError`` (a missing or unwritable file), or a
    ``ValueError``/``RuntimeError`` raised by a ``raise`` statement in camloc's own code (an option
    or input check). The same types raised inside numpy or PyTorch (a shape mismatch), or by
    Python itself (an unpacking error), are bugs. Errors re-raised from worker processes are
    judged by the worker's traceback."""
    if isinstance(err, (CamlocError, OSError)):
        return True
    if not isinstance(err, (ValueError, RuntimeError)):
        return False
    origin = _origin(err)
    if origin is None:
        return False
    filename, line = origin
    inside = os.path.abspath(filename).startswith(_PACKAGE + os.sep)
    return inside and line.lstrip().startswith("raise")


def _origin(err: BaseException) -> tuple[str, str] | None:
    """``(file, source line)`` of the innermost frame that raised ``err``."""
    cause = err.__cause__
    if type(cause).__name__ == "_RemoteTraceback":  # concurrent.futures: the worker's traceback as text
        frames = _REMOTE_FRAME.findall(str(cause))
        if frames:
            return frames[-1]
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return None
    return frames[-1].filename, frames[-1].line or ""
