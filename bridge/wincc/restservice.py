"""Dialect `restservice`: WinCC V7.5 SP2 / V8 "WinCCRestService" (see docs/wincc-rest-api.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Any

from bridge.wincc.dialect import (
    DialectClient,
    archive_values,
    page_archive,
    paginate,
    quote_name,
    write_failure,
    write_status,
)
from bridge.wincc.errors import WinCCError, WinCCNotFound
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
from bridge.wincc.parse import chunks, error_code, format_ts, opt_float, parse_ts, to_wire
from bridge.wincc.selection import select_browse

__all__ = ["DATA_TYPES", "RestServiceClient"]

log = logging.getLogger(__name__)

DATA_TYPES: dict[int, DataType] = {
    1: DataType.bool,
    2: DataType.int8,
    3: DataType.uint8,
    4: DataType.int16,
    5: DataType.uint16,
    6: DataType.int32,
    7: DataType.uint32,
    8: DataType.float,
    9: DataType.double,
    10: DataType.string,
    11: DataType.string,
}

_WRITE_ERRORS: dict[int, WriteError] = {
    1: WriteError.not_found,
    2: WriteError.type_mismatch,
    3: WriteError.out_of_range,
    4: WriteError.not_writable,
    7: WriteError.forbidden,
}

VALUES_PATH = "/tagManagement/Values"
VALUE_PATH = "/tagManagement/Value/"  # + the quoted name: read one, write one
VARIABLES_PATH = "/tagManagement/Variables"
ARCHIVE_VALUES_PATH = "/tagLogging/Values"
# The message list has no "all" value; this is far above any plant's count of pending alarms.
ACTIVE_ALARMS_MAX = 10_000


def _list(body: Any, key: str) -> list[Any] | None:
    """Accept a bare array or `{key: [...]}`."""
    if isinstance(body, list):
        return body
    items = body.get(key) if isinstance(body, dict) else None
    return items if isinstance(items, list) else None


def _write_item(name: str, raw: dict[str, Any], value: Any, where: str) -> WriteResult:
    """One write answer (an item of the batch answer, or the whole answer of a write-one), per
    docs/wincc-rest-api.md."""
    try:
        code = error_code(raw)
    except (ValueError, TypeError):
        return WriteResult(name, WriteError.unreachable, f"{where}: unreadable errorCode")
    desc = str(raw.get("errorDescription") or raw.get("error") or "")
    if code:
        return WriteResult(name, _WRITE_ERRORS.get(code, WriteError.other), f"errorCode {code}: {desc}")
    if raw.get("error"):
        return WriteResult(name, WriteError.other, f"{where}: {desc}")
    return WriteResult(name, None, "", value)


class RestServiceClient(DialectClient):
    """WinCCClient for the restservice dialect."""

    dialect = "restservice"
    READ_MANY_PATH = VALUES_PATH
    NAME_KEY = "variableName"
    ERROR_TEXTS = ("error",)  # the documented item-error text key (errorCode / errorcode are checked anyway)
    NOT_FOUND_CODE = 1
    NOT_FOUND_TEXT = "unknown variable (HTTP 404)"
    _archive_map: dict[str, tuple[str, str]] | None = None  # variableName -> (archive, archive tag)

    # -- browse ---------------------------------------------------------------------------------------------

    async def _get_list(self, path: str, key: str) -> list[Any]:
        body = await self._t.request_json("GET", path, retry=True)
        items = _list(body, key)
        if items is None:
            raise self._t.bad_answer("GET", path, f"answer is neither an array nor has {key}")
        return items

    async def _optional_list(self, path: str, key: str) -> list[Any]:
        """Connections and groups only name folders; variables name theirs too, so a 404 here is not fatal."""
        try:
            return await self._get_list(path, key)
        except WinCCNotFound:
            log.info("GET %s answered 404; folders come from the variables only", path)
            return []

    def browse(self) -> AsyncGenerator[Folder | TagInfo, None]:
        return select_browse(self._config, self._browse_root)

    async def _browse_root(self, root: str) -> AsyncGenerator[Folder | TagInfo, None]:
        root = root.strip().strip(".")
        yielded: set[tuple[str, ...]] = set()

        def wanted(connection: str) -> bool:
            return not root or connection == root

        def folders(path: tuple[str, ...]) -> list[Folder]:
            out = []
            for i in range(1, len(path) + 1):
                if path[:i] not in yielded:
                    yielded.add(path[:i])
                    out.append(Folder(path=path[:i]))
            return out

        for raw in await self._optional_list("/tagManagement/Connections", "connections"):
            name = raw.get("name") if isinstance(raw, dict) else raw if isinstance(raw, str) else None
            if isinstance(name, str) and name and wanted(name):
                for f in folders((name,)):
                    yield f
        for raw in await self._optional_list("/tagManagement/Groups", "groups"):
            if not isinstance(raw, dict):
                continue
            name, conn = raw.get("name"), raw.get("connection")
            if isinstance(name, str) and name and isinstance(conn, str) and conn and wanted(conn):
                for f in folders((conn, name)):
                    yield f
        archives = await self._load_archive_map()

        async def fetch(continuation: str | None) -> tuple[list[Any], Any]:
            params = {"itemLimit": self._config.browse_page_size, "continuationPoint": continuation}
            body = await self._t.request_json("GET", VARIABLES_PATH, params=params, retry=True)
            items = _list(body, "variables")
            if items is None:
                raise self._t.bad_answer("GET", VARIABLES_PATH, "answer has no variables")
            return items, body.get("continuationPoint") if isinstance(body, dict) else None

        async for items in paginate(fetch, lambda why: self._t.bad_answer("GET", VARIABLES_PATH, why)):
            for raw in items:
                tag = self._tag_info(raw, archives)
                if tag is None or (root and (not tag.folder or tag.folder[0] != root)):
                    continue
                for f in folders(tag.folder):
                    yield f
                yield tag

    def _tag_info(self, raw: Any, archives: dict[str, tuple[str, str]]) -> TagInfo | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"]:
            log.warning("browse: skipping a variable without a name: %r", raw)
            return None
        name: str = raw["name"]
        code = raw.get("dataType")
        data_type = DATA_TYPES.get(code) if isinstance(code, int) and not isinstance(code, bool) else None
        if data_type is None:
            if name not in self._logged_types:
                self._logged_types.add(name)
                log.warning("browse: variable %s has unknown dataType %r; offering it as double", name, code)
            data_type = DataType.double
        conn, group = raw.get("connection"), raw.get("group")
        folder: tuple[str, ...] = ()
        if isinstance(conn, str) and conn:
            folder = (conn, group) if isinstance(group, str) and group else (conn,)
        unit = raw.get("unit")
        desc = raw.get("description")
        arch = archives.get(name)
        return TagInfo(
            name=name,
            data_type=data_type,
            folder=folder,
            display_name=name,
            unit=unit if isinstance(unit, str) and unit else None,
            description=desc if isinstance(desc, str) and desc else None,
            low=opt_float(raw.get("lowLimit")),
            high=opt_float(raw.get("highLimit")),
            writable=True,  # VAR has no writable flag: WinCC's answer to a write decides
            archived=arch is not None,
            archive=arch[0] if arch else None,
            archive_tag=arch[1] if arch else None,
        )

    async def _load_archive_map(self) -> dict[str, tuple[str, str]]:
        mapping: dict[str, tuple[str, str]] = {}
        try:
            archives = await self._get_list("/tagLogging/Archives", "archives")
        except WinCCNotFound:
            log.info("WinCC has no tag logging archives (404)")
            archives = []
        for raw in archives:
            name = raw.get("name") if isinstance(raw, dict) else raw if isinstance(raw, str) else None
            if not isinstance(name, str) or not name:
                continue
            try:
                variables = await self._get_list(f"/tagLogging/Archive/{quote_name(name)}/Variables", "variables")
            except WinCCNotFound:
                continue
            for v in variables:
                if not isinstance(v, dict):
                    continue
                tag_name, var = v.get("name"), v.get("variableName")
                if isinstance(tag_name, str) and tag_name and isinstance(var, str) and var:
                    mapping.setdefault(var, (name, tag_name))
        self._archive_map = mapping
        return mapping

    # -- read (the machinery is DialectClient's) -------------------------------------------------------------

    def _read_one_path(self, name: str) -> str:
        return VALUE_PATH + quote_name(name)

    def _read_many_body(self, batch: list[str]) -> Any:
        return {"variableNames": batch}

    def _batch_items(self, body: Any) -> list[Any] | None:
        return _list(body, "values")

    def _fields(self, raw: dict[str, Any], *, single: bool) -> tuple[Any, Any, Any]:
        return raw.get("value"), raw.get("qualityCode", raw.get("quality")), raw.get("timestamp")

    # -- write ----------------------------------------------------------------------------------------------

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        pairs = list(items.items())
        if not pairs:
            return {}
        if len(pairs) == 1:
            name, value = pairs[0]
            return {name: await self._write_one(name, value)}
        parts = await asyncio.gather(*(self._write_chunk(c) for c in chunks(pairs, self._batch)))
        out: dict[str, WriteResult] = {}
        for part in parts:
            out.update(part)
        return {n: out[n] for n, _ in pairs}

    async def _write_one(self, name: str, value: Any) -> WriteResult:
        path = VALUE_PATH + quote_name(name)
        failed, body = await self._put(name, path, {"value": to_wire(value)})
        if failed is not None:
            return failed
        where = f"PUT {path}"
        if type(body) is not dict or not ("errorcode" in body or "errorCode" in body):
            return WriteResult(name, WriteError.unreachable, f"{where}: answer has no errorcode")
        return _write_item(name, body, value, where)

    async def _write_chunk(self, pairs: list[tuple[str, Any]]) -> dict[str, WriteResult]:
        body_out = [{"variableName": n, "value": to_wire(v)} for n, v in pairs]

        def all_(kind: WriteError, reason: str) -> dict[str, WriteResult]:
            return {n: WriteResult(n, kind, reason) for n, _ in pairs}

        try:
            response = await self._t.send("PUT", VALUES_PATH, json=body_out, kind="write", check=False)
        except WinCCError as exc:
            return all_(write_failure(exc), str(exc))
        status = response.status_code
        where = f"PUT {VALUES_PATH}: HTTP {status}"
        if not 200 <= status < 300:
            return all_(write_status(status), where)
        try:
            body = self._t.parse_json("PUT", VALUES_PATH, response)
        except WinCCError as exc:
            return all_(WriteError.unreachable, str(exc))
        answers = _list(body, "values")
        if answers is None:
            return all_(WriteError.unreachable, f"{where}: answer is not an array")
        values = dict(pairs)
        out: dict[str, WriteResult] = {}
        for raw in answers:
            name = raw.get("variableName") if isinstance(raw, dict) else None
            if not isinstance(name, str) or name not in values:
                continue
            out[name] = _write_item(name, raw, values[name], where)
        for n, _ in pairs:
            out.setdefault(n, WriteResult(n, WriteError.unreachable, f"{where}: {n} missing from the answer"))
        return out

    # -- alarms ---------------------------------------------------------------------------------------------

    async def active_alarms(self) -> list[Alarm]:
        path = "/alarmLogging/MessageList"
        body = await self._t.request_json("GET", path, params={"maxValues": ACTIVE_ALARMS_MAX}, retry=True)
        return self._messages(path, body)

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]:
        path = "/alarmLogging/ShortTermArchive"
        params = {"maxValues": limit, "timeFrom": format_ts(start), "timeTo": format_ts(end)}
        body = await self._t.request_json("GET", path, params=params, retry=True)
        return self._messages(path, body)

    def _messages(self, path: str, body: Any) -> list[Alarm]:
        items = _list(body, "messages")
        if items is None:
            raise self._t.bad_answer("GET", path, "answer has no messages")
        out: list[Alarm] = []
        for raw in items:
            try:
                out.append(_message(raw))
            except (ValueError, TypeError, KeyError) as exc:
                log.warning("GET %s: skipping a message: %s", path, exc)
        return out

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        req = self._config.acknowledge
        if req is None:
            raise NotImplementedError("restservice has no acknowledge call and wincc.acknowledge is not configured")
        path = req.path.replace("{id}", quote_name(alarm_id))
        if not path.startswith("/"):
            path = "/" + path
        values = {"{id}": alarm_id, "{comment}": comment, "{user}": user}

        def fill(node: Any) -> Any:
            if isinstance(node, str):
                for key, val in values.items():
                    node = node.replace(key, val)
                return node
            if isinstance(node, dict):
                return {k: fill(v) for k, v in node.items()}
            if isinstance(node, list):
                return [fill(v) for v in node]
            return node

        await self._t.send(req.method, path, json=fill(req.body), kind="write", check=True)

    # -- archive --------------------------------------------------------------------------------------------

    async def archive(
        self, tag: TagInfo | str, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncGenerator[list[ArchiveValue], None]:
        archive_name, archive_tag = await self._archive_of(tag)

        async def fetch(since: datetime, limit: int) -> list[ArchiveValue]:
            request = {
                "archives": [
                    {
                        "name": archive_name,
                        "variables": [
                            {
                                "name": archive_tag,
                                "timeFrom": format_ts(since),
                                "timeTo": format_ts(end),
                                "maxValues": limit,
                            }
                        ],
                    }
                ]
            }
            body = await self._t.request_json("POST", ARCHIVE_VALUES_PATH, json=request, retry=True)
            archives = _list(body, "archives")
            if archives is None:
                raise self._t.bad_answer("POST", ARCHIVE_VALUES_PATH, "answer has no archives")
            for a in archives:
                if not isinstance(a, dict) or a.get("name", archive_name) != archive_name:
                    continue
                for v in a.get("variables") or []:
                    if isinstance(v, dict) and v.get("name", archive_tag) == archive_tag:
                        values = v.get("values")
                        if not isinstance(values, list):
                            raise self._t.bad_answer("POST", ARCHIVE_VALUES_PATH, "variable has no values list")
                        return archive_values(values, f"POST {ARCHIVE_VALUES_PATH}")
            return []

        async for page in page_archive(fetch, start, end, page_size):
            yield page

    async def _archive_of(self, tag: TagInfo | str) -> tuple[str, str]:
        if isinstance(tag, TagInfo) and tag.archive and tag.archive_tag:
            return tag.archive, tag.archive_tag
        name = tag.name if isinstance(tag, TagInfo) else tag
        mapping = self._archive_map if self._archive_map is not None else await self._load_archive_map()
        if name not in mapping:
            mapping = await self._load_archive_map()  # archives may have been configured since the last look
        if name not in mapping:
            raise WinCCNotFound(f"{name!r} is in no tag logging archive", status=None)
        return mapping[name]


_STATES: dict[int, tuple[AlarmState, bool]] = {
    1: (AlarmState.came, False),
    2: (AlarmState.went, False),
    3: (AlarmState.came, True),
    4: (AlarmState.went, True),
}


def _message(raw: Any) -> Alarm:
    if not isinstance(raw, dict):
        raise TypeError("message is not an object")
    instance = raw["instanceId"]
    if instance is None or isinstance(instance, (dict, list, bool)):
        raise ValueError("message has no instanceId")
    state_raw = raw.get("state")
    if isinstance(state_raw, bool) or not isinstance(state_raw, (int, str)):
        raise ValueError(f"message state {state_raw!r} unknown")
    state = _STATES.get(int(state_raw))
    if state is None:
        raise ValueError(f"message state {state_raw!r} unknown")
    priority = raw.get("priority", 1)
    known = {"instanceId", "state", "text", "class", "priority", "timestamp", "variableName", "value"}
    var = raw.get("variableName")
    return Alarm(
        id=str(instance),
        text=str(raw.get("text") or ""),
        state=state[0],
        acknowledged=state[1],
        timestamp=parse_ts(raw.get("timestamp")),
        tag=var if isinstance(var, str) and var else None,
        alarm_class=str(raw.get("class") or "Alarm"),
        priority=int(priority) if isinstance(priority, (int, float)) and not isinstance(priority, bool) else 1,
        value=raw.get("value"),
        extra={k: v for k, v in raw.items() if k not in known},
    )
