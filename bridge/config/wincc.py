"""The `wincc:` section (and each entry of `sources:`): where the WinCC REST API is and how to talk to it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bridge.config.base import Section, secret_or_warning


class AuthConfig(Section):
    mode: Literal["none", "basic", "token"] = "none"
    username: str | None = None
    password_env: str | None = None
    password_file: Path | None = None
    _password: SecretStr | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> AuthConfig:
        if self.mode != "none" and not self.username:
            raise ValueError(f"auth mode {self.mode!r} needs a username")
        self._password = secret_or_warning(self.password_env, self.password_file, "password", info)
        if self.mode != "none" and not (self.password_env or self.password_file):
            raise ValueError(f"auth mode {self.mode!r} needs password_env or password_file")
        return self

    @property
    def password(self) -> SecretStr | None:
        return self._password


class TlsConfig(Section):
    verify: bool = True
    ca_file: Path | None = None

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, v: Path | None) -> Path | None:
        if v is not None and not Path(v).is_file():
            raise ValueError(f"CA file {v} does not exist")
        return v


class TimeoutsConfig(Section):
    connect_s: float = Field(default=5.0, gt=0)
    read_s: float = Field(default=10.0, gt=0)
    write_s: float = Field(default=10.0, gt=0)


class RetryConfig(Section):
    attempts: int = Field(default=3, ge=1, le=20)
    backoff_s: float = Field(default=0.5, ge=0)
    max_backoff_s: float = Field(default=30.0, gt=0)


class AcknowledgeRequest(Section):
    """restservice has no acknowledge call; a site that has one (e.g. a script endpoint) names it here.

    `path` may contain `{id}`; `body` is a JSON template whose string values may contain `{id}`, `{comment}`
    and `{user}`.
    """

    method: Literal["POST", "PUT"] = "POST"
    path: str
    body: dict[str, Any] = Field(default_factory=dict)


class WinCCConfig(Section):
    # required: a default address would let a config that forgot it run against whatever answers there
    url: str = Field(
        description="the WinCC REST base URL, e.g. https://wincc-host:8700 (dp), "
        "https://wincc-host:34568/WinCCRestService (restservice) or "
        "https://unified-host/graphql (unified)"
    )
    dialect: Literal["dp", "restservice", "unified"] = "dp"
    ws_url: str | None = Field(default=None, description="unified: the WebSocket URL (default: url with ws/wss)")
    auth: AuthConfig = Field(default_factory=AuthConfig)
    tls: TlsConfig = Field(default_factory=TlsConfig)
    browse_root: str = ""
    timeouts: TimeoutsConfig = Field(default_factory=TimeoutsConfig)
    retry: RetryConfig = Field(default_factory=RetryConfig)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    requests_per_second: float | None = Field(default=None, gt=0)
    browse_page_size: int = Field(default=1000, ge=1, le=100_000)
    rebrowse_s: float = Field(default=0, ge=0, description="0 = browse only at start")
    browse_snapshot: Path | None = Field(
        default=Path("nodesets/last-browse.xml"),
        description="NodeSet2 model of the last good browse; used at start when WinCC is unreachable (null = off)",
    )
    acknowledge: AcknowledgeRequest | None = None
    # tag selection (bridge/wincc/selection.py): shell-style globs on the exact tag name, case-sensitive
    include: list[str] = Field(default_factory=list, description="serve only tags matching one of these (empty: all)")
    exclude: list[str] = Field(default_factory=list, description="never serve tags matching one of these")
    browse_roots: list[str] = Field(default_factory=list, description="several roots; browse_root is the one-root form")
    name: str | None = Field(default=None, description="the station's folder under Objects/WinCC (sources only)")

    @field_validator("include", "exclude", "browse_roots")
    @classmethod
    def _no_blank(cls, v: list[str]) -> list[str]:
        if any(not isinstance(p, str) or not p.strip() for p in v):
            raise ValueError("entries must be non-empty text")
        return v

    @model_validator(mode="after")
    def _one_root_form(self) -> WinCCConfig:
        if self.browse_root and self.browse_roots:
            raise ValueError("give browse_root or browse_roots, not both")
        return self

    @field_validator("url")
    @classmethod
    def _http_url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+", v):
            raise ValueError("must be an http:// or https:// URL")
        if "@" in v.split("//", 1)[1].split("/", 1)[0]:
            raise ValueError("credentials do not belong in the URL; use wincc.auth")
        return v.rstrip("/")
