"""What the two REST dialect clients share: lifecycle, batched reads through the caches, the paginator, archive
paging, and the mapping of a write's HTTP outcome to a WriteError. A dialect subclass keeps only its paths, field
names and shapes (see docs/wincc-rest-api.md)."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar, Self
from urllib.parse import quote

import httpx

from bridge.config import WinCCConfig
from bridge.wincc.errors import WinCCError, WinCCNotFound, WinCCTimeout, WinCCUnauthorized
from bridge.wincc.models import ArchiveValue, TagError, TagErrorKind, TagValue, WriteError, WriteResult, decode_quality
from bridge.wincc.parse import AnswerCache, BatchMemo, cached_result, item_error, parse_batch, parse_ts, read_in_batches
from bridge.wincc.transport import SecretSink, Transport

__all__ = [
    "DialectClient",
    "archive_values",
    "page_archive",
    "paginate",
    "quote_name",
    "write_failure",
    "write_status",
]

log = logging.getLogger(__name__)


def quote_name(name: str) -> str:
    """A tag, alarm or archive name as one URL path segment (every reserved character encoded, `/` included)."""
    return quote(name, safe="")


# ---- write outcomes ---------------------------------------------------------------------------------------------

# A non-2xx answer to a write (the whole request failed); a dialect may refine 400 from the body.
_WRITE_STATUS: dict[int, WriteError] = {
    400: WriteError.invalid,
    401: WriteError.forbidden,
    403: WriteError.forbidden,
    404: WriteError.not_found,
}


def write_status(status: int) -> WriteError:
    """The WriteError of a non-2xx answer to a write."""
    return _WRITE_STATUS.get(status, WriteError.unreachable if status >= 500 else WriteError.other)


def write_failure(exc: WinCCError) -> WriteError:
    """The WriteError of a write that got no usable answer (never retried: WinCC may have written it)."""
    if isinstance(exc, WinCCTimeout):
        return WriteError.timeout
    if isinstance(exc, WinCCUnauthorized):
        return WriteError.forbidden
    return WriteError.unreachable


# ---- paging -------------------------------------------------------------------------------------------------------

Page = tuple[list[Any], Any]  # (items, the next continuation point or None)


async def paginate(
    fetch: Callable[[str | None], Awaitable[Page]], bad: Callable[[str], WinCCError]
) -> AsyncGenerator[list[Any], None]:
    """Follow opaque continuation points until an answer has none. A point that is not text or repeats is a bad
    answer (`bad(reason)`): following it would loop forever."""
    continuation: str | None = None
    seen: set[str] = set()
    while True:
        items, nxt = await fetch(continuation)
        yield items
        if not nxt:
            return
        if not isinstance(nxt, str) or nxt in seen:
            raise bad("continuation point repeats or is not text")
        seen.add(nxt)
        continuation = nxt


async def page_archive(
    fetch: Callable[[datetime, int], Awaitable[list[ArchiveValue]]],
    start: datetime,
    end: datetime,
    page_size: int,
) -> AsyncGenerator[list[ArchiveValue], None]:
    """Read past the server's cap: ask again from the last timestamp and drop exactly the values already yielded
    at that timestamp (several values may share one). Stops when an answer brings nothing new."""
    cursor = start
    dup = 0  # values at `cursor` already yielded
    while True:
        limit = page_size + dup
        answer = await fetch(cursor, limit)
        fresh: list[ArchiveValue] = []
        skip = dup
        for v in answer:
            if v.timestamp < cursor or v.timestamp > end:
                continue
            if skip and v.timestamp == cursor:
                skip -= 1
                continue
            fresh.append(v)
        if not fresh:
            if answer and len(answer) >= limit and dup:
                log.warning("archive: more than %d values share one timestamp; stopping there", len(answer))
            return
        for i in range(0, len(fresh), page_size):
            yield fresh[i : i + page_size]
        last = fresh[-1].timestamp
        if last == cursor:
            dup += sum(1 for v in fresh if v.timestamp == last)
        else:
            cursor = last
            dup = sum(1 for v in fresh if v.timestamp == last)


def archive_value(raw: Any) -> ArchiveValue:
    if not isinstance(raw, dict):
        raise ValueError("archive value is not an object")
    quality = raw.get("quality", raw.get("qualityCode"))
    timestamp = parse_ts(raw.get("timestamp"))
    return ArchiveValue(value=raw.get("value"), quality=decode_quality(quality), timestamp=timestamp)


def archive_values(raw: Any, where: str) -> list[ArchiveValue]:
    """The readable values of an archive answer; an unreadable one is logged and skipped."""
    out: list[ArchiveValue] = []
    for item in raw:
        try:
            out.append(archive_value(item))
        except (ValueError, TypeError) as exc:
            log.warning("%s: skipping an archive value: %s", where, exc)
    return out


# ---- the client base --------------------------------------------------------------------------------------------


class DialectClient:
    """The WinCCClient machinery both dialects share. A subclass names its read paths and fields (the class
    attributes below), how a batch answer holds its items, and implements browse, write, alarms and archive."""

    dialect: str
    READ_MANY_PATH: ClassVar[str]
    NAME_KEY: ClassVar[str]  # an item's name in a batch read answer
    ERROR_TEXTS: ClassVar[tuple[str, ...]]  # where an item's error text may be
    NOT_FOUND_CODE: ClassVar[int | None] = None  # the item errorCode meaning "unknown tag", if the dialect has one
    NOT_FOUND_TEXT: ClassVar[str] = "not found (HTTP 404)"

    def __init__(
        self,
        config: WinCCConfig,
        transport: Transport | None = None,
        *,
        batch_size: int = 500,
        on_secret: SecretSink | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self._config = config
        self._t = transport if transport is not None else Transport(config, on_secret=on_secret)
        self._batch = batch_size
        self._answers = AnswerCache()
        # room for every batch of the current poll plan: each tag answered is in one batch (see BatchMemo)
        self._memo = BatchMemo(self.NAME_KEY, budget=lambda: 2 * len(self._answers) + 4 * batch_size)
        self._logged_types: set[str] = set()  # tags whose unknown WinCC type was logged (once each)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._t.aclose()

    # -- dialect hooks ----------------------------------------------------------------------------------------
    def _read_one_path(self, name: str) -> str:
        raise NotImplementedError

    def _read_many_body(self, batch: list[str]) -> Any:
        raise NotImplementedError

    def _batch_items(self, body: Any) -> list[Any] | None:
        """The items of a batch read answer, or None if the answer does not hold them."""
        raise NotImplementedError

    def _fields(self, raw: dict[str, Any], *, single: bool) -> tuple[Any, Any, Any]:
        """(value, quality, timestamp) of a read answer item (`single`: the whole answer of a read-one)."""
        raise NotImplementedError

    # -- read -----------------------------------------------------------------------------------------------
    async def read(self, names: Sequence[str]) -> Mapping[str, TagValue | TagError]:
        return await read_in_batches(names, self._batch, self._read_chunk, self._read_one)

    async def _read_one(self, name: str) -> TagValue | TagError:
        path = self._read_one_path(name)
        self._answers.age()
        try:
            body = await self._t.request_json("GET", path, retry=True)
        except WinCCNotFound:  # also where the dialect has an item code for it: some installations answer 404
            self._answers.drop(name)
            return TagError(name, self.NOT_FOUND_TEXT, TagErrorKind.not_found)
        if type(body) is not dict:
            raise self._t.bad_answer("GET", path, "answer is not an object")
        return self._result(name, body, single=True)

    def _result(self, name: str, raw: dict[str, Any], *, single: bool = False) -> TagValue | TagError:
        value, quality, timestamp = self._fields(raw, single=single)
        error = item_error(name, raw, self.ERROR_TEXTS, self.NOT_FOUND_CODE)
        return cached_result(self._answers, name, value, quality, timestamp, error)

    def _item(self, name: str, raw: dict[str, Any]) -> TagValue | TagError:
        """One item of a batch answer (also the memo's parser for the items that changed)."""
        return self._result(name, raw)

    async def _read_chunk(self, batch: list[str]) -> Mapping[str, TagValue | TagError]:
        path = self.READ_MANY_PATH
        response = await self._t.send("POST", path, json=self._read_many_body(batch), retry=True)
        key = tuple(batch)
        replayed = self._memo.replay(key, response.content, self._item)
        if replayed is not None:
            return replayed
        items = self._batch_items(self._t.parse_json("POST", path, response))
        if items is None:
            raise self._t.bad_answer("POST", path, f"answer has no list of {self.NAME_KEY} items")
        out = self._parse_chunk(batch, items)
        self._memo.learn(key, response.content, items, out)
        return out

    def _parse_chunk(self, batch: list[str], items: list[Any]) -> dict[str, TagValue | TagError]:
        self._answers.age()
        return parse_batch(batch, items, self.NAME_KEY, self._item)

    # -- write ----------------------------------------------------------------------------------------------
    async def _put(self, name: str, path: str, body: Any) -> tuple[WriteResult | None, Any]:
        """PUT one write: (the WriteResult if it failed at the HTTP level, else None; the parsed JSON answer)."""
        try:
            response = await self._t.send("PUT", path, json=body, kind="write", check=False)
        except WinCCError as exc:
            return WriteResult(name, write_failure(exc), str(exc)), None
        if not 200 <= response.status_code < 300:
            return self._refusal(name, path, response), None
        try:
            return None, self._t.parse_json("PUT", path, response)
        except WinCCError as exc:
            return WriteResult(name, WriteError.unreachable, str(exc)), None

    def _refusal(self, name: str, path: str, response: httpx.Response) -> WriteResult:
        """The result of a non-2xx answer to a write of `name`; a dialect may read the body."""
        return WriteResult(name, write_status(response.status_code), f"PUT {path}: HTTP {response.status_code}")
