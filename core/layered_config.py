"""Settings in layers: defaults, then a TOML file, then environment overrides, each value's
origin kept so that a bad one is reported where it was written (``FILE:LINE`` or ``$NAME``).

The settings class is a frozen dataclass of sections, each a frozen dataclass of plain values
(numbers, strings, booleans, lists of them): the shape of a TOML file with one table per
section. ``PREFIX_SECTION__KEY=value`` in the environment overrides ``[section] key``. The value
is read as a TOML value when it is one (``0.7``, ``true``, ``["a", "b"]``, ``'"quoted"'``) and
fits the key, else taken as the string it is (``tcp://127.0.0.1:6000``, ``debug``); for a list,
a lone value is a list of one and an empty value the empty list.

``to_toml`` writes resolved settings back as TOML, each value that is not a default followed by
a comment saying where it came from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar, Union

from dfd.core.safe_files import UnsafeFileError, read_regular_file
from dfd.core.text import printable
from dfd.core.typed_config import ConfigError, coerce_value

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Resolved(Generic[T]):
    value: T
    origins: dict[str, str]  # "section.key" -> where it was set: "FILE:LINE" or "$NAME"


class SettingsError(ConfigError):
    """Every problem found in the settings, each one line naming where it was written; the
    message is the one problem, or all of them joined by ``"; "``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        message = problems[0] if len(problems) == 1 else "; ".join(problems)
        super().__init__(message if len(problems) == 1 else f"{len(problems)} problems: {message}")


@dataclasses.dataclass(frozen=True)
class _Section:
    cls: type[Any]
    hints: dict[str, Any]
    keys: tuple[str, ...]


def resolve(
    cls: type[T], path: Path | None, environ: Mapping[str, str], env_prefix: str
) -> Resolved[T]:
    """``cls`` from its defaults, then the TOML file ``path``, then ``env_prefix`` variables.
    A bad value raises ``ConfigError`` with a message of one line."""
    try:
        return _resolve(cls, path, environ, env_prefix)
    except SettingsError as error:
        if all(problem.isprintable() for problem in error.problems):
            raise
        # A name or value with a line break or control character in it (a quoted TOML key,
        # an odd variable name): escaped, so that each problem stays one line.
        raise SettingsError([printable(problem) for problem in error.problems]) from error
    except ConfigError as error:
        message = str(error)
        if message.isprintable():
            raise
        raise ConfigError(printable(message)) from error


def _line_of(problem: str) -> float:
    found = re.match(r"[^$].*?:(\d+):", problem)
    return int(found.group(1)) if found else math.inf


def _resolve(
    cls: type[T], path: Path | None, environ: Mapping[str, str], env_prefix: str
) -> Resolved[T]:
    sections = _schema(cls)
    merged: dict[str, dict[str, Any]] = {}
    origins: dict[str, str] = {}

    def check_section(section: str, where: str) -> None:
        if section not in sections:
            known = ", ".join(sections)
            raise ConfigError(f"{where}: unknown key(s) {section} (known: {known})")

    def set_value(section: str, key: str, value: Any, where: str) -> None:
        check_section(section, where)
        schema = sections[section]
        if key not in schema.keys:
            known = ", ".join(sorted(schema.keys))
            raise ConfigError(f"{where}: {section}: unknown key(s) {key} (known: {known})")
        try:
            coerced = coerce_value(value, schema.hints[key], f"{section}.{key}")
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from error
        if not _finite(coerced):  # TOML has nan and inf; no setting means either
            raise ConfigError(f"{where}: {section}.{key}: expected a finite number, got {value!r}")
        merged.setdefault(section, {})[key] = coerced
        origins[f"{section}.{key}"] = where

    problems: list[str] = []  # every bad value is reported, not only the first

    def checked(action: Any, *args: Any) -> Any:
        try:
            return action(*args)
        except ConfigError as error:
            problems.append(str(error))
            return None

    def read_table(section: str, table: Any, where: str) -> None:
        check_section(section, where)
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: {section}: expected a table, got {table!r}")
        for key, value in table.items():
            checked(set_value, section, key, value, lines.where(section, key))

    if path is not None:
        data, lines = _read_toml(path)
        for section, table in data.items():
            checked(read_table, section, table, lines.where(section))

    for name in sorted(environ):
        if not name.startswith(env_prefix) or "__" not in name[len(env_prefix) :]:
            continue  # DFD_CONFIG, DFD_BUNDLES: not overrides
        section, _, key = name[len(env_prefix) :].lower().partition("__")
        hint = sections[section].hints.get(key) if section in sections else None
        value = _environment_value(environ[name], hint) if hint is not None else None
        checked(set_value, section, key, value, f"${name}")

    built = {
        name: checked(_build_section, name, sections[name].cls, values, origins)
        for name, values in merged.items()
    }
    if problems:  # in the order they were written: the file by line, then the environment
        raise SettingsError(sorted(problems, key=_line_of))
    return Resolved(cls(**built), origins)


