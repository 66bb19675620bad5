"""The errors a user can fix, and how an entry script turns any of them into one line.

Each message names the file, line, column or config key, what was expected and what to do. `run_entry` runs an
entry script's `@hydra.main` function: a UserError, a config Hydra could not compose, or a file the system could not
write (in a background thread too) ends the process with `error: <one line>` on stderr and exit status 1; anything
else is a bug and keeps its traceback. This module imports neither torch nor Lightning.
"""

from __future__ import annotations

import errno
import functools
import os
import re
import sys
import threading
from collections.abc import Callable
from typing import Any, NoReturn


class UserError(ValueError):
    """Base of every error the user can act on."""


class ConfigError(UserError):
    """A config value that cannot work: wrong type, out of range, unknown key or option, or missing hardware."""


class DataError(UserError):
    """A data file or data option that cannot be used: missing, malformed, or not the expected file."""


class CheckpointError(UserError):
    """A file that is not a checkpoint of this project, or one that does not fit the run or the data."""


class OutputError(UserError):
    """An output that would replace an input or another run's file, or a file the system could not write."""


class TrainingDiverged(UserError):
    """The loss or the weights became NaN or infinite during training."""


USER_ERRORS = (ConfigError, DataError, CheckpointError, OutputError, TrainingDiverged)


def find_user_error(error: BaseException | None) -> UserError | None:
    """The UserError behind `error`, following `raise ... from` causes (Hydra's instantiate wraps errors that way)."""
    while error is not None and not isinstance(error, UserError):
        error = error.__cause__
    return error


def one_line(text: object) -> str:
    """`text` (a message, or an error: its message) on one line, runs of whitespace made one space."""
    return " ".join(str(text).split())


def as_user_error(error: BaseException) -> UserError | None:
    """The error as a UserError with a one-line message, or None when it is a bug (which keeps its traceback)."""
    from hydra.errors import (
        ConfigCompositionException,
        InstantiationException,
        MissingConfigException,
        OverrideParseException,
    )
    from omegaconf.errors import OmegaConfBaseException

    found = find_user_error(error)
    if found is not None:
        match = re.search(r"full_key: (\S+)", str(error)) if isinstance(error, InstantiationException) else None
        key = match.group(1) if match else None
        message = one_line(found)
        prefixed = f"{key}: {message}" if key and not message.startswith(key.split(".")[0]) else message
        return type(found)(prefixed)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, option = error.missing_cfg_file.rpartition("/")
        return ConfigError(f"{group}={option}: no such option; {group} offers: {', '.join(sorted(error.options))}")
    if isinstance(error, OverrideParseException):
        return ConfigError(f"could not read the command line: {one_line(error)}")
    cause = error.__cause__ if isinstance(error, ConfigCompositionException) else error
    if isinstance(cause, OmegaConfBaseException):
        return ConfigError(_omegaconf_message(cause, one_line(error) if cause is not error else ""))
    if isinstance(error, (ConfigCompositionException, InstantiationException)):
        return ConfigError(one_line(error))
    if isinstance(error, OSError) and (error.filename or error.errno in _FILESYSTEM_FULL):
        return OutputError(_os_message(error))
    return None


