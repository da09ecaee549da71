"""Small tolerant parsers shared by both dialects: timestamps, qualities, numbers, chunking."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from bridge.wincc.errors import WinCCError
from bridge.wincc.models import TagError, TagErrorKind, TagValue

__all__ = ["chunks", "format_ts", "opt_float", "parse_ts", "to_wire"]

T = TypeVar("T")


def parse_ts(raw: Any) -> datetime:
    """ISO 8601 (with `Z` or an offset) -> aware UTC datetime. A missing offset is taken as UTC."""
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"timestamp {raw!r} is not ISO 8601 text")
    try:
        dt = datetime.fromisoformat(raw)  # the common form, "Z" included, on the hot path of every poll
    except ValueError:
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_ts(dt: datetime) -> str:
    """UTC with milliseconds and `Z`, the form WinCC documents (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def to_wire(value: Any) -> Any:
    """A value as it travels in JSON: datetimes as ISO text, everything else as is."""
    if isinstance(value, datetime):
        return format_ts(value)
    return value


def opt_float(raw: Any) -> float | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


async def read_in_batches(
    names: Sequence[str],
    batch_size: int,
    read_batch: Callable[[list[str]], Awaitable[dict[str, TagValue | TagError]]],
) -> dict[str, TagValue | TagError]:
    """Read `names` (deduplicated, order kept) in batches, concurrently (the transport caps requests in flight).

    A failed batch gives its tags TagError(bad_answer) and leaves the others usable; if every batch failed, the
    first error is raised so the caller can mark everything as unreachable at once."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    batches = list(chunks(wanted, batch_size))
    results = await asyncio.gather(*(read_batch(b) for b in batches), return_exceptions=True)
    out: dict[str, TagValue | TagError] = {}
    failures: list[WinCCError] = []
    for batch, result in zip(batches, results, strict=True):
        if isinstance(result, WinCCError):
            failures.append(result)
            for n in batch:
                out[n] = TagError(n, f"batch failed: {result}", TagErrorKind.bad_answer)
        elif isinstance(result, BaseException):
            raise result
        else:
            out.update(result)
    if len(failures) == len(batches):
        raise failures[0]
    return {n: out[n] for n in wanted}
