"""The `unified` dialect of the simulator: WinCC Unified's GraphQL runtime API on one path, `/graphql`.

Queries and mutations are `POST /graphql`; subscriptions run over a WebSocket on the same path with the
graphql-transport-ws protocol. The schema below is the part of Unified's schema the bridge uses (names and shapes
as Unified has them); graphql-core validates and executes every request, so a query the real server would refuse
is refused here too. Tags are the plant's tags named `HMI_RT_1::<dp name>`; archived tags have a logging tag
`<tag>:LoggingTag_1`; alarms are `<tag>:Alarm_<id>` with instance 1.

Faults (the same /_sim/faults modes): down, slow, error500, unauthorized (every operation answers
UNAUTHENTICATED), malformed, expire_sessions, partial (item error 99), forbidden (write error 205), write_errors
({"tags": {name: {"errorCode": N}}}), and `ws_down`: every open WebSocket is closed and new ones are refused while
it is on (HTTP keeps answering).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from graphql import GraphQLError, build_schema, graphql, parse, subscribe, validate
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.simulator.faults import Faults
from bridge.simulator.plant import Plant, iso
from bridge.simulator.wire import json_response
from bridge.wincc.models import DataType

__all__ = ["SYSTEM", "unified_name", "unified_routes"]

SYSTEM = "HMI_RT_1"
PREFIX = SYSTEM + "::"
LOGGING_TAG = "LoggingTag_1"
_SUBSCRIPTION_TICK_S = 0.05

SDL = """
scalar Variant
scalar Timestamp
enum ObjectTypesEnum { TAG SIMPLETAG STRUCTURETAG TAGTYPE STRUCTURETAGTYPE SIMPLETAGTYPE ALARM ALARMCLASS LOGGINGTAG }
enum LoggedTagValuesSortingModeEnum { TIME_ASC TIME_DESC LEGACY }
enum NotificationReasonEnum { ADDED MODIFIED REMOVED REMOVED_BY_CHANGE }
type ErrorInfo { code: Variant description: String }
type User { name: String }
type Session { user: User token: String expires: Timestamp error: ErrorInfo }
type BrowseTagsResult { name: String! displayName: String objectType: ObjectTypesEnum dataType: String }
type Quality { quality: String subStatus: String limit: String }
type Value { value: Variant timestamp: Timestamp quality: Quality }
type TagValueResult { name: String! value: Value error: ErrorInfo }
type TagValueNotification {
  name: String! value: Value error: ErrorInfo notificationReason: NotificationReasonEnum
}
type WriteTagValuesResult { name: String! error: ErrorInfo }
type LoggedValue { value: Value }
type LoggedTagValuesResult { loggingTagName: String error: ErrorInfo values: [LoggedValue] }
type Alarm {
  name: String instanceID: Int raiseTime: Timestamp acknowledgmentTime: Timestamp clearTime: Timestamp
  state: Variant stateText: String priority: Int alarmClassName: String eventText: [String] origin: String
  area: String value: Variant notificationReason: String
}
type AcknowledgeAlarmsResult { alarmName: String alarmInstanceID: Int error: ErrorInfo }
input TagValueInput { name: String! value: Variant }
input AlarmIdentifierInput { name: String! instanceID: Int }
input QualityInput { quality: String subStatus: String }
type Query {
  browse(nameFilters: [String], objectTypeFilters: [ObjectTypesEnum], baseTypeFilters: [String],
         language: String): [BrowseTagsResult]
  tagValues(names: [String!]!, directRead: Boolean = false): [TagValueResult]
  loggedTagValues(names: [String!]!, startTime: Timestamp, endTime: Timestamp, maxNumberOfValues: Int,
                  sortingMode: LoggedTagValuesSortingModeEnum): [LoggedTagValuesResult]
  activeAlarms(systemNames: [String], filterString: String, languages: [String]): [Alarm]
  loggedAlarms(systemNames: [String], filterString: String, startTime: Timestamp, endTime: Timestamp,
               maxNumberOfResults: Int): [Alarm]
}
type Mutation {
  login(username: String!, password: String!): Session
  extendSession: Session
  writeTagValues(input: [TagValueInput]!, timestamp: Timestamp, quality: QualityInput): [WriteTagValuesResult]
  acknowledgeAlarms(input: [AlarmIdentifierInput]!): [AcknowledgeAlarmsResult]
}
type Subscription {
  tagValues(names: [String!]!): TagValueNotification
}
"""

_TYPE_NAMES = {
    DataType.bool: "Bool",
    DataType.int8: "SInt",
    DataType.int16: "Int",
    DataType.int32: "DInt",
    DataType.int64: "LInt",
    DataType.uint8: "USInt",
    DataType.uint16: "UInt",
    DataType.uint32: "UDInt",
    DataType.uint64: "ULInt",
    DataType.float: "Real",
    DataType.double: "LReal",
    DataType.string: "WString",
    DataType.datetime: "DateTime",
}
_BAD_SUB = {
    0x04: "CONFIGURATION_ERROR",
    0x08: "NOT_CONNECTED",
    0x0C: "DEVICE_FAILURE",
    0x10: "SENSOR_FAILURE",
    0x14: "NO_COMMUNICATION_WITH_LAST_USABLE_VALUE",
    0x18: "NO_COMMUNICATION_NO_USABLE_VALUE",
    0x1C: "OUT_OF_SERVICE",
}
_UNCERTAIN_SUB = {
    0x04: "LAST_USABLE_VALUE",
    0x08: "SUBSTITUTE_VALUE",
    0x0C: "INITIAL_VALUE",
    0x10: "SENSOR_CONVERSION",
    0x14: "RANGE_VIOLATION",
    0x18: "SUB_NORMAL",
}
_LIMITS = {0: "OK", 1: "LOW_LIMIT_VIOLATION", 2: "HIGH_LIMIT_VIOLATION", 3: "CONSTANT"}


def unified_name(dp_name: str) -> str:
    return PREFIX + dp_name


def _dp_name(name: str) -> str | None:
    return name[len(PREFIX) :] if name.startswith(PREFIX) else None


def _quality(q: int) -> dict[str, Any]:
    main = q & 0xC0
    sub = q & 0x3C
    if main >= 0x80:
        return {"quality": "GOOD_CASCADE", "subStatus": None, "limit": _LIMITS[q & 3]}
    if main == 0x40:
        return {"quality": "UNCERTAIN", "subStatus": _UNCERTAIN_SUB.get(sub), "limit": _LIMITS[q & 3]}
    return {"quality": "BAD", "subStatus": _BAD_SUB.get(sub), "limit": _LIMITS[q & 3]}


def _filter_regex(patterns: list[str] | None) -> re.Pattern[str] | None:
    """Unified's browse wildcards: `**` across levels, `*` within one level, `?` one character."""
    if not patterns:
        return None
    parts = []
    for p in patterns:
        out = []
        i = 0
        while i < len(p):
            if p.startswith("**", i):
                out.append(".*")
                i += 2
            elif p[i] == "*":
                out.append(r"[^.:]*")
                i += 1
            elif p[i] == "?":
                out.append(".")
                i += 1
            else:
                out.append(re.escape(p[i]))
                i += 1
        parts.append("".join(out))
    return re.compile("^(?:" + "|".join(parts) + ")$")


