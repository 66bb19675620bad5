"""Every path a logger, a callback or the trainer will write, resolved when the config is checked and kept inside the
run folder: a run never writes into another run's folder, nor anywhere else outside its own.

The path keys are found by name, wherever they sit in the config (a logger, any callback, the trainer, its profiler):
a folder key (`save_dir`, `dirpath`, `default_root_dir`, ...) and, below it, the parts joined onto it (`name`,
`version`, `filename`). A new callback or logger with such a key is confined without a change here. Data keys are
not outputs of the run (`data.data_dir` is the shared download folder), and the MLflow database, shared by every run,
is named by `logger.tracking_uri` (checked by its scheme in the schema).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from logreg.errors import ConfigError

FOLDER_KEYS = ("save_dir", "dirpath", "default_root_dir", "log_dir", "root_dir", "output_dir")
PARTS_BELOW = ("name", "version", "filename")  # joined onto the node's folder key: where the files really go
NOT_OUTPUTS = ("data", "hydra")  # top-level nodes whose paths are inputs or Hydra's own


def written_paths(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(key, path) for every folder, and every folder joined with a part below it, that `node` (a resolved config
    as plain containers) names for writing: `("logger.version", "<save_dir>/<version>")`."""
    if isinstance(node, Mapping):
        for folder_key in FOLDER_KEYS:
            folder = node.get(folder_key)
            if not isinstance(folder, str):
                continue
            yield f"{prefix}{folder_key}", folder
            for part_key in PARTS_BELOW:
                part = node.get(part_key)
                if isinstance(part, (str, int)) and not isinstance(part, bool) and str(part):
                    yield f"{prefix}{part_key}", os.path.join(folder, str(part))
        for key, child in node.items():
            if not (prefix == "" and key in NOT_OUTPUTS):
                yield from written_paths(child, f"{prefix}{key}.")
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from written_paths(child, f"{prefix}{index}.")


def is_inside(path: str | os.PathLike, folder: str | os.PathLike) -> bool:
    """Whether `path` is `folder` or lies below it, once both are absolute and their symbolic links followed."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def check_confined(resolved: Mapping[str, Any], run_dir: str | os.PathLike) -> None:
    """Refuse, naming the key, the first path in `resolved` (a config as plain containers) that would be written
    outside `run_dir`, the run's own folder (which holds no other run's folder: a claimed folder is empty)."""
    for key, path in written_paths(resolved):
        if not is_inside(path, run_dir):
            shown = resolved_value(resolved, key)
            raise ConfigError(
                f"{key}={shown}: writes to {os.path.realpath(path)}, outside this run's folder "
                f"{os.path.realpath(run_dir)}; a run writes only into its own folder: name a path inside it "
                "(${hydra:runtime.output_dir}/...) or leave the key at its default"
            )


def resolved_value(node: Mapping[str, Any], key: str) -> Any:
    """The value at dotted `key` in `node` (plain containers)."""
    value: Any = node
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value
