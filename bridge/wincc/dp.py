"""Dialect `dp`: the WinCC REST data-point API (see docs/wincc-rest-api.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bridge.config import WinCCConfig
from bridge.wincc.errors import WinCCError, WinCCNotFound, WinCCTimeout, WinCCUnauthorized
from bridge.wincc.models import (
    Alarm,
    AlarmState,
    ArchiveValue,
    DataType,
    Folder,
    TagError,
    TagErrorKind,
    TagInfo,
    TagValue,
    WriteError,
    WriteResult,
    decode_quality,
)
from bridge.wincc.parse import (
    AnswerCache,
    BatchMemo,
    cached_result,
    format_ts,
    item_error,
    opt_float,
    parse_batch,
    parse_ts,
    read_in_batches,
    to_wire,
)
from bridge.wincc.selection import select_browse
from bridge.wincc.transport import SecretSink, Transport

__all__ = ["DpClient", "page_archive"]

log = logging.getLogger(__name__)

READ_MANY_PATH = "/WinCC/REST/Tags/ReadMultiple"
# Where an item's error may be written: the documented `Error`, and the lower-case `error` some servers send.
_ERROR_TEXTS = ("Error", "error")


def _q(name: str) -> str:
    return quote(name, safe="")


async def page_archive(
    fetch: Callable[[datetime, int], Awaitable[list[ArchiveValue]]],
    start: datetime,
    end: datetime,
    page_size: int,
) -> AsyncIterator[list[ArchiveValue]]:
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
    return ArchiveValue(value=raw.get("value"), quality=decode_quality(quality), timestamp=parse_ts(raw.get("timestamp")))


def archive_values(raw: Any, where: str) -> list[ArchiveValue]:
    out: list[ArchiveValue] = []
    for item in raw:
        try:
            out.append(archive_value(item))
        except (ValueError, TypeError) as exc:
            log.warning("%s: skipping an archive value: %s", where, exc)
    return out


class DpClient:
    """WinCCClient for the dp dialect."""

    dialect = "dp"

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
        self._unknown_types: set[str] = set()
        self._answers = AnswerCache()
        self._memo = BatchMemo("Name")

    async def __aenter__(self) -> DpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._t.aclose()

    # -- browse ---------------------------------------------------------------------------------------------

    def browse(self) -> AsyncIterator[Folder | TagInfo]:
        return select_browse(self._config, self._browse_root)

    async def _browse_root(self, root: str) -> AsyncIterator[Folder | TagInfo]:
        root = root.strip()
        if root and not root.endswith("."):
            root += "."
        if root:
            segments = tuple(s for s in root[:-1].split(".") if s)
            for i in range(1, len(segments) + 1):
                yield Folder(path=segments[:i])
        # Depth first with an explicit stack: parents are yielded before their children, no recursion limit.
        stack = [root]
        while stack:
            path = stack.pop()
            children: list[str] = []
            async for item in self._browse_level(path):
                if isinstance(item, Folder):
                    yield item
                    children.append(".".join(item.path) + ".")
                else:
                    yield item
            stack.extend(reversed(children))

    async def _browse_level(self, path: str) -> AsyncIterator[Folder | TagInfo]:
        continuation: str | None = None
        seen: set[str] = set()
        while True:
            params = {"path": path, "limit": self._config.browse_page_size, "continuation": continuation}
            body = await self._t.request_json("GET", "/api/dp/browse", params=params, retry=True)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise self._t.bad_answer("GET", "/api/dp/browse", "answer has no items list")
            for raw in body["items"]:
                item = self._browse_item(raw)
                if item is not None:
                    yield item
            nxt = body.get("continuation")
            if not nxt:
                return
            if not isinstance(nxt, str) or nxt in seen:
                raise self._t.bad_answer("GET", "/api/dp/browse", "continuation point repeats or is not text")
            seen.add(nxt)
            continuation = nxt

    def _browse_item(self, raw: Any) -> Folder | TagInfo | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip("."):
            log.warning("browse: skipping an item without a name: %r", raw)
            return None
        name: str = raw["name"]
        kind = raw.get("kind")
        if kind == "folder":
            return Folder(path=tuple(s for s in name.rstrip(".").split(".")))
        segments = name.split(".")
        type_text = raw.get("type")
        try:
            data_type = DataType(type_text)
        except ValueError:
            if name not in self._unknown_types:
                self._unknown_types.add(name)
                log.warning("browse: tag %s has unknown type %r; offering it as double", name, type_text)
            data_type = DataType.double
        unit = raw.get("unit")
        desc = raw.get("description")
        return TagInfo(
            name=name,
            data_type=data_type,
            folder=tuple(segments[:-1]),
            display_name=segments[-1] or name,
            unit=unit if isinstance(unit, str) else None,
            description=desc if isinstance(desc, str) else None,
            low=opt_float(raw.get("min")),
            high=opt_float(raw.get("max")),
            writable=raw.get("writable") is True,
            archived=raw.get("archived") is True,
        )

    # -- read -----------------------------------------------------------------------------------------------

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        return await read_in_batches(names, self._batch, self._read_chunk, self._read_one)

    async def _read_one(self, name: str) -> TagValue | TagError:
        path = f"/api/dp/{_q(name)}"
        self._answers.age()
        try:
            body = await self._t.request_json("GET", path, retry=True)
        except WinCCNotFound:
            self._answers.drop(name)
            return TagError(name, "not found (HTTP 404)", TagErrorKind.not_found)
        if type(body) is not dict:
            raise self._t.bad_answer("GET", path, "answer is not an object")
        error = item_error(name, body, _ERROR_TEXTS)
        return cached_result(
            self._answers, name, body.get("value"), body.get("quality"), body.get("timestamp"), error
        )

    def _item(self, name: str, raw: dict[str, Any]) -> TagValue | TagError:
        """One item of a ReadMultiple answer (the memo's parser for the items that changed)."""
        value, quality, timestamp = raw.get("Value"), raw.get("Quality"), raw.get("Timestamp")
        error = item_error(name, raw, _ERROR_TEXTS)
        return cached_result(self._answers, name, value, quality, timestamp, error)

    async def _read_chunk(self, batch: list[str]) -> dict[str, TagValue | TagError]:
        response = await self._t.send("POST", READ_MANY_PATH, json={"TagNames": batch}, retry=True)
        key = tuple(batch)
        replayed = self._memo.replay(key, response.content, self._item)
        if replayed is not None:
            return replayed
        body = self._t.parse_json("POST", READ_MANY_PATH, response)
        if not isinstance(body, dict) or not isinstance(body.get("Tags"), list):
            raise self._t.bad_answer("POST", READ_MANY_PATH, "answer has no Tags list")
        out = self._parse_chunk(batch, body["Tags"])
        self._memo.learn(key, response.content, body["Tags"], out)
        return out

    def _parse_chunk(self, batch: list[str], items: list[Any]) -> dict[str, TagValue | TagError]:
        self._answers.age()
        return parse_batch(batch, items, "Name", self._item)

    # -- write ----------------------------------------------------------------------------------------------

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        results = await asyncio.gather(*(self._write_one(n, v) for n, v in items.items()))
        return {r.name: r for r in results}

    async def _write_one(self, name: str, value: Any) -> WriteResult:
        path = f"/api/dp/{_q(name)}"
        try:
            response = await self._t.send("PUT", path, json={"value": to_wire(value)}, kind="write", check=False)
        except WinCCTimeout as exc:
            return WriteResult(name, WriteError.timeout, str(exc))
        except WinCCUnauthorized as exc:
            return WriteResult(name, WriteError.forbidden, str(exc))
        except WinCCError as exc:
            return WriteResult(name, WriteError.unreachable, str(exc))
        status = response.status_code
        where = f"PUT {path}: HTTP {status}"
        if 200 <= status < 300:
            try:
                body = self._t.parse_json("PUT", path, response)
            except WinCCError as exc:
                return WriteResult(name, WriteError.unreachable, str(exc))
            if not isinstance(body, dict):
                return WriteResult(name, WriteError.unreachable, f"{where}: answer is not an object")
            return WriteResult(name, None, "", body.get("value", value))
        if status == 400:
            text = ""
            try:
                body = response.json()
                if isinstance(body, dict) and isinstance(body.get("error"), str):
                    text = body["error"]
            except ValueError:
                pass
            low = text.strip().lower()
            if low.startswith("type mismatch"):
                kind = WriteError.type_mismatch
            elif low.startswith("out of range"):
                kind = WriteError.out_of_range
            else:
                kind = WriteError.invalid
            return WriteResult(name, kind, f"{where}: {text}" if text else where)
        if status in (401, 403):
            return WriteResult(name, WriteError.forbidden, where)
        if status == 404:
            return WriteResult(name, WriteError.not_found, where)
        if status >= 500:
            return WriteResult(name, WriteError.unreachable, where)
        return WriteResult(name, WriteError.other, where)

    # -- alarms ---------------------------------------------------------------------------------------------

    async def active_alarms(self) -> list[Alarm]:
        body = await self._t.request_json("GET", "/api/alerts/active", retry=True)
        return self._alerts("/api/alerts/active", body)

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]:
        params = {"start": format_ts(start), "end": format_ts(end), "limit": limit}
        body = await self._t.request_json("GET", "/api/alerts/history", params=params, retry=True)
        return self._alerts("/api/alerts/history", body)

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        path = f"/api/alert/{_q(alarm_id)}/acknowledge"
        await self._t.request_json("POST", path, json={"comment": comment, "user": user}, kind="write")

    def _alerts(self, path: str, body: Any) -> list[Alarm]:
        if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
            raise self._t.bad_answer("GET", path, "answer has no alerts list")
        out: list[Alarm] = []
        for raw in body["alerts"]:
            try:
                out.append(_alert(raw))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("GET %s: skipping an alert: %s", path, exc)
        return out

    # -- archive --------------------------------------------------------------------------------------------

    async def archive(
        self, tag: TagInfo | str, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncIterator[list[ArchiveValue]]:
        name = tag.name if isinstance(tag, TagInfo) else tag
        path = f"/api/history/{_q(name)}"

        async def fetch(since: datetime, limit: int) -> list[ArchiveValue]:
            params = {"start": format_ts(since), "end": format_ts(end), "limit": limit}
            body = await self._t.request_json("GET", path, params=params, retry=True)
            if not isinstance(body, dict) or not isinstance(body.get("values"), list):
                raise self._t.bad_answer("GET", path, "answer has no values list")
            return archive_values(body["values"], f"GET {path}")

        async for page in page_archive(fetch, start, end, page_size):
            yield page


def _alert(raw: Any) -> Alarm:
    if not isinstance(raw, dict):
        raise TypeError("alert is not an object")
    alarm_id = raw["id"]
    if alarm_id is None or isinstance(alarm_id, (dict, list)):
        raise ValueError("alert has no id")
    known = {"id", "dp", "text", "class", "priority", "state", "acknowledged", "timestamp", "value"}
    priority = raw.get("priority", 1)
    return Alarm(
        id=str(alarm_id),
        text=str(raw.get("text") or ""),
        state=AlarmState(str(raw.get("state", "came")).lower()),
        acknowledged=raw.get("acknowledged") is True,
        timestamp=parse_ts(raw.get("timestamp")),
        tag=raw.get("dp") if isinstance(raw.get("dp"), str) else None,
        alarm_class=str(raw.get("class") or "Alarm"),
        priority=int(priority) if isinstance(priority, (int, float)) and not isinstance(priority, bool) else 1,
        value=raw.get("value"),
        extra={k: v for k, v in raw.items() if k not in known},
    )


