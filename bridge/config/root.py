"""The whole config file: BridgeConfig, its sections and the rules that span them (sources and their defaults)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import (
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

from bridge.config.base import Section
from bridge.config.opcua import OpcUaConfig
from bridge.config.services import AlarmsConfig, HealthConfig, HistoryConfig, LogConfig, SyncConfig
from bridge.config.wincc import WinCCConfig
from bridge.config_problems import ConfigWarning

_SOURCE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BridgeConfig(Section):
    wincc: WinCCConfig = Field(description="the WinCC REST API to serve (at least its url)")
    sources: list[WinCCConfig] = Field(
        default_factory=list,
        description="several WinCC stations, each a `wincc:` block with a name; `wincc:` then holds their defaults",
    )
    opcua: OpcUaConfig = Field(default_factory=OpcUaConfig)
    sync: SyncConfig = Field(default_factory=SyncConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    _warnings: tuple[ConfigWarning, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[ConfigWarning, ...]:
        """Valid but risky or incomplete settings, for the CLI to log (see ConfigWarning.refuse_serving)."""
        return self._warnings

    @model_validator(mode="before")
    @classmethod
    def _source_defaults(cls, data: Any) -> Any:
        """With `sources:`, every key of `wincc:` is a default each source may override (auth, timeouts...)."""
        if not isinstance(data, dict) or not isinstance(data.get("sources"), list):
            return data
        wincc = data.get("wincc")
        defaults: dict[str, Any] = wincc if isinstance(wincc, dict) else {}
        sources = [_deep_merge(defaults, s) if isinstance(s, dict) else s for s in data["sources"]]
        out = {**data, "sources": sources}
        if "url" not in defaults and sources and isinstance(sources[0], dict) and "url" in sources[0]:
            # `wincc:` only holds the defaults here and needs no url of its own (each source has one; without
            # sources wincc.url is required)
            out["wincc"] = {**defaults, "url": sources[0]["url"]}
        return out

    @field_validator("sources")
    @classmethod
    def _named_sources(cls, v: list[WinCCConfig]) -> list[WinCCConfig]:
        names = [s.name for s in v]
        for i, name in enumerate(names):
            if not name:
                raise ValueError(f"sources[{i}] needs a name (its folder under Objects/WinCC and NodeId prefix)")
            if not _SOURCE_NAME.match(name):
                raise ValueError(f"source name {name!r}: use letters, digits, '_', '-', '.' (no '/'), at most 64")
        dupes = sorted({n for n in names if names.count(n) > 1 and n})
        if dupes:
            raise ValueError(f"source names must be unique: {', '.join(str(d) for d in dupes)}")
        return v

    @model_validator(mode="after")
    def _name_only_in_sources(self) -> BridgeConfig:
        if self.wincc.name is not None and not self.sources:
            raise ValueError("wincc.name is only for the entries of sources:")
        return self

    def stations(self) -> list[WinCCConfig]:
        """The WinCC stations to serve: every source, or the one `wincc:`."""
        return list(self.sources) if self.sources else [self.wincc]

    def masked(self) -> dict[str, Any]:
        """The effective config as plain data, every secret replaced by '***'."""
        return _mask(self.model_dump(mode="json"))


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _mask(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("***" if k in ("password_hash", "password", "token") and v else _mask(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_mask(v) for v in data]
    return data
