"""The one check of a config: unknown keys, missing values, and every field's rule, before Lightning is imported.

`check_config` walks the composed config, refuses keys no schema knows, applies each field's declared rule
(`logreg.rules`) and each schema class's `problems()` (what one field cannot say), and stops at the first problem with
a `ConfigError` naming the key, the value and what was expected: `data.val_fraction=1.5: expected a fraction in
[0, 1)`. It returns the typed config (`TrainConfig`, `EvalConfig`, ...), which the entry scripts hand inward.
`check_arguments` is the same check for a constructor's arguments (the DataModule's, the model's), for callers that do
not come through a config.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from collections.abc import Mapping
from typing import Any, Protocol, TypeVar, cast

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import MissingMandatoryValue

import logreg.hydra_hooks  # noqa: F401 - the schemas' ConfigStore entries and the resolvers every composition needs
from logreg.confine import check_confined
from logreg.devices import check_devices
from logreg.errors import ConfigError
from logreg.rules import rule_of
from logreg.schema import Problems, TrainConfig, TrainerConfig

T = TypeVar("T")


class Checked(Protocol):
    """A schema dataclass: says what its fields' rules cannot (keys that must agree)."""

    def problems(self) -> Problems: ...


def as_dict(node: DictConfig, *, resolve: bool = False) -> dict[str, Any]:
    """`OmegaConf.to_container(node)` typed as what it is for a mapping node: a dict, keyed by strings in every config
    of this project (to_container is typed for any node: a list, a string, None)."""
    return cast(dict[str, Any], OmegaConf.to_container(node, resolve=resolve))


def check_config(cfg: DictConfig, sweep: bool = False) -> Any:
    """Refuse the first unknown key, missing value, or value out of range in `cfg` (the task config, Hydra's own
    node aside), with a ConfigError naming the key; return the typed config (an instance of the schema dataclass
    `cfg` is typed by: `TrainConfig` for train.py). `sweep`: the run is a trial of a sweep, so what it returns to the
    sweeper is checked too."""
    task = cfg
    if "hydra" in cfg:  # a composed config seen outside a run (tests, tools): check the task's part, typed as it is
        task = cfg.copy()
        with open_dict(task):
            del task["hydra"]
    _check_keys(task, "")
    try:
        typed = OmegaConf.to_object(task)
    except MissingMandatoryValue:  # a value is required: the first such key, by name (looked for only then)
        missing = sorted(OmegaConf.missing_keys(task))
        if missing:
            raise ConfigError(f"{missing[0]}: a value is required (set {missing[0]}=...)") from None
        raise
    check_values(typed, "")
    hydra_cfg = cast(DictConfig, HydraConfig.get()) if HydraConfig.initialized() else None  # a node (typed HydraConf)
    run_dir = OmegaConf.select(hydra_cfg, "runtime.output_dir", default=None) if hydra_cfg else None
    if run_dir:  # every path a logger, callback or the trainer writes: inside the run folder
        check_confined(as_dict(task, resolve=True), run_dir)
    trainer = getattr(typed, "trainer", None)
    if isinstance(trainer, TrainerConfig):  # the devices it asks for (torch is imported only for a GPU)
        check_devices(trainer)
    if sweep and isinstance(typed, TrainConfig):
        raise_first(typed, typed.sweep_problems(), "")
    return typed


