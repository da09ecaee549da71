"""The one interface the UA side uses to talk to WinCC, whatever the dialect.

`open_client(config)` returns an implementation for `wincc.dialect`; use it as an async context manager.
Every method raises only `WinCCError` subclasses for whole-request failures; per-item failures come back as
`TagError` / `WriteResult(error=...)` in the result, so one bad tag never spoils a batch.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bridge.wincc.models import Alarm, ArchiveValue, Folder, TagError, TagInfo, TagValue, WriteResult

if TYPE_CHECKING:
    from bridge.config import WinCCConfig

__all__ = [
    "AlarmNews",
    "AlarmPush",
    "AlarmPushingClient",
    "PushingClient",
    "ValuePush",
    "WinCCClient",
    "open_client",
]


@runtime_checkable
class WinCCClient(Protocol):
    dialect: str

    async def __aenter__(self) -> WinCCClient: ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def aclose(self) -> None: ...

    def browse(self) -> AsyncGenerator[Folder | TagInfo, None]:
        """Every folder and tag under `wincc.browse_root`, following continuation points. Parents before children."""
        ...

    async def read(self, names: Sequence[str]) -> Mapping[str, TagValue | TagError]:
        """Current values, in batches of `batch_size`, at most `max_concurrency` requests in flight; exactly one
        tag is read with the dialect's read-one call. A tag WinCC repeats unchanged comes back as the very
        TagValue object returned before.

        Raises WinCCError only if every batch failed the same way (e.g. WinCC unreachable); a failed batch among
        good ones gives its tags TagError."""
        ...

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        """Write values; one WriteResult per name. Never retried. Never raises for per-item or transport errors:
        a timeout gives WriteError.timeout, an unreachable WinCC WriteError.unreachable. Writes go ahead of
        queued reads for a free request slot."""
        ...

    async def active_alarms(self) -> list[Alarm]: ...

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        """Raises WinCCNotFound (unknown id), WinCCRejected with status 409 (already acknowledged),
        NotImplementedError (dialect without an acknowledge call and none configured)."""
        ...

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]: ...

    def archive(
        self, tag: TagInfo | str, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncGenerator[list[ArchiveValue], None]:
        """Archived values of one tag, oldest first, start and end inclusive, as pages of at most page_size.
        Pages past the REST cap are fetched by asking again from the last timestamp (dropping repeats)."""
        ...


@runtime_checkable
class ValuePush(Protocol):
    """Value changes pushed by WinCC (the unified dialect's WebSocket) for the tags the caller wants."""

    @property
    def covered(self) -> frozenset[str]:
        """The tags being pushed right now (a copy); the caller polls every other tag."""
        ...

    @property
    def covered_count(self) -> int:
        """How many tags are being pushed right now."""
        ...

    def covers(self, name: str) -> bool:
        """Whether this tag is being pushed right now: what a per-tag check asks (`covered` copies every name)."""
        ...

    def want(self, names: Iterable[str]) -> None: ...

    def start(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class PushingClient(Protocol):
    """A client whose WinCC can push value changes (unified); the sync engine then polls only what is not pushed."""

    def open_push(
        self,
        on_values: Callable[[dict[str, TagValue | TagError]], Awaitable[None]],
        on_covered_changed: Callable[[], None],
    ) -> ValuePush: ...


@dataclass(frozen=True, slots=True)
class AlarmNews:
    """What WinCC pushed about its active alarms. `complete`: `alarms` is the whole active list (the first
    notification after a (re)subscribe), to be reconciled like a poll's answer; otherwise only these alarms changed
    and `gone` names the ids that left the list (went and acknowledged)."""

    alarms: list[Alarm]
    gone: list[str]
    complete: bool


@runtime_checkable
class AlarmPush(Protocol):
    """Alarm changes pushed by WinCC (the unified dialect's `activeAlarms` subscription)."""

    @property
    def live(self) -> bool:
        """The subscription delivers right now (its current set has arrived); while not, the caller polls."""
        ...

    def start(self) -> None: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class AlarmPushingClient(Protocol):
    """A client whose WinCC pushes alarm changes (unified); the alarm service then polls only while it cannot."""

    def open_alarm_push(
        self, on_alarms: Callable[[AlarmNews], Awaitable[None]], on_live_changed: Callable[[], None]
    ) -> AlarmPush: ...


def open_client(
    config: WinCCConfig, *, batch_size: int = 500, on_secret: Callable[[str], None] | None = None
) -> WinCCClient:
    """The client for `config.dialect`. No I/O happens here; use the result as an async context manager.

    `on_secret` is told every secret the client sends (the password, the Basic credentials, each login token as it
    arrives), e.g. `RedactingFilter.add` from bridge.runtime.logs, so no log line can ever show one."""
    # Imported here: the dialect modules import the transport (httpx), which the Protocol alone does not need.
    if config.dialect == "dp":
        from bridge.wincc.dp import DpClient

        return DpClient(config, batch_size=batch_size, on_secret=on_secret)
    if config.dialect == "restservice":
        from bridge.wincc.restservice import RestServiceClient

        return RestServiceClient(config, batch_size=batch_size, on_secret=on_secret)
    if config.dialect == "unified":
        from bridge.wincc.unified import UnifiedClient

        return UnifiedClient(config, batch_size=batch_size, on_secret=on_secret)
    raise ValueError(f"unknown WinCC dialect {config.dialect!r}")
