"""The `unified` dialect of the simulator: WinCC Unified's GraphQL runtime API on one path, `/graphql`.

Queries and mutations are `POST /graphql`; subscriptions run over a WebSocket on the same path with the
graphql-transport-ws protocol. The schema (unified_schema.py) is the part of Unified's schema the bridge uses
(names and shapes as Unified has them); graphql-core validates and executes every request, so a query the real
server would refuse is refused here too. The WebSocket side (both subscriptions) is unified_socket.py. Tags are
the plant's tags named `HMI_RT_1::<dp name>`; archived tags have a logging tag `<tag>:LoggingTag_1`; alarms are
`<tag>:Alarm_<id>` with instance 1.

Faults (the same /_sim/faults modes): down, slow, error500, unauthorized (every operation answers
UNAUTHENTICATED), malformed, expire_sessions, partial (item error 99), forbidden (write error 205), write_errors
({"tags": {name: {"errorCode": N}}}), and `ws_down`: every open WebSocket is closed and new ones are refused while
it is on (HTTP keeps answering). The `activeAlarms` subscription pushes each raise, clear and acknowledge of the
plant's alarms (by itself or through /_sim/alarms) as it happens.
"""

from __future__ import annotations

import asyncio
import hmac
import secrets
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from graphql import GraphQLError, build_schema, graphql
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from bridge.simulator.faults import Faults
from bridge.simulator.plant import Plant, iso
from bridge.simulator.unified_schema import (
    LOGGING_TAG,
    SDL,
    SYSTEM,
    TYPE_NAMES,
    alarm_json,
    bearer,
    error,
    filter_regex,
    quality,
    timestamp,
    unified_name,
)
from bridge.simulator.unified_schema import (
    dp_name as plant_name,
)
from bridge.simulator.unified_socket import alarm_changes, first_field, tag_changes, websocket_endpoint
from bridge.simulator.wire import json_response
from bridge.wincc.models import DataType

