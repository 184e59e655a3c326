"""Build frozen dataclasses from plain mappings (TOML, JSON), refusing anything unexpected.

Unknown keys, values of the wrong type and values outside a ``Literal`` raise ``ConfigError`` naming
where they were found. A class with a ``kind`` class variable may be named by a ``kind`` key (so
that a union of such classes takes the one named). Integers are accepted where floats are expected;
booleans are never taken for numbers; nested dataclasses are built recursively.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, or of the wrong type."""


def build_dataclass(cls: type[T], data: Mapping[str, Any], where: str) -> T:
    """``cls(**data)`` with every key and value checked against ``cls``'s annotations."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a table of settings, got {data!r}")
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    kind = getattr(cls, "kind", None)  # a class registered by kind may be named by it
    if isinstance(kind, str) and kind and "kind" in data:
        if data["kind"] != kind:
            raise ConfigError(f"{where}: kind {data['kind']!r} is not {kind!r}")
        data = {key: value for key, value in data.items() if key != "kind"}
    hints = typing.get_type_hints(cls)
    fields = {field.name for field in dataclasses.fields(cls) if field.init}
    unknown = sorted(set(data) - fields)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(fields))})"
        )
    values = {
        name: coerce_value(value, hints[name], f"{where}.{name}") for name, value in data.items()
    }
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{where}: {error}") from error


def coerce_value(value: Any, expected: Any, where: str) -> Any:
    origin = typing.get_origin(expected)
    if origin is typing.Literal:
        choices = typing.get_args(expected)
        if value not in choices or isinstance(value, bool) != isinstance(choices[0], bool):
            raise ConfigError(
                f"{where}: expected one of {', '.join(map(repr, choices))}, got {value!r}"
            )
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(expected)
        if value is None and type(None) in options:
            return None
        by_kind = {getattr(option, "kind", None): option for option in options}
        if (
            isinstance(value, Mapping)
            and "kind" in value
            and all(isinstance(kind, str) and kind for kind in by_kind if kind is not None)
        ):
            named = by_kind.get(value["kind"]) if isinstance(value["kind"], str) else None
            if named is None:
                known = ", ".join(repr(kind) for kind in by_kind if kind is not None)
                raise ConfigError(f"{where}: kind {value['kind']!r} is not one of {known}")
            return coerce_value(value, named, where)
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce_value(value, option, where)
            except ConfigError as error:
                errors.append(str(error))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        kinds = [describe_type(option) for option in options if option is not type(None)]
        raise ConfigError(f"{where}: expected {' or '.join(kinds)}, got {value!r}")
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = typing.get_args(expected)[0]
        items = [coerce_value(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(expected) and isinstance(expected, type):
        return build_dataclass(expected, value, where)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    if isinstance(expected, type) and not isinstance(value, expected):
        raise ConfigError(f"{where}: expected {expected.__name__}, got {value!r}")
    return value


def describe_type(expected: Any) -> str:
    """``expected`` in words, for error messages: ``'eer', 'far_1pct'``, ``a number``."""
    if typing.get_origin(expected) is typing.Literal:
        return ", ".join(map(repr, typing.get_args(expected)))
    words = {float: "a number", int: "an integer", str: "a string", bool: "true or false"}
    if expected in words:
        return words[expected]
    if typing.get_origin(expected) in (list, tuple):
        return "a list"
    return getattr(expected, "__name__", str(expected))
