"""camloc's errors share one base, :class:`CamlocError`: a problem with what camloc was given (an
input file, an option, a model, a data set), whose ``str()`` is one line naming what and where.

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
