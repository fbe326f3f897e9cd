"""Type-checked configuration mappings: one declarative schema per section, every error naming the key.

A section is a ``dict[str, Field]``; :func:`check_section` refuses unknown keys (with close matches),
missing required keys and values of the wrong type, and returns the values normalised (defaults filled
in). A new option joins by adding one :class:`Field` to its section. The checkers below are the only
place where configuration values are type-checked; a string where a list belongs is refused, never
read character by character, and ``True`` is not an integer.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from typing import Any

from .errors import UserError

Checker = Callable[[Any, str], Any]
"""``check(value, key) -> normalised value``; raises :class:`ConfigError` ``"<key>: <problem>"``."""


class ConfigError(UserError, ValueError):
    """A configuration is invalid; the message names the file and the key."""


@dataclass(frozen=True)
class Field:
    """One key of a section: its checker, its default (``MISSING``: required) and what it means."""

    check: Checker
    default: Any = None
    required: bool = False
    help: str = ""


def _fail(key: str, expected: str, value: Any) -> ConfigError:
    shown = f"the string '{value}'" if isinstance(value, str) else f"{value!r} ({type(value).__name__})"
    return ConfigError(f"{key}: expected {expected}, got {shown}")


def integer(minimum: int | None = None, maximum: int | None = None) -> Checker:
    """An int (not a bool, not a float or a string) within [minimum, maximum]."""

    def check(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(key, "an integer", value)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            bounds = (
                f">= {minimum}"
                if maximum is None
                else (f"<= {maximum}" if minimum is None else f"in [{minimum}, {maximum}]")
            )
            raise ConfigError(f"{key}: expected an integer {bounds}, got {value}")
        return value

    return check


def number(minimum: float | None = None, maximum: float | None = None, positive: bool = False) -> Checker:
    """A finite int or float (not a bool) within [minimum, maximum] (``positive``: > 0)."""

    def check(value: Any, key: str) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _fail(key, "a finite number", value)
        if (
            (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)
            or (positive and value <= 0)
        ):
            raise ConfigError(f"{key}: {value} is out of range ({'> 0' if positive else f'[{minimum}, {maximum}]'})")
        return float(value)

    return check


def boolean() -> Checker:
    """``true`` or ``false`` (not 0/1, not a string)."""

    def check(value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise _fail(key, "true or false", value)
        return value

    return check


def string(choices: Mapping[str, Any] | list[str] | tuple[str, ...] | None = None) -> Checker:
    """A non-empty string, one of ``choices`` when given."""

    def check(value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _fail(key, "a non-empty string", value)
        if choices is not None and value not in choices:
            raise ConfigError(f"{key}: '{value}' is not one of {sorted(choices)}{_close(value, choices)}")
        return value

    return check


def optional(checker: Checker) -> Checker:
    """``None`` (null) or what ``checker`` accepts."""

    def check(value: Any, key: str) -> Any:
        return None if value is None else checker(value, key)

    return check


def list_of(checker: Checker, min_length: int = 0) -> Checker:
    """A list (a bare string is refused: write ``[otsu]``, not ``otsu``), each item checked as ``key[i]``."""

    def check(value: Any, key: str) -> list:
        if isinstance(value, str):
            raise ConfigError(f"{key}: expected a list, got the string '{value}' (write [{value}] for a list of one)")
        if not isinstance(value, (list, tuple)):
            raise _fail(key, "a list", value)
        if len(value) < min_length:
            raise ConfigError(f"{key}: expected at least {min_length} item(s), got {len(value)}")
        return [checker(item, f"{key}[{index}]") for index, item in enumerate(value)]

    return check


def either(*checkers: Checker, expected: str) -> Checker:
    """The first of ``checkers`` that accepts the value; else an error saying ``expected``."""

    def check(value: Any, key: str) -> Any:
        for checker in checkers:
            try:
                return checker(value, key)
            except ConfigError:
                continue
        raise _fail(key, expected, value)

    return check


def section(schema: dict[str, Field]) -> Checker:
    """A nested mapping checked by :func:`check_section`."""

    def check(value: Any, key: str) -> dict:
        return check_section(value, schema, key)

    return check


def _close(name: str, known) -> str:
    matches = difflib.get_close_matches(str(name), [str(k) for k in known], n=1)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def check_section(data: Any, schema: dict[str, Field], where: str, fill_defaults: bool = False) -> dict[str, Any]:
    """``data`` checked against ``schema``: a mapping, no unknown keys, required keys present, each value
    checked as ``<where>.<key>``. Returns the checked values (with defaults when ``fill_defaults``)."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise _fail(where, f"a mapping of keys ({', '.join(schema)})", data)
    checked: dict[str, Any] = {}
    for key in data:
        if key not in schema:
            raise ConfigError(f"{where}: unknown key '{key}'{_close(key, schema)}; known: {sorted(schema)}")
    for key, spec in schema.items():
        if key in data:
            checked[key] = spec.check(data[key], f"{where}.{key}")
        elif spec.required:
            raise ConfigError(f"{where}: missing required key '{key}'")
        elif fill_defaults:
            checked[key] = spec.default
    return checked


_ANNOTATION_CHECKERS: dict[str, Checker] = {
    "int": integer(minimum=0),
    "float": number(),
    "bool": boolean(),
    "str": string(),
}


def dataclass_schema(
    cls: type, overrides: dict[str, Checker] | None = None, exclude: tuple[str, ...] = ()
) -> dict[str, Field]:
    """A section for the fields of dataclass ``cls``: checkers from ``overrides`` or from the field's annotation
    (``int`` -> integer >= 0, ``float``, ``bool``, ``str``); so an option added to the dataclass joins the schema."""
    overrides = overrides or {}
    schema = {}
    for item in fields(cls):
        if item.name in exclude:
            continue
        annotation = item.type if isinstance(item.type, str) else getattr(item.type, "__name__", str(item.type))
        checker = overrides.get(item.name) or _ANNOTATION_CHECKERS.get(annotation)
        if checker is None:
            raise TypeError(
                f"{cls.__name__}.{item.name}: no checker for annotation {annotation!r}; add one to overrides"
            )
        default = item.default if item.default is not MISSING else None
        schema[item.name] = Field(
            checker, default, required=item.default is MISSING and item.default_factory is MISSING
        )
    return schema


__all__ = [
    "ConfigError",
    "Field",
    "boolean",
    "check_section",
    "dataclass_schema",
    "either",
    "integer",
    "list_of",
    "number",
    "optional",
    "section",
    "string",
]