def _omegaconf_message(error: Any, context: str) -> str:
    """`key=value: expected ...` for a value of the wrong type, `key: no such key; ... has: ...` for an unknown key."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, MissingMandatoryValue, ValidationError

    from logreg.checking import expected_type, unknown_key

    key, schema = getattr(error, "full_key", None) or "", getattr(error, "object_type", None)
    detail = one_line(str(error).split("full_key:")[0])
    if isinstance(error, (ConfigKeyError, ConfigAttributeError)) and schema is not None and key:
        import dataclasses

        if isinstance(schema, type) and dataclasses.is_dataclass(schema):  # OmegaConf gives the class
            return unknown_key(schema, key)
    if isinstance(error, (ConfigKeyError, ConfigAttributeError)) and key:
        return f"{key}: no such key"
    if isinstance(error, MissingMandatoryValue) and key:
        return f"{key}: a value is required (set {key}=...)"
    if isinstance(error, ValidationError) and key:
        override = context.removeprefix("Error merging override ") if context.startswith("Error merging") else key
        expected = expected_type(schema, key.rsplit(".", 1)[-1]) if isinstance(schema, type) else None
        return f"{override}: expected {expected} ({detail})" if expected else f"{override}: {detail}"
    return f"{key}: {detail}" if key else detail or context


_FILESYSTEM_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def _os_message(error: OSError) -> str:
    where = os.fsdecode(error.filename) if error.filename else "a file"
    what = error.strerror or type(error).__name__
    if error.errno in _FILESYSTEM_FULL:
        return (
            f"{where}: {what}: the disk (or a file size limit) is full; free space and run again "
            "(files finished before this one, checkpoints included, are intact)"
        )
    if error.errno in _NO_PERMISSION:
        return f"{where}: {what}: choose a folder you may write to (e.g. hydra.run.dir=... or output=...)"
    return f"{where}: {what}"


def exit_on(error: UserError) -> NoReturn:
    """End the process with `error: <message>` and exit status 1. Hydra callbacks use it: Hydra turns any exception a
    callback raises into a warning and carries on, but a SystemExit passes."""
    sys.exit(f"error: {one_line(error)}")


def one_line_errors(task: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Decorate an entry script's task function (under `@hydra.main`): in a single run, a user error ends the process
    with `error: <one line>` and exit status 1 (before Hydra would print its own report of the failed job); the run
    folder it claimed is kept, marked failed with that line (`outputs.record_failure`). In a sweep
    every error is written to the trial's folder (error.txt, for the sweep summary) and propagates, so the launcher
    records the trial as failed and the sweep goes on."""

    @functools.wraps(task)
    def run_task(cfg: Any) -> Any:
        try:
            return task(cfg)
        except Exception as error:
            from hydra.core.hydra_config import HydraConfig
            from hydra.types import RunMode

            user_error = as_user_error(error)
            hydra_cfg = HydraConfig.get()
            if hydra_cfg.mode == RunMode.MULTIRUN:  # the trial's error, in its folder, for the sweep summary
                shown = user_error or error
                with open(os.path.join(hydra_cfg.runtime.output_dir, "error.txt"), "w") as file:
                    file.write(f"{type(shown).__name__}: {one_line(shown)}\n")
                raise
            from logreg.outputs import record_failure

            record_failure(hydra_cfg.runtime.output_dir, one_line(user_error or f"{type(error).__name__}: {error}"))
            if user_error is None:
                raise
            exit_on(user_error)

    return run_task


def run_entry(main: Callable[[], Any]) -> None:
    """Run an entry script's `@hydra.main` function as a command: a user error ends it with one line, exit status 1.

    This catches what happens outside the task function: a config Hydra cannot compose (HYDRA_FULL_ERROR=1 makes Hydra
    raise it instead of printing it over several lines), a run folder that cannot be claimed, and the end of a sweep
    with a failed trial (reported with the first trial's error).
    """
    os.environ["HYDRA_FULL_ERROR"] = "1"
    in_threads = catch_thread_errors()
    try:
        main()
    except Exception as error:
        user_error = as_user_error(error)
        if user_error is None:
            raise
        exit_on(user_error)
    if in_threads:  # the command itself went on: the first error of a background thread is its outcome
        exit_on(in_threads[0])


def catch_thread_errors() -> list[UserError]:
    """Make a user error raised in a background thread (TensorBoard's event writer, an MLflow client thread: a full
    disk, a folder that cannot be written) reach the one-line report instead of printing a traceback: it is kept in
    the returned list. Any other exception in a thread is a bug and keeps Python's report."""
    caught: list[UserError] = []
    default_hook = threading.excepthook

    def hook(arguments: threading.ExceptHookArgs) -> None:
        error = arguments.exc_value
        user_error = as_user_error(error) if isinstance(error, Exception) else None
        if user_error is None:
            default_hook(arguments)
        else:
            caught.append(user_error)

    threading.excepthook = hook
    return caught
