"""A decoder that kills its own process on files named ``*crash*``: how a segmentation fault in a
C decoder looks to the pipeline (used by test_pipeline; module-level so worker processes import it)."""

from __future__ import annotations

import os
import signal

from camloc.pipeline.run import decode_or_error


def crashing_decoder(source, *args):
    if "crash" in os.path.basename(str(source)):
        os.kill(os.getpid(), signal.SIGSEGV)
    return decode_or_error(source, *args)
