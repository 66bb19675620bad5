"""What the Hydra entry scripts (train.py, eval.py, predict.py, export.py) share: errors as one line, not tracebacks."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode

from logreg.errors import UserError


def user_error(error: BaseException) -> str | None:
    """The one-line message of a UserError (also when Hydra's instantiate wrapped it, naming the config key)."""
    cause, key = error, None
    while isinstance(cause, InstantiationException):
        key = key or (match.group(1) if (match := re.search(r"full_key: (\S+)", str(cause))) else None)
        cause = cause.__cause__
    if not isinstance(cause, UserError):
        return None
    return f"{key}: {cause}" if key and not str(cause).startswith(f"{key}.") else str(cause)


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """A UserError ends a single run with `error: <message>` and exit status 1.

    Any other exception is a bug and keeps its traceback; in a sweep (`-m`) every error propagates, so the launcher
    records the trial as failed and goes on.
    """
    try:
        yield
    except Exception as error:
        message = user_error(error)
        if message is None or HydraConfig.get().mode == RunMode.MULTIRUN:
            raise
        sys.exit(f"error: {message}")