__all__ = ["SYSTEM", "UnifiedApi", "unified_name", "unified_routes"]


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
        subscriptions = self.schema.subscription_type
        assert subscriptions is not None  # the SDL has one
        subscriptions.fields["tagValues"].subscribe = self._subscribe_tag_values
        subscriptions.fields["activeAlarms"].subscribe = self._subscribe_active_alarms
        for field in subscriptions.fields.values():
            field.resolve = _event
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

    @staticmethod
    def unauthenticated() -> GraphQLError:
        return _Unauthenticated()

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
            return {"user": None, "token": None, "expires": None, "error": error(101, "wrong credentials")}
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
        match = filter_regex(nameFilters)
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
            leaf = dp_name.rsplit(".", 1)[-1]
            if kinds & {"SIMPLETAG", "TAG"} and (match is None or match.match(name)):
                out.append(
                    {"name": name, "displayName": leaf, "objectType": "SIMPLETAG", "dataType": TYPE_NAMES[data_type]}
                )
            logging_name = f"{name}:{LOGGING_TAG}"  # a subelement: matched by its own name, like Unified does
            if archived and "LOGGINGTAG" in kinds and (match is None or match.match(logging_name)):
                out.append(
                    {
                        "name": logging_name,
                        "displayName": LOGGING_TAG,
                        "objectType": "LOGGINGTAG",
                        "dataType": None,
                    }
                )
        return out

    def value_of(self, name: str, failing: frozenset[str] = frozenset()) -> dict[str, Any]:
        dp_name = plant_name(name)
        read = self.plant.read(dp_name) if dp_name is not None else None
        if read is None:
            return {"name": name, "value": None, "error": error(2, "cannot resolve name")}
        if name in failing or dp_name in failing:
            return {"name": name, "value": None, "error": error(99, "simulated item error")}
        value, quality_byte, ts, _ = read
        return {
            "name": name,
            "value": {"value": value, "timestamp": ts, "quality": quality(quality_byte)},
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
            dp_name = plant_name(name)
            spec = errors.get(name) or (errors.get(dp_name) if dp_name else None)
            if spec is not None:
                out.append(
                    {
                        "name": name,
                        "error": error(
                            spec.get("errorCode", 99), spec.get("errorDescription", "simulated write error")
                        ),
                    }
                )
                continue
            if self.faults.active("forbidden"):
                out.append({"name": name, "error": error(205, "no access right")})
                continue
            if name in failing or dp_name in failing:
                out.append({"name": name, "error": error(99, "simulated item error")})
                continue
            status, text = self.plant.check_write(dp_name, value) if dp_name is not None else (404, "unknown")
            code = {200: 0, 404: 2, 403: 204}.get(status)
            if code is None:
                code = 203 if text.startswith("out of range") else 201
            if code == 0:
                self.stats.writes.append({"name": name, "value": value})
            out.append({"name": name, "error": error(code, text)})
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
        start = timestamp(startTime, datetime(1970, 1, 1, tzinfo=UTC))
        end = timestamp(endTime, datetime.now(UTC))
        limit = maxNumberOfValues or 1000
        out: list[dict[str, Any]] = []
        for logging_name in names:
            tag_name, _sep, logging_tag = logging_name.rpartition(":")
            dp_name = plant_name(tag_name) if logging_tag == LOGGING_TAG else None
            rows = self.plant.archive(dp_name, start, end, limit) if dp_name is not None else None
            if rows is None:
                out.append({"loggingTagName": logging_name, "error": error(2, "cannot resolve name"), "values": []})
                continue
            if sortingMode == "TIME_DESC":
                rows = list(reversed(rows))
            values = [{"value": {"value": v, "timestamp": iso(t), "quality": quality(q)}} for t, v, q in rows]
            out.append({"loggingTagName": logging_name, "error": {"code": 0, "description": ""}, "values": values})
        return out

    # -- alarms -----------------------------------------------------------------------------------------
    def activeAlarms(self, info: Any, **_: Any) -> list[dict[str, Any]]:  # noqa: N802
        self._check(info)
        plant = self.plant
        return [alarm_json(plant.alarm_entry(a, "came" if a.active else "went")) for a in plant.active_alarms()]

    def loggedAlarms(
        self,
        info: Any,
        startTime: str | None = None,
        endTime: str | None = None,  # noqa: N802, N803
        maxNumberOfResults: int | None = None,
        **_: Any,
    ) -> list[dict[str, Any]]:  # noqa: N803
        self._check(info)
        start = timestamp(startTime, datetime(1970, 1, 1, tzinfo=UTC))
        end = timestamp(endTime, datetime.now(UTC) + timedelta(days=1))
        rows = [e for e in self.plant.alarm_log if start < timestamp(e["timestamp"], start) < end]
        return [alarm_json(e) for e in rows[: maxNumberOfResults or 1000]]

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
                    "error": error(code, {0: "", 305: "already acknowledged", 306: "unknown alarm instance"}[code]),
                }
            )
        return out

    # -- subscriptions (unified_socket.py streams them) ----------------------------------------------------
    async def _subscribe_tag_values(self, _root: Any, info: Any, names: list[str]) -> AsyncIterator[dict[str, Any]]:
        self._check(info)
        return tag_changes(self, list(dict.fromkeys(names)))

    async def _subscribe_active_alarms(self, _root: Any, info: Any, **_: Any) -> AsyncIterator[dict[str, Any]]:
        self._check(info)
        return _one_by_one(alarm_changes(self))


async def _one_by_one(batches: AsyncIterator[list[dict[str, Any]]]) -> AsyncIterator[dict[str, Any]]:
    async for batch in batches:
        for item in batch:
            yield item


def _event(event: Any, _info: Any, **_: Any) -> Any:
    return event


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
        field = first_field(query)
        stats.requests[f"POST /graphql {field}"] += 1
        if faults.active("malformed"):
            return Response("<html>this is not json", media_type="application/json")
        result = await graphql(
            api.schema,
            query,
            root_value=api,
            variable_values=variables,
            context_value={"token": bearer(request.headers.get("authorization"))},
        )
        out: dict[str, Any] = {"data": result.data}
        if result.errors:
            out["errors"] = [e.formatted for e in result.errors]
        return json_response(out)

    routes: list[BaseRoute] = [
        Route("/graphql", http, methods=["POST"]),
        WebSocketRoute("/graphql", websocket_endpoint(api)),
    ]
    return routes, api
