"""What every config section shares: unknown keys rejected, frozen values; secrets read from the environment or a
file (never from the YAML), held as SecretStr."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    SecretStr,
    ValidationInfo,
)


class Section(BaseModel):
    """A config section: unknown keys are errors (a typo is not a silently ignored setting), values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretMissing(ValueError):
    """A secret's source is named correctly but not available on this machine (variable unset, file unreadable)."""


def read_secret(env: str | None, file: Path | None, what: str) -> SecretStr | None:
    """Resolve a secret from its environment variable or file; raise ValueError naming the source only."""
    if env and file:
        raise ValueError(f"give either {what}_env or {what}_file, not both")
    if env:
        value = os.environ.get(env)
        if value is None:
            raise SecretMissing(f"environment variable {env} (from {what}_env) is not set")
        return SecretStr(value)
    if file:
        try:
            return SecretStr(Path(file).read_text(encoding="utf-8").rstrip("\r\n"))
        except OSError as exc:
            raise SecretMissing(f"cannot read {what}_file {file}: {exc.strerror}") from None
    return None


def secret_or_warning(env: str | None, file: Path | None, what: str, info: ValidationInfo) -> SecretStr | None:
    """`read_secret`, except that with `require_secrets=False` a secret this machine lacks is a warning."""
    try:
        return read_secret(env, file, what)
    except SecretMissing as exc:
        context = info.context or {}
        if context.get("require_secrets", True):
            raise
        context.setdefault("missing_secrets", []).append(f"{exc}: `run`, `browse` and `export-nodeset` need it")
        return None
