"""Range and choice rules, declared beside the schema field they constrain, and read by one checker.

A field is declared `name: type = ruled(default, rule)`: the rule (what the value must satisfy, and what to say when it
does not) rides in the dataclass field's metadata, so a knob's type, default and range are written in one line, and
`logreg.checking` walks every field of every schema with the same code. What one field cannot say (keys that must
agree) stays in the schema class's `problems()`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Rule:
    """`holds(value)`: whether a value is allowed; `expected`: what is allowed, in words, for the error message."""

    holds: Callable[[Any], bool]
    expected: str

    def allows(self, value: Any) -> bool:
        """`holds(value)`, where a value of another type than the rule compares (a string in a number's field typed
        Any) fails it instead of raising."""
        try:
            return bool(self.holds(value))
        except (TypeError, ValueError, AttributeError):
            return False


def ruled(default: Any = None, rule: Rule | None = None, *, factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field with `default` (or a `factory` for a list) whose values must satisfy `rule`."""
    metadata = {"rule": rule} if rule is not None else {}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def rule_of(item: Any) -> Rule | None:
    """The rule a dataclass field (`dataclasses.Field`) declares, if any."""
    return item.metadata.get("rule")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def at_least(low: float, expected: str) -> Rule:
    return Rule(lambda value: _number(value) and value >= low, expected)


def between(low: float, high: float, expected: str, *, low_open: bool = False, high_open: bool = False) -> Rule:
    def holds(value: Any) -> bool:
        above = value > low if low_open else value >= low
        below = value < high if high_open else value <= high
        return _number(value) and above and below

    return Rule(holds, expected)


def positive(expected: str) -> Rule:
    """A number in (0, infinity)."""
    return Rule(lambda value: _number(value) and 0 < value < math.inf, expected)


def non_negative(expected: str = "a number >= 0") -> Rule:
    """A number in [0, infinity)."""
    return Rule(lambda value: _number(value) and 0 <= value < math.inf, expected)


def one_of(choices: Collection[Any], expected: str | None = None) -> Rule:
    return Rule(lambda value: value in choices, expected or f"one of {', '.join(map(str, choices))}")


def or_null(rule: Rule, expected: str | None = None) -> Rule:
    """`rule`, or null (None)."""
    return Rule(lambda value: value is None or rule.allows(value), expected or f"{rule.expected}, or null")


def text_encoding(value: Any) -> bool:
    """Whether Python knows the text encoding `value` (utf-8, latin-1, ...)."""
    try:
        "".encode(value)
    except LookupError:
        return False
    return True


def column_reference(value: Any) -> bool:
    """A data file's column: a header name, or a number counting from 1 (negative from the end)."""
    return isinstance(value, str) or (whole(value) and value != 0)