def _schema(cls: type[Any]) -> dict[str, _Section]:
    hints = typing.get_type_hints(cls)
    sections = {}
    for field in dataclasses.fields(cls):
        section = hints[field.name]
        if not (isinstance(section, type) and dataclasses.is_dataclass(section)):
            raise TypeError(f"{cls.__name__}.{field.name} is not a section (a dataclass)")
        keys = tuple(f.name for f in dataclasses.fields(section) if f.init)
        sections[field.name] = _Section(section, typing.get_type_hints(section), keys)
    return sections


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list | tuple):
        return all(_finite(item) for item in value)
    return True


def _build_section(
    name: str, cls: type[Any], values: dict[str, Any], origins: Mapping[str, str]
) -> Any:
    """``cls(**values)``; a check across keys that fails is reported where the keys it names
    were set (or every key of the section that was set, when it names none)."""
    try:
        return cls(**values)
    except (ConfigError, TypeError, ValueError, ArithmeticError) as error:  # 1e308: overflow
        message = str(error)
        qualified = [key for key in values if re.search(rf"\b{name}\.{key}(?!\w)", message)]
        named = qualified or [
            key for key in values if re.search(rf"(?<![\w.]){re.escape(key)}(?!\w)", message)
        ]
        wheres = dict.fromkeys(origins[f"{name}.{key}"] for key in named or values)
        raise ConfigError(f"{', '.join(wheres)}: {message}") from error


# -- the TOML file --------------------------------------------------------------------------


class _KeyLines:
    """Where each table and key of a TOML file was written, found in its text."""

    _HEADER = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(#.*)?$")
    _PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
    _KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines: dict[tuple[str, ...], int] = {}
        table: tuple[str, ...] = ()
        open_quote: str | None = None  # inside a multi-line string
        for number, line in enumerate(text.splitlines(), 1):
            if open_quote is not None:
                if line.count(open_quote) % 2 == 1:
                    open_quote = None
                continue
            header = self._HEADER.match(line)
            if header is not None:
                table = self._dotted(header.group(1))
                self.lines.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key is None:
                continue
            self.lines.setdefault(table + self._dotted(key.group(1)), number)
            rest = line[key.end() :]
            open_quote = next((q for q in ('"""', "'''") if rest.count(q) % 2 == 1), None)

    @staticmethod
    def _dotted(text: str) -> tuple[str, ...]:
        parts = re.findall(r""""([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+)""", text)
        return tuple(next(p for p in groups if p) if any(groups) else "" for groups in parts)

    def where(self, *key: str) -> str:
        for length in range(len(key), 0, -1):  # a key in an inline table: the table's line
            line = self.lines.get(key[:length])
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)


MAX_SETTINGS_BYTES = 1 << 20  # a settings file is a few kB


def _read_toml(path: Path) -> tuple[dict[str, Any], _KeyLines]:
    try:  # a FIFO or device would block the reader: only a regular file is read
        text = read_regular_file(path, MAX_SETTINGS_BYTES, follow_symlinks=True).decode("utf-8")
    except UnsafeFileError as error:
        raise ConfigError(f"{path}: cannot read it ({error})") from error
    except OSError as error:
        raise ConfigError(f"{path}: cannot read it ({error.strerror or error})") from error
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error})") from error
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        line = re.search(r"at line (\d+)", str(error))
        where = f"{path}:{line.group(1)}" if line else str(path)
        raise ConfigError(f"{where}: not valid TOML ({error})") from error
    return data, _KeyLines(path, text)


# -- the environment ------------------------------------------------------------------------


def _environment_value(text: str, hint: Any) -> Any:
    try:
        document = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        document = {}
    literal = set(document) == {"value"}
    value: Any = document["value"] if literal else text
    if literal and not isinstance(value, str) and not _fits(value, hint) and _fits(text, hint):
        value = text  # "1234" for a string key is the string
    if _takes_list(hint) and not isinstance(value, list):
        return [] if text.strip() == "" else [value]
    return value


def _fits(value: Any, hint: Any) -> bool:
    try:
        coerce_value(value, hint, "")
    except ConfigError:
        return False
    return True


def _takes_list(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_takes_list(option) for option in typing.get_args(hint))
    return origin in (list, tuple)


# -- writing TOML ---------------------------------------------------------------------------


def to_toml(settings: Any, origins: Mapping[str, str] | None = None) -> str:
    """``settings`` (sections of plain values) as a TOML document; a key whose value is None
    is written as a comment (TOML has no null), and a value with an origin says it."""
    origins = origins or {}
    out: list[str] = []
    for section in dataclasses.fields(settings):
        table = getattr(settings, section.name)
        out.append(f"[{section.name}]")
        for field in dataclasses.fields(table):
            if not field.init:
                continue
            value = getattr(table, field.name)
            origin = origins.get(f"{section.name}.{field.name}")
            comment = f"  # from {origin}" if origin else ""
            if value is None:
                out.append(f"# {field.name} is unset{comment}")
            else:
                out.append(f"{field.name} = {toml_value(value)}{comment}")
        out.append("")
    return "\n".join(out)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        # JSON's escapes are TOML's; DEL is the one control character JSON leaves raw
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
