"""Dialect `dp`: the WinCC REST data-point API (see docs/wincc-rest-api.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Any

import httpx

from bridge.wincc.dialect import DialectClient, archive_values, page_archive, paginate, quote_name
from bridge.wincc.models import (
    Alarm,
    AlarmState,
    ArchiveValue,
    DataType,
    Folder,
    TagInfo,
    WriteError,
    WriteResult,
)
from bridge.wincc.parse import format_ts, opt_float, parse_ts, to_wire
from bridge.wincc.selection import select_browse

__all__ = ["DpClient", "archive_values", "page_archive"]

log = logging.getLogger(__name__)

READ_MANY_PATH = "/WinCC/REST/Tags/ReadMultiple"
BROWSE_PATH = "/api/dp/browse"
_WRITE_400 = {"type mismatch": WriteError.type_mismatch, "out of range": WriteError.out_of_range}


def _dp_path(name: str) -> str:
    return f"/api/dp/{quote_name(name)}"


class DpClient(DialectClient):
    """WinCCClient for the dp dialect."""

    dialect = "dp"
    READ_MANY_PATH = READ_MANY_PATH
    NAME_KEY = "Name"
    # Where an item's error may be written: the documented `Error`, and the lower-case `error` some servers send.
    ERROR_TEXTS = ("Error", "error")

    # -- browse ---------------------------------------------------------------------------------------------

    def browse(self) -> AsyncGenerator[Folder | TagInfo, None]:
        return select_browse(self._config, self._browse_root)

    async def _browse_root(self, root: str) -> AsyncGenerator[Folder | TagInfo, None]:
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

    async def _browse_level(self, path: str) -> AsyncGenerator[Folder | TagInfo, None]:
        async def fetch(continuation: str | None) -> tuple[list[Any], Any]:
            params = {"path": path, "limit": self._config.browse_page_size, "continuation": continuation}
            body = await self._t.request_json("GET", BROWSE_PATH, params=params, retry=True)
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise self._t.bad_answer("GET", BROWSE_PATH, "answer has no items list")
            return body["items"], body.get("continuation")

        async for items in paginate(fetch, lambda why: self._t.bad_answer("GET", BROWSE_PATH, why)):
            for raw in items:
                item = self._browse_item(raw)
                if item is not None:
                    yield item

    def _browse_item(self, raw: Any) -> Folder | TagInfo | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip("."):
            log.warning("browse: skipping an item without a name: %r", raw)
            return None
        name: str = raw["name"]
        kind = raw.get("kind")
        if kind == "folder":
            return Folder(path=tuple(s for s in name.rstrip(".").split(".")))
        segments = name.split(".")
        type_text: Any = raw.get("type")
        try:
            data_type = DataType(type_text)
        except ValueError:
            if name not in self._logged_types:
                self._logged_types.add(name)
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

    # -- read (the machinery is DialectClient's) -------------------------------------------------------------

    def _read_one_path(self, name: str) -> str:
        return _dp_path(name)

    def _read_many_body(self, batch: list[str]) -> Any:
        return {"TagNames": batch}

    def _batch_items(self, body: Any) -> list[Any] | None:
        return body["Tags"] if isinstance(body, dict) and isinstance(body.get("Tags"), list) else None

    def _fields(self, raw: dict[str, Any], *, single: bool) -> tuple[Any, Any, Any]:
        if single:
            return raw.get("value"), raw.get("quality"), raw.get("timestamp")
        return raw.get("Value"), raw.get("Quality"), raw.get("Timestamp")

    # -- write ----------------------------------------------------------------------------------------------

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        results = await asyncio.gather(*(self._write_one(n, v) for n, v in items.items()))
        return {r.name: r for r in results}

    async def _write_one(self, name: str, value: Any) -> WriteResult:
        path = _dp_path(name)
        failed, body = await self._put(name, path, {"value": to_wire(value)})
        if failed is not None:
            return failed
        if not isinstance(body, dict):
            return WriteResult(name, WriteError.unreachable, f"PUT {path}: answer is not an object")
        return WriteResult(name, None, "", body.get("value", value))

    def _refusal(self, name: str, path: str, response: httpx.Response) -> WriteResult:
        """A 400's `error` text names the refusal (type mismatch, out of range; anything else: invalid)."""
        if response.status_code != 400:
            return super()._refusal(name, path, response)
        where = f"PUT {path}: HTTP 400"
        text = ""
        try:
            body = response.json()
            if isinstance(body, dict) and isinstance(body.get("error"), str):
                text = body["error"]
        except ValueError:
            pass
        low = text.strip().lower()
        kind = next((k for prefix, k in _WRITE_400.items() if low.startswith(prefix)), WriteError.invalid)
        return WriteResult(name, kind, f"{where}: {text}" if text else where)

    # -- alarms ---------------------------------------------------------------------------------------------

    async def active_alarms(self) -> list[Alarm]:
        body = await self._t.request_json("GET", "/api/alerts/active", retry=True)
        return self._alerts("/api/alerts/active", body)

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]:
        params = {"start": format_ts(start), "end": format_ts(end), "limit": limit}
        body = await self._t.request_json("GET", "/api/alerts/history", params=params, retry=True)
        return self._alerts("/api/alerts/history", body)

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        path = f"/api/alert/{quote_name(alarm_id)}/acknowledge"
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
    ) -> AsyncGenerator[list[ArchiveValue], None]:
        name = tag.name if isinstance(tag, TagInfo) else tag
        path = f"/api/history/{quote_name(name)}"

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
