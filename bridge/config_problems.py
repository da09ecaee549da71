"""Config problems as the operator reads them: every error of a file with its key path and YAML line, one line
each (`ConfigError`), and warnings for valid but risky settings (`ConfigWarning`). The unknown-key hint suggests
the closest key and points at the complete example. Used by `bridge.config`; knows the models only as a root
passed in.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, get_args

import yaml
from pydantic import BaseModel

__all__ = ["EXAMPLE", "ConfigError", "ConfigWarning", "error_message", "key_lines", "key_name", "line_for"]


def _where(key: str | None, line: int | None) -> str:
    where = f"{key}: " if key else ""
    return f"line {line}: {where}" if line is not None else where


class ConfigError(Exception):
    """A configuration that cannot be used. `key`/`line` are those of the first problem; `all` lists every
    problem of the file (the first, then `more`), one line each, which is what the operator sees."""

    def __init__(
        self, message: str, key: str | None = None, line: int | None = None, more: Sequence[ConfigError] = ()
    ) -> None:
        self.key = key
        self.line = line
        self.message = message
        self.more = tuple(more)
        self.one_line = f"{_where(key, line)}{message}"
        super().__init__("\n".join([self.one_line, *(e.one_line for e in self.more)]))

    @property
    def all(self) -> tuple[ConfigError, ...]:
        return (self, *self.more)


@dataclass(frozen=True)
class ConfigWarning:
    """A config that is valid but risky or incomplete; `refuse_serving`: `run` must not start with it."""

    message: str
    key: str | None = None
    line: int | None = None
    refuse_serving: bool = False

    def __str__(self) -> str:
        return f"{_where(self.key, self.line)}{self.message}"


def key_lines(node: yaml.Node, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], int]:
    """Map each key path in a YAML document to its 1-based line, so errors can point at the line."""
    lines: dict[tuple[Any, ...], int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[path + (key,)] = key_node.start_mark.line + 1
            lines.update({k: v for k, v in key_lines(value_node, path + (key,)).items() if k != path + (key,)})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(key_lines(item, path + (i,)))
    return lines


def line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


# the complete example: every key with its default and a comment (config/demo.yaml leaves most of them out)
EXAMPLE = "config/wincc-dp.yaml"


def _model_at(root: type[BaseModel], loc: Sequence[Any]) -> type[BaseModel] | None:
    """The config section a key path points into (list indexes skipped), or None."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model is not None else None
        if field is None:
            return None
        model = _section_type(field.annotation)
    return model


def _section_type(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _section_type(arg)) is not None:
            return found
    return None


def error_message(root: type[BaseModel], err: Any, loc: tuple[Any, ...]) -> str:
    """The operator's words for one pydantic error at `loc` of the `root` model."""
    msg = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        section = _model_at(root, loc[:-1])
        close = difflib.get_close_matches(str(loc[-1]), list(section.model_fields), n=1) if section else []
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key ({hint}every key is in {EXAMPLE} and in the README's Configuration table)"
    if err["type"] == "missing":
        section = _model_at(root, loc[:-1])
        field = section.model_fields.get(str(loc[-1])) if section is not None and loc else None
        return "required value is missing" + (f": {field.description}" if field and field.description else "")
    return msg


def key_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
