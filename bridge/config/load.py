"""YAML text or a file -> a validated BridgeConfig, or a ConfigError naming every bad key and its line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    ValidationError,
)

from bridge.config.root import BridgeConfig
from bridge.config_problems import ConfigError, ConfigWarning, error_message, key_lines, key_name, line_for


def _placeholder_hashes(config: BridgeConfig, lines: dict[tuple[Any, ...], int]) -> list[ConfigWarning]:
    """The examples' `scrypt$...REPLACEwithREAL...` hashes are well-formed and can never match a password."""
    found = []
    for i, user in enumerate(config.opcua.users):
        if "replace" in user.password_hash.get_secret_value().lower():
            loc = ("opcua", "users", i, "password_hash")
            found.append(
                ConfigWarning(
                    f"user {user.name!r} has the example's placeholder hash, so nobody can log in as {user.name!r}; "
                    "make a real one with `wincc-opcua-bridge hash-password`",
                    key=key_name(loc),
                    line=line_for(loc, lines),
                    refuse_serving=True,
                )
            )
    return found


def parse_config(text: str, source: str = "<config>", *, require_secrets: bool = True) -> BridgeConfig:
    """Validate YAML text. Raises ConfigError naming every bad key and its line.

    `require_secrets=False`: a password variable that is not set (or a password file that cannot be read) is a
    warning in `BridgeConfig.warnings`, not an error, so the structure can be checked anywhere."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"{source} is not valid YAML: {getattr(exc, 'problem', exc)}", line=line) from None
    if data is None:
        data, node = {}, None
    if not isinstance(data, dict):
        raise ConfigError(f"{source} must be a mapping of sections (wincc, opcua, sync, ...)", line=1)
    lines = key_lines(node) if node is not None else {}
    context: dict[str, Any] = {"require_secrets": require_secrets}
    try:
        config = BridgeConfig.model_validate(data, context=context)
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            loc = tuple(err["loc"])
            problems.append(
                ConfigError(error_message(BridgeConfig, err, loc), key=key_name(loc) or None, line=line_for(loc, lines))
            )
        # in the file's order (pydantic's is the models' field order); problems without a line last
        problems.sort(key=lambda e: e.line if e.line is not None else 1 << 30)
        first = problems[0]
        raise ConfigError(first.message, key=first.key, line=first.line, more=problems[1:]) from None
    secrets = [
        ConfigWarning(m, key="wincc.auth", line=line_for(("wincc", "auth"), lines))
        for m in dict.fromkeys(context.get("missing_secrets", []))
    ]  # with sources: once per variable
    config._warnings = (*secrets, *_placeholder_hashes(config, lines))
    return config


def load_config(path: str | Path, *, require_secrets: bool = True) -> BridgeConfig:
    """Read and validate a config file. Raises ConfigError (never another exception) when it cannot be used."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {p} is not UTF-8 text") from None
    return parse_config(text, source=str(p), require_secrets=require_secrets)
