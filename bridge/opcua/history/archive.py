"""The archive as HistoryRead walks it: page by page (each REST request paid from the call's work budget), and the
nearest values before and after a time (bounds, and the values an interpolation needs), plus the small helpers
every kind of HistoryRead answer shares."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta

from asyncua import ua

from bridge.opcua.history.aggregates import Sample
from bridge.opcua.history.budget import current_work
from bridge.opcua.model.status import quality_to_status
from bridge.opcua.model.types import from_wincc
from bridge.wincc.client import WinCCClient
from bridge.wincc.models import ArchiveValue, TagInfo

__all__ = ["Archive", "distinct", "not_found", "result", "sample", "utc"]

S = ua.StatusCodes
_MIN_TIME = datetime(1601, 1, 2, tzinfo=UTC)  # "not specified" in OPC UA (DateTime 0) decodes near 1601-01-01
# how far a bound search looks beyond the requested time (server specific, Part 11 4.4); each step is one window
_BOUND_REACH = (timedelta(seconds=10), timedelta(minutes=10), timedelta(days=1), timedelta(days=31))
LATEST = datetime(9999, 11, 1, tzinfo=UTC)  # later times are clamped: t + the longest bound reach stays valid


def utc(t: datetime | None) -> datetime | None:
    if t is None:
        return None
    t = t if t.tzinfo else t.replace(tzinfo=UTC)
    return None if t <= _MIN_TIME else min(t, LATEST)


def result(code: int, values: list[ua.DataValue] | None = None, cp: bytes | None = None) -> ua.HistoryReadResult:
    return ua.HistoryReadResult(
        StatusCode=ua.StatusCode(code), ContinuationPoint=cp, HistoryData=ua.HistoryData(DataValues=values or [])
    )


def not_found(t: datetime) -> ua.DataValue:
    return ua.DataValue(StatusCode=ua.StatusCode(S.BadBoundNotFound), SourceTimestamp=t, ServerTimestamp=t)


def distinct(*values: ArchiveValue | None) -> list[ArchiveValue]:
    """The given values (already in time order) without Nones and without repeating one object."""
    out: list[ArchiveValue] = []
    for v in values:
        if v is not None and all(v is not o for o in out):
            out.append(v)
    return out


def sample(tag: TagInfo, v: ArchiveValue) -> Sample:
    code = quality_to_status(v.quality).value
    try:
        value = float(from_wincc(tag.data_type, v.value))
    except (ValueError, TypeError, OverflowError):
        return Sample(v.timestamp, math.nan, False, False, S.BadTypeMismatch)
    severity = code >> 30  # 0 Good, 1 Uncertain, 2 (3) Bad
    return Sample(v.timestamp, value, severity == 0, severity == 1, code)


class Archive:
    """The WinCC archive as the readers of history/raw.py and history/processed.py walk it."""

    def __init__(self, client: WinCCClient, page_size: int) -> None:
        self._client = client
        self._page_size = page_size

    async def pages(
        self, tag: TagInfo, lo: datetime, hi: datetime, resumable: bool = False
    ) -> AsyncGenerator[list[ArchiveValue], None]:
        """The archive over [lo, hi], page by page; each REST request is paid from the budget of the call that
        asks for it (looked up per request: a forward read's stream outlives its call). A `resumable` read is only
        counted, never refused: it stops at its own checks and goes on with the next call."""

        def pay() -> None:
            work = current_work.get()
            if work is not None:
                work.spend(strict=not resumable)

        pay()  # the first request
        async with aclosing(self._client.archive(tag, lo, hi, self._page_size)) as pages:
            async for page in pages:
                yield page
                pay()  # asking for the next page is the next request

    async def scan_back(
        self, tag: TagInfo, t: datetime, inclusive: bool, usable: Callable[[ArchiveValue], bool] | None = None
    ) -> tuple[ArchiveValue | None, ArchiveValue | None, ArchiveValue | None]:
        """The last value before t (or at it, if inclusive) and, with `usable`, the last two usable ones, looking
        back in non-overlapping windows of growing reach."""
        last = u1 = u2 = None
        hi, hi_in = t, inclusive
        for reach in _BOUND_REACH:
            lo = t - reach
            w_last = w_u1 = w_u2 = None
            async with aclosing(self.pages(tag, lo, hi)) as pages:
                async for page in pages:
                    for v in page:
                        if v.timestamp > hi or (v.timestamp == hi and not hi_in):
                            continue
                        w_last = v
                        if usable is not None and usable(v):
                            w_u2, w_u1 = w_u1, v
            last = last or w_last
            if u1 is None:
                u1, u2 = w_u1, w_u2
            elif u2 is None:
                u2 = w_u1
            if last is not None and (usable is None or u1 is not None):
                break
            hi, hi_in = lo, False
        return last, u1, u2

    async def scan_forward(
        self, tag: TagInfo, t: datetime, inclusive: bool, usable: Callable[[ArchiveValue], bool] | None = None
    ) -> tuple[ArchiveValue | None, ArchiveValue | None]:
        """The first value after t (or at it, if inclusive) and, with `usable`, the first usable one."""
        first = None
        lo, lo_in = t, inclusive
        for reach in _BOUND_REACH:
            hi = min(t, LATEST) + reach
            async with aclosing(self.pages(tag, lo, hi)) as pages:
                async for page in pages:
                    for v in page:
                        if v.timestamp < lo or (v.timestamp == lo and not lo_in):
                            continue
                        first = first or v
                        if usable is None:
                            return first, None
                        if usable(v):
                            return first, v
            lo, lo_in = hi, False
        return first, None