def _error(code: int, description: str) -> dict[str, Any]:
    return {"code": code, "description": description}


class _Unauthenticated(GraphQLError):
    def __init__(self) -> None:
        super().__init__("not logged in or session expired", extensions={"code": "UNAUTHENTICATED"})


class UnifiedApi:
    """The resolvers: graphql-core calls `root.<field>(info, **arguments)`."""

    def __init__(
        self, plant: Plant, faults: Faults, stats: Any, *, auth: str, username: str, password: str, token_ttl_s: float
    ) -> None:
        self.plant, self.faults, self.stats = plant, faults, stats
        self.auth, self.username, self.password, self.token_ttl_s = auth, username, password, token_ttl_s
        self.tokens: dict[str, tuple[float, int]] = {}
        self.schema = build_schema(SDL)
        sub_field = self.schema.subscription_type.fields["tagValues"]  # type: ignore[union-attr]
        sub_field.subscribe = self._subscribe_tag_values
        sub_field.resolve = lambda event, _info, **_: event
        self.sockets: set[WebSocket] = set()

    # -- auth -------------------------------------------------------------------------------------------
    def token_ok(self, token: str | None) -> bool:
        if self.auth == "none":
            return True
        if self.faults.active("unauthorized"):
            return False
        issued = self.tokens.get(token or "")
        return issued is not None and issued[0] > time.monotonic() and issued[1] == self.faults.session_epoch

    def _check(self, info: Any) -> None:
        if not self.token_ok(info.context.get("token")):
            raise _Unauthenticated()

    def _session(self) -> dict[str, Any]:
        now = time.monotonic()
        for old in [t for t, (exp, epoch) in self.tokens.items() if exp <= now or epoch != self.faults.session_epoch]:
            del self.tokens[old]
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (now + self.token_ttl_s, self.faults.session_epoch)
        expires = datetime.now(UTC) + timedelta(seconds=self.token_ttl_s)
        return {"user": {"name": self.username}, "token": token, "expires": iso(expires), "error": None}

    def login(self, info: Any, username: str, password: str) -> dict[str, Any]:
        ok = hmac.compare_digest(username.encode(), self.username.encode()) & hmac.compare_digest(
            password.encode(), self.password.encode()
        )
        if not ok:
            return {"user": None, "token": None, "expires": None, "error": _error(101, "wrong credentials")}
        return self._session()

    def extendSession(self, info: Any) -> dict[str, Any]:  # noqa: N802 - Unified's field name
        self._check(info)
        old = info.context.get("token")
        self.tokens.pop(old, None)
        return self._session()

    # -- tags -------------------------------------------------------------------------------------------
    def browse(
        self,
        info: Any,
        nameFilters: list[str] | None = None,  # noqa: N803 - Unified's argument names
        objectTypeFilters: list[str] | None = None,
        **_: Any,
    ) -> list[dict[str, Any]]:
        self._check(info)
        match = _filter_regex(nameFilters)
        kinds = set(objectTypeFilters or ["SIMPLETAG"])
        out: list[dict[str, Any]] = []
        plant = self.plant
        entries: list[tuple[str, DataType, bool]] = [(t.name, t.type, t.archived) for t in plant.tags.values()]
        entries += [
            (plant.gen_name(i, "dp"), plant.gen_type(i), i % 10 == 0)
            for i in range(plant.generated)
            if i not in plant.removed_generated
        ]
        for dp_name, data_type, archived in entries:
            name = unified_name(dp_name)
            if match is not None and not match.match(name):
                continue
            leaf = dp_name.rsplit(".", 1)[-1]
            if kinds & {"SIMPLETAG", "TAG"}:
                out.append(
                    {"name": name, "displayName": leaf, "objectType": "SIMPLETAG", "dataType": _TYPE_NAMES[data_type]}
                )
            if archived and "LOGGINGTAG" in kinds:
                out.append(
                    {
                        "name": f"{name}:{LOGGING_TAG}",
                        "displayName": LOGGING_TAG,
                        "objectType": "LOGGINGTAG",
                        "dataType": None,
                    }
                )
        return out

    def value_of(self, name: str, failing: frozenset[str] = frozenset()) -> dict[str, Any]:
        dp_name = _dp_name(name)
        read = self.plant.read(dp_name) if dp_name is not None else None
        if read is None:
            return {"name": name, "value": None, "error": _error(2, "cannot resolve name")}
        if name in failing or dp_name in failing:
            return {"name": name, "value": None, "error": _error(99, "simulated item error")}
        value, quality, ts, _ = read
        return {
            "name": name,
            "value": {"value": value, "timestamp": ts, "quality": _quality(quality)},
            "error": {"code": 0, "description": ""},
        }

    def tagValues(self, info: Any, names: list[str], **_: Any) -> list[dict[str, Any]]:  # noqa: N802
        self._check(info)
        self.stats.read_batches.append(len(names))
        failing = self.faults.failing()
        return [self.value_of(n, failing) for n in names]

    def writeTagValues(self, info: Any, input: list[dict[str, Any]], **_: Any) -> list[dict[str, Any]]:  # noqa: N802, A002
        self._check(info)
        out = []
        failing, errors = self.faults.failing(), self.faults.write_errors()
        for item in input:
            name, value = item["name"], item.get("value")
            dp_name = _dp_name(name)
            spec = errors.get(name) or (errors.get(dp_name) if dp_name else None)
            if spec is not None:
                out.append(
                    {
                        "name": name,
                        "error": _error(
                            spec.get("errorCode", 99), spec.get("errorDescription", "simulated write error")
                        ),
                    }
                )
                continue
            if self.faults.active("forbidden"):
                out.append({"name": name, "error": _error(205, "no access right")})
                continue
            if name in failing or dp_name in failing:
                out.append({"name": name, "error": _error(99, "simulated item error")})
                continue
            status, text = self.plant.check_write(dp_name, value) if dp_name is not None else (404, "unknown")
            code = {200: 0, 404: 2, 403: 204}.get(status)
            if code is None:
                code = 203 if text.startswith("out of range") else 201
            if code == 0:
                self.stats.writes.append({"name": name, "value": value})
            out.append({"name": name, "error": _error(code, text)})
        return out

    def loggedTagValues(
        self,
        info: Any,
        names: list[str],
        startTime: str | None = None,  # noqa: N802, N803
        endTime: str | None = None,
        maxNumberOfValues: int | None = None,  # noqa: N803
        sortingMode: str | None = None,
        **_: Any,
    ) -> list[dict[str, Any]]:  # noqa: N803
        self._check(info)
        start = _ts(startTime, datetime(1970, 1, 1, tzinfo=UTC))
        end = _ts(endTime, datetime.now(UTC))
        limit = maxNumberOfValues or 1000
        out = []
        for logging_name in names:
            tag_name, _, logging_tag = logging_name.rpartition(":")
            dp_name = _dp_name(tag_name) if logging_tag == LOGGING_TAG else None
            rows = self.plant.archive(dp_name, start, end, limit) if dp_name is not None else None
            if rows is None:
                out.append({"loggingTagName": logging_name, "error": _error(2, "cannot resolve name"), "values": []})
                continue
            if sortingMode == "TIME_DESC":
                rows = list(reversed(rows))
            values = [{"value": {"value": v, "timestamp": iso(t), "quality": _quality(q)}} for t, v, q in rows]
            out.append({"loggingTagName": logging_name, "error": {"code": 0, "description": ""}, "values": values})
        return out

    # -- alarms -----------------------------------------------------------------------------------------
    def _alarm_json(self, entry: dict[str, Any]) -> dict[str, Any]:
        came, acked = entry["state"] == "came", entry["acknowledged"]
        state = (5 if acked else 1) if came else (6 if acked else 2)
        ts = entry["timestamp"]
        return {
            "name": f"{unified_name(entry['dp'])}:Alarm_{entry['id']}",
            "instanceID": 1,
            "raiseTime": ts if came else None,
            "clearTime": None if came else ts,
            "acknowledgmentTime": ts if acked else None,
            "state": state,
            "stateText": ["Raised", "Cleared"][not came],
            "priority": entry["priority"],
            "alarmClassName": entry["class"],
            "eventText": [entry["text"]],
            "origin": unified_name(entry["dp"]),
            "area": SYSTEM,
            "value": entry["value"],
            "notificationReason": None,
        }

    def activeAlarms(self, info: Any, **_: Any) -> list[dict[str, Any]]:  # noqa: N802
        self._check(info)
        plant = self.plant
        return [self._alarm_json(plant.alarm_entry(a, "came" if a.active else "went")) for a in plant.active_alarms()]

    def loggedAlarms(
        self,
        info: Any,
        startTime: str | None = None,
        endTime: str | None = None,  # noqa: N802, N803
        maxNumberOfResults: int | None = None,
        **_: Any,
    ) -> list[dict[str, Any]]:  # noqa: N803
        self._check(info)
        start = _ts(startTime, datetime(1970, 1, 1, tzinfo=UTC))
        end = _ts(endTime, datetime.now(UTC) + timedelta(days=1))
        rows = [e for e in self.plant.alarm_log if start < _ts(e["timestamp"], start) < end]
        return [self._alarm_json(e) for e in rows[: maxNumberOfResults or 1000]]

    def acknowledgeAlarms(self, info: Any, input: list[dict[str, Any]]) -> list[dict[str, Any]]:  # noqa: N802, A002
        self._check(info)
        out = []
        for item in input:
            name = item["name"]
            alarm_id = name.rpartition(":Alarm_")[2] if ":Alarm_" in name else ""
            status = self.plant.acknowledge(alarm_id) if alarm_id and item.get("instanceID") == 1 else 404
            code = {200: 0, 404: 306, 409: 305}[status]
            if code == 0:
                self.stats.acknowledged.append({"id": name, "user": self.username, "comment": ""})
            out.append(
                {
                    "alarmName": name,
                    "alarmInstanceID": item.get("instanceID"),
                    "error": _error(code, {0: "", 305: "already acknowledged", 306: "unknown alarm instance"}[code]),
                }
            )
        return out

    # -- subscriptions ----------------------------------------------------------------------------------
    async def _subscribe_tag_values(self, _root: Any, info: Any, names: list[str]) -> AsyncIterator[dict[str, Any]]:
        self._check(info)
        return self._changes(list(dict.fromkeys(names)))

    async def _changes(self, names: list[str]) -> AsyncIterator[dict[str, Any]]:
        """ADDED with the current value of every name, then MODIFIED for each change as it happens. Generated tags
        change on a known schedule (a heap of next change times); demo tags are compared each tick."""
        plant = self.plant
        demo: dict[str, tuple[Any, ...]] = {}
        schedule: list[tuple[float, int, str]] = []
        period = 1.0 / plant.change_rate if plant.change_rate > 0 else 0.0
        now = time.time()
        for name in names:
            item = self.value_of(name)
            yield {**item, "notificationReason": "ADDED"}
            dp_name = _dp_name(name)
            if dp_name is None:
                continue
            if dp_name in plant.tags:
                demo[name] = _snapshot(plant.tags[dp_name])
            elif period and (i := plant.gen_index(dp_name)) is not None:
                phase = (i * 0.6180339887 % 1.0) * period
                schedule.append(((int((now - phase) // period) + 1) * period + phase, i, name))
        heapq.heapify(schedule)
        while True:
            await asyncio.sleep(_SUBSCRIPTION_TICK_S)
            now = time.time()
            while schedule and schedule[0][0] <= now:
                due, i, name = heapq.heappop(schedule)
                heapq.heappush(schedule, (due + period, i, name))
                yield {**self.value_of(name), "notificationReason": "MODIFIED"}
            for name, seen in demo.items():
                tag = plant.tags.get(_dp_name(name) or "")
                if tag is None:
                    continue
                snap = _snapshot(tag)
                if snap != seen:
                    demo[name] = snap
                    yield {**self.value_of(name), "notificationReason": "MODIFIED"}


def _snapshot(tag: Any) -> tuple[Any, ...]:
    return tag.value, tag.quality, tag.timestamp


def _ts(text: Any, default: datetime) -> datetime:
    if not isinstance(text, str) or not text:
        return default
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[7:]
    return None


def unified_routes(
    plant: Plant,
    *,
    faults: Faults,
    stats: Any,
    auth: str = "none",
    username: str = "opcua",
    password: str | None = None,
    token_ttl_s: float = 900,
) -> tuple[list[BaseRoute], UnifiedApi]:
    api = UnifiedApi(
        plant, faults, stats, auth=auth, username=username, password=password or "", token_ttl_s=token_ttl_s
    )

    async def http(request: Request) -> Response:
        if faults.modes:
            if latency := faults.latency_s():
                await asyncio.sleep(latency)
            if faults.active("error500"):
                return json_response({"errors": [{"message": "internal server error (simulated)"}]}, 500)
        try:
            body = orjson.loads(await request.body())
            query, variables = body["query"], body.get("variables") or {}
            if not isinstance(query, str) or not isinstance(variables, dict):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return json_response({"errors": [{"message": "the body must be {query, variables}"}]}, 400)
        field = _first_field(query)
        stats.requests[f"POST /graphql {field}"] += 1
        if faults.active("malformed"):
            return Response("<html>this is not json", media_type="application/json")
        result = await graphql(
            api.schema,
            query,
            root_value=api,
            variable_values=variables,
            context_value={"token": _bearer(request.headers.get("authorization"))},
        )
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return json_response(out)

    async def websocket(ws: WebSocket) -> None:
        stats.requests["WS /graphql"] += 1
        if faults.active("ws_down") or faults.active("down"):
            await ws.close(code=1013)
            return
        await ws.accept(subprotocol="graphql-transport-ws")
        api.sockets.add(ws)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            await _serve_socket(api, ws, running, stats)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            api.sockets.discard(ws)
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    routes: list[BaseRoute] = [Route("/graphql", http, methods=["POST"]), WebSocketRoute("/graphql", websocket)]
    return routes, api


_FIELD = re.compile(r"\{\s*([A-Za-z_]\w*)")


def _first_field(query: str) -> str:
    match = _FIELD.search(query)
    return match.group(1) if match else "?"


async def _serve_socket(api: UnifiedApi, ws: WebSocket, running: dict[str, asyncio.Task[None]], stats: Any) -> None:
    init = orjson.loads(await asyncio.wait_for(ws.receive_text(), 10))
    if init.get("type") != "connection_init":
        await ws.close(code=4400)
        return
    payload = init.get("payload") or {}
    token = _bearer(payload.get("Authorization") if isinstance(payload, dict) else None) or _bearer(
        ws.headers.get("authorization")
    )
    if not api.token_ok(token):
        await ws.close(code=4403)
        return
    await ws.send_text('{"type":"connection_ack"}')
    watcher = asyncio.create_task(_watch_faults(api, ws))
    try:
        while True:
            message = orjson.loads(await ws.receive_text())
            kind = message.get("type")
            if kind == "ping":
                await ws.send_text('{"type":"pong"}')
            elif kind == "subscribe":
                sub_id = str(message.get("id"))
                stats.requests["WS subscribe tagValues"] += 1
                running[sub_id] = asyncio.create_task(
                    _run_subscription(api, ws, sub_id, message.get("payload") or {}, token)
                )
            elif kind == "complete":
                task = running.pop(str(message.get("id")), None)
                if task is not None:
                    task.cancel()
    finally:
        watcher.cancel()


async def _watch_faults(api: UnifiedApi, ws: WebSocket) -> None:
    while True:
        await asyncio.sleep(0.1)
        if api.faults.active("ws_down") or api.faults.active("down"):
            with contextlib.suppress(Exception):
                await ws.close(code=1012)
            return


async def _run_subscription(
    api: UnifiedApi, ws: WebSocket, sub_id: str, payload: dict[str, Any], token: str | None
) -> None:
    send: Callable[[dict[str, Any]], Any] = lambda m: ws.send_text(orjson.dumps(m).decode())  # noqa: E731
    try:
        document = parse(payload.get("query") or "")
        errors = validate(api.schema, document)
        if errors:
            await send({"type": "error", "id": sub_id, "payload": [e.formatted for e in errors]})
            return
        variables = payload.get("variables") or {}
        names = _tag_values_names(document, variables)
        if names is not None:
            # The bridge's own subscription: validated above, then streamed without running every event through
            # graphql-core (the simulator must keep up with 100k subscribed tags; the real server is not Python).
            if not api.token_ok(token):
                raise _Unauthenticated()
            async for item in api._changes(list(dict.fromkeys(names))):
                await send({"type": "next", "id": sub_id, "payload": {"data": {"tagValues": item}}})
            return
        stream = await subscribe(
            api.schema, document, root_value=api, context_value={"token": token}, variable_values=variables
        )
        if not hasattr(stream, "__aiter__"):
            await send({"type": "error", "id": sub_id, "payload": [e.formatted for e in stream.errors or []]})
            return
        async for result in stream:
            await send({"type": "next", "id": sub_id, "payload": {"data": result.data}})
    except GraphQLError as exc:
        with contextlib.suppress(Exception):
            await send({"type": "error", "id": sub_id, "payload": [exc.formatted]})


def _tag_values_names(document: Any, variables: dict[str, Any]) -> list[str] | None:
    """The names of a document that is exactly one `subscription { tagValues(names: $x) {...} }`, else None."""
    ops = [d for d in document.definitions if getattr(d, "operation", None) is not None]
    if len(ops) != 1 or ops[0].operation.value != "subscription" or len(ops[0].selection_set.selections) != 1:
        return None
    field = ops[0].selection_set.selections[0]
    if getattr(field, "name", None) is None or field.name.value != "tagValues":
        return None
    for arg in field.arguments:
        if arg.name.value == "names" and arg.value.kind == "variable":
            names = variables.get(arg.value.name.value)
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
    return None