def check_arguments(schema: type[T], values: Mapping[str, Any], prefix: str) -> T:
    """Refuse constructor arguments as `check_config` refuses config values, with the same rules and messages; return
    them typed, as an instance of `schema`: the package's own boundary, for callers that do not come through a config
    (notebooks, tests, checkpoints)."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        # An instance of `schema` (to_object is typed for any node)
        typed = cast(T, OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), dict(values))))
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "") or ""
        shown = _show(values.get(key)) if key in values else "?"
        expected = expected_type(schema, key) or str(error).splitlines()[0]
        raise ConfigError(f"{prefix}{key}={shown}: expected {expected}") from None
    check_values(typed, prefix)
    return typed


def check_values(value: Any, prefix: str) -> None:
    """Refuse the first value of a typed config (schema dataclasses, nested) that breaks its field's rule or its
    class's `problems()`: the class's own fields first, then the nodes inside it."""
    if isinstance(value, dict):
        for key, child in value.items():
            check_values(child, f"{prefix}{key}.")
        return
    if not dataclasses.is_dataclass(value) or isinstance(value, type):
        return
    for item in dataclasses.fields(value):
        rule, field_value = rule_of(item), getattr(value, item.name)
        if rule is not None and not rule.allows(field_value):
            raise ConfigError(f"{prefix}{item.name}={_show(field_value)}: expected {rule.expected}")
    raise_first(value, getattr(value, "problems", lambda: iter(()))(), prefix)
    for item in dataclasses.fields(value):
        check_values(getattr(value, item.name), f"{prefix}{item.name}.")


def raise_first(node: Any, problems: Problems, prefix: str) -> None:
    """Raise a ConfigError for the first of `problems` (key relative to `node`, what was expected), if any."""
    for key, expected in problems:
        shown = node
        for part in key.split("."):
            shown = shown[part] if isinstance(shown, Mapping) else getattr(shown, part)
        raise ConfigError(f"{prefix}{key}={_show(shown)}: expected {expected}")


RENAMED = {"data.test_split": "data.test_on"}  # released names that went away -> their names now


def unknown_key(schema: type, key: str) -> str:
    """The message for a dotted `key` whose last part `schema` (a dataclass) lacks; where a key of that name lives one
    level down, it says so (`optimizer` -> `model.optimizer`: the optimizer group's keys are set there)."""
    if key in RENAMED:
        return f"{key}: renamed {RENAMED[key]} (0.2); set {RENAMED[key]}=... instead"
    name, fields = key.rsplit(".", 1)[-1], dataclasses.fields(schema)
    listed = f"{schema.__name__} has: {', '.join(sorted(f.name for f in fields))}"
    try:
        hints = typing.get_type_hints(schema)
    except (NameError, TypeError):  # annotations that do not resolve: no hint, the list alone
        hints = {}
    for outer in fields:
        inner = hints.get(outer.name)
        if isinstance(inner, type) and dataclasses.is_dataclass(inner):
            if name in {f.name for f in dataclasses.fields(inner)}:
                return f"{key}: no such key; did you mean {key[: -len(name)]}{outer.name}.{name}? ({listed})"
    near = difflib.get_close_matches(name, [f.name for f in fields], n=1, cutoff=0.75)  # a typo: epoch, lrr, sed
    if near:
        return f"{key}: no such key; did you mean {key[: -len(name)]}{near[0]}? ({listed})"
    return f"{key}: no such key; {listed}"


def _check_keys(node: Any, prefix: str) -> None:
    """Refuse keys that the node's schema lacks: Hydra's `+key=value` adds them to structured configs too."""
    if isinstance(node, ListConfig):
        return
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    if dataclasses.is_dataclass(schema):
        known = {f.name for f in dataclasses.fields(schema)}
        for key in node:
            if key not in known:
                raise ConfigError(unknown_key(schema, f"{prefix}{key!s}"))
    elif prefix == "callbacks.":
        for key in node:
            if node[key] is not None and (not isinstance(node[key], DictConfig) or "_target_" not in node[key]):
                raise ConfigError(f"callbacks.{key!s}: expected a callback config with a _target_, or null for none")
    for key in node:  # an interpolation's keys are checked where it points to
        if not OmegaConf.is_missing(node, key) and not OmegaConf.is_interpolation(node, str(key)):
            _check_keys(node[key], f"{prefix}{key!s}.")


def _show(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def expected_type(schema: type, key: str) -> str | None:
    """What a field of a schema dataclass holds, in words ("a whole number", "true or false", ...), or None."""
    try:
        annotation = typing.get_type_hints(schema)[key]
    except (KeyError, TypeError, NameError):
        return None
    optional = type(None) in typing.get_args(annotation)
    base = next((a for a in typing.get_args(annotation) if a is not type(None)), annotation) if optional else annotation
    words = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}.get(base)
    if words is None:
        return None
    return f"{words} or null" if optional else words
