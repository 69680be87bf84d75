"""One way for every program to report a user's mistake: one line on stderr, exit status 1."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import TypeVar

import hydra
from omegaconf.errors import OmegaConfBaseException

from seqmodels.config import describe_error, silence_library_noise

# Errors a user can fix from the command line; anything else is a bug and keeps its traceback.
USER_ERRORS = (
    ValueError,
    TypeError,
    FileNotFoundError,
    ImportError,  # an optional extra (e.g. seqmodels[datasets]) is not installed
    KeyError,
    hydra.errors.InstantiationException,
    OmegaConfBaseException,
)

T = TypeVar("T")


def run(program: str, body: Callable[[], T]) -> T:
    """Runs ``body``; a user error becomes ``<program>: error: <message>`` and exit status 1.

    ``SEQMODELS_DEBUG=1`` lets the traceback through instead.
    """
    silence_library_noise()
    try:
        return body()
    except USER_ERRORS as exc:
        if os.environ.get("SEQMODELS_DEBUG"):
            raise
        print(f"{program}: error: {describe_error(exc)}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
