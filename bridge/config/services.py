"""The `sync:`, `history:`, `alarms:`, `health:` and `log:` sections."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
)

from bridge.config.base import Section


class SyncConfig(Section):
    interval_ms: int = Field(default=1000, ge=50, description="default poll group; also the fastest offered")
    batch_size: int = Field(default=500, ge=1, le=100_000)
    poll_groups_ms: list[int] = Field(
        default_factory=lambda: [1000, 5000, 10000],
        description="poll intervals a client's sampling interval is rounded up to",
    )
    idle_interval_ms: int = Field(default=10_000, ge=100, description="tags nobody subscribed or read recently")
    read_recent_s: float = Field(default=60.0, ge=0, description="a Read keeps a tag in fast polling this long")
    on_failure: Literal["bad", "uncertain"] = "bad"
    max_backoff_s: float = Field(default=30.0, gt=0)
    max_age_wait_ms: int = Field(
        default=250,
        ge=0,
        le=60_000,
        description="a Read whose MaxAge the cache cannot meet waits this long for WinCC, then the cache answers",
    )


class HistoryAggregatesConfig(Section):
    """Server defaults of the Part 13 AggregateConfiguration (used when a ReadProcessed request asks for them)."""

    treat_uncertain_as_bad: bool = True
    percent_data_bad: int = Field(default=100, ge=0, le=100)
    percent_data_good: int = Field(default=100, ge=0, le=100)
    use_sloped_extrapolation: bool = False


class HistoryConfig(Section):
    enabled: bool = True
    max_concurrency: int = Field(default=4, ge=1, le=64)
    page_size: int = Field(default=1000, ge=1, le=100_000, description="values per archive REST request")
    max_continuation_points: int = Field(default=100, ge=1)
    max_values_per_read: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="values (raw) or intervals (processed) per node in one HistoryRead answer; more come with a "
        "continuation point. Advertised as HistoryServerCapabilities.MaxReturnDataValues",
    )
    max_requests_per_read: int = Field(
        default=100,
        ge=2,
        le=100_000,
        description="archive REST requests per node in one HistoryRead answer; past it the answer ends with a "
        "continuation point (twice it without a point to resume from: BadTooManyOperations)",
    )
    max_read_s: float = Field(
        default=1.0,
        gt=0,
        description="seconds of archive work in one HistoryRead (same; "
        "asyncua clients give up on a server whose keep-alive read waits much longer)",
    )
    aggregates: HistoryAggregatesConfig = Field(default_factory=HistoryAggregatesConfig)


class AlarmsConfig(Section):
    enabled: bool = True
    poll_ms: int = Field(default=1000, ge=100)


class HealthConfig(Section):
    listen: str | None = "127.0.0.1:8081"

    @field_validator("listen")
    @classmethod
    def _host_port(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^[^\s:]*:\d{1,5}$|^\[[0-9a-fA-F:]+\]:\d{1,5}$", v):
            raise ValueError("must be host:port, e.g. 127.0.0.1:8081")
        return v


class LogConfig(Section):
    level: Literal["debug", "info", "warning", "error"] | None = Field(
        default=None,
        description="overrides --log-level; re-read on SIGHUP (null: the command line's level)",
    )
