"""The simulator's HTTP API: the WinCC REST contract in one dialect, plus the control API under /_sim/.

Control API (no auth): GET /_sim/health, GET /_sim/stats, POST /_sim/stats/reset, POST|DELETE /_sim/faults,
POST /_sim/tags {"set", "quality", "add", "remove"}, POST /_sim/alarms {"raise"|"clear": id}.
Faults: down (connections are aborted without an answer), slow (latency_ms), unauthorized (401), error500,
malformed (a body that is not JSON), partial (the listed tags fail inside batch answers), expire_sessions
(every token becomes invalid once).
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import secrets
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.simulator.plant import RS_TYPE, Plant, Tag, iso
from bridge.wincc.models import DataType

__all__ = ["Faults", "Stats", "build_app"]

RS = "/WinCCRestService"
ARCHIVE = "ProcessArchive"


@dataclass
class Faults:
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def active(self, mode: str) -> dict[str, Any] | None:
        return self.modes.get(mode)

    def set(self, spec: dict[str, Any]) -> None:
        mode = spec.get("mode", "none")
        if mode == "none":
            self.modes.clear()
        else:
            self.modes[mode] = spec

    def clear(self) -> None:
        self.modes.clear()


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    read_batches: deque[int] = field(default_factory=lambda: deque(maxlen=1000))
    writes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    acknowledged: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))

    def as_json(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "read_batches": list(self.read_batches),
                "writes": list(self.writes), "acknowledged": list(self.acknowledged)}

    def reset(self) -> None:
        self.requests.clear()
        self.read_batches.clear()
        self.writes.clear()
        self.acknowledged.clear()


def _ts(text: str | None, default: datetime) -> datetime:
    if not text:
        return default
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def build_app(plant: Plant, dialect: str, *, auth: str = "none", username: str = "opcua", password: str | None = None,
              token_ttl_s: float = 900, faults: Faults, stats: Stats) -> Starlette:
    tokens: dict[str, float] = {}
    by_rs = {t.rs_name: t for t in plant.tags.values()}

    def rs_tag(name: str) -> str | None:
        """restservice name -> the plant's (dp) name."""
        if name in by_rs:
            return by_rs[name].name
        return name if plant.gen_index(name) is not None else None

    # ---- auth ---------------------------------------------------------------------------------------------
    def authorized(request: Request) -> bool:
        if auth == "none":
            return True
        header = request.headers.get("authorization", "")
        if auth == "basic":
            if not header.startswith("Basic "):
                return False
            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return hmac.compare_digest(user, username) and hmac.compare_digest(pw, password or "")
        if not header.startswith("Bearer "):
            return False
        expiry = tokens.get(header[7:])
        return expiry is not None and expiry > time.monotonic()

    async def gate(request: Request, key: str) -> Response | None:
        """Count the request, apply faults and auth. A response here replaces the real answer."""
        stats.requests[key] += 1
        if (slow := faults.active("slow")) is not None:
            await asyncio.sleep(float(slow.get("latency_ms", 1000)) / 1000)
        if faults.active("error500"):
            return JSONResponse({"error": "internal server error (simulated)"}, status_code=500)
        if faults.active("unauthorized") or not authorized(request):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        if faults.active("malformed"):
            return Response("<html>this is not json", media_type="application/json")
        return None

    def failing(name: str) -> bool:
        spec = faults.active("partial")
        return spec is not None and name in spec.get("tags", [])

    # ---- dp -----------------------------------------------------------------------------------------------
    async def login(request: Request) -> Response:
        stats.requests["POST /api/auth/login"] += 1
        body = await request.json()
        if body.get("username") != username or body.get("password") != (password or ""):
            return JSONResponse({"error": "bad credentials"}, status_code=401)
        token = secrets.token_urlsafe(24)
        tokens[token] = time.monotonic() + token_ttl_s
        return JSONResponse({"token": token, "expiresIn": token_ttl_s})

    def dp_item(tag: Tag) -> dict[str, Any]:
        item: dict[str, Any] = {"name": tag.name, "kind": "dp", "type": tag.type.value, "description": tag.description,
                                "writable": tag.writable, "archived": tag.archived}
        for k, v in (("unit", tag.unit), ("min", tag.low), ("max", tag.high)):
            if v is not None:
                item[k] = v
        return item

    def dp_children(path: str) -> list[dict[str, Any]]:
        prefix = path
        folders: dict[str, None] = {}
        items: list[dict[str, Any]] = []
        for tag in plant.tags.values():
            if not tag.name.startswith(prefix):
                continue
            rest = tag.name[len(prefix):].split(".")
            if len(rest) == 1:
                items.append(dp_item(tag))
            else:
                folders[prefix + rest[0]] = None
        n = plant.generated
        if n and prefix in ("", "System1."):
            folders["System1" if prefix == "" else "System1.Gen"] = None
        elif n and prefix == "System1.Gen.":
            folders.update({f"System1.Gen.G{b:03d}": None for b in range((n + 999) // 1000)})
        elif n and prefix.startswith("System1.Gen.G") and prefix.endswith("."):
            block = int(prefix[13:-1])
            for i in range(block * 1000, min(n, block * 1000 + 1000)):
                if i in plant.removed_generated:
                    continue
                t = plant.gen_type(i)
                items.append({"name": plant.gen_name(i, "dp"), "kind": "dp", "type": t.value,
                              "writable": False, "archived": i % 10 == 0})
        return [{"name": f, "kind": "folder"} for f in folders] + items

    async def dp_browse(request: Request) -> Response:
        if (r := await gate(request, "GET /api/dp/browse")) is not None:
            return r
        path = request.query_params.get("path", "")
        limit = int(request.query_params.get("limit", "1000"))
        offset = int(request.query_params.get("continuation") or 0)
        children = dp_children(path)
        page = children[offset:offset + limit]
        nxt = str(offset + limit) if offset + limit < len(children) else None
        return JSONResponse({"path": path, "items": page, "continuation": nxt})

    def dp_value(name: str) -> dict[str, Any] | None:
        found = plant.read(name)
        if found is None:
            return None
        value, quality, ts, _ = found
        return {"name": name, "value": value, "quality": quality, "timestamp": iso(ts)}

    async def dp_read_one(request: Request) -> Response:
        if (r := await gate(request, "GET /api/dp/{name}")) is not None:
            return r
        body = dp_value(unquote(request.path_params["name"]))
        return JSONResponse(body) if body else JSONResponse({"error": "not found"}, status_code=404)

    async def dp_write_one(request: Request) -> Response:
        if (r := await gate(request, "PUT /api/dp/{name}")) is not None:
            return r
        name = unquote(request.path_params["name"])
        value = (await request.json()).get("value")
        status, error = plant.check_write(name, value)
        if status != 200:
            return JSONResponse({"error": error}, status_code=status)
        stats.writes.append({"name": name, "value": value})
        return JSONResponse(dp_value(name))

    async def read_multiple(request: Request) -> Response:
        if (r := await gate(request, "POST /WinCC/REST/Tags/ReadMultiple")) is not None:
            return r
        names = (await request.json()).get("TagNames", [])
        stats.read_batches.append(len(names))
        out = []
        for name in names:
            found = None if failing(name) else plant.read(name)
            if found is None:
                out.append({"Name": name, "Value": None, "Quality": 0, "Timestamp": None,
                            "Error": "simulated failure" if failing(name) else "not found"})
            else:
                value, quality, ts, _ = found
                out.append({"Name": name, "Value": value, "Quality": quality, "Timestamp": iso(ts), "Error": None})
        return JSONResponse({"Tags": out})

    def alarm_json(a: Any) -> dict[str, Any]:
        return plant.alarm_entry(a, "came" if a.active else "went")

    async def alerts_active(request: Request) -> Response:
        if (r := await gate(request, "GET /api/alerts/active")) is not None:
            return r
        return JSONResponse({"alerts": [alarm_json(a) for a in plant.active_alarms()]})

    async def alert_ack(request: Request) -> Response:
        if (r := await gate(request, "POST /api/alert/{id}/acknowledge")) is not None:
            return r
        alarm_id = request.path_params["id"]
        body = await request.json()
        status = plant.acknowledge(alarm_id)
        if status == 404:
            return JSONResponse({"error": "unknown alarm"}, status_code=404)
        if status == 409:
            return JSONResponse({"error": "already acknowledged"}, status_code=409)
        stats.acknowledged.append({"id": alarm_id, "user": body.get("user"), "comment": body.get("comment")})
        return JSONResponse({"id": alarm_id, "acknowledged": True})

    def history_entries(request: Request, start_key: str, end_key: str, limit_key: str) -> list[dict[str, Any]]:
        """Alarm log entries in the query's time range (both dialects name the parameters differently)."""
        q = request.query_params
        start = _ts(q.get(start_key), datetime(1970, 1, 1, tzinfo=UTC))
        end = _ts(q.get(end_key), datetime.now(UTC))
        out = [e for e in plant.alarm_log if start <= _ts(e["timestamp"], start) <= end]
        return out[: int(q.get(limit_key, "1000"))]

    async def alerts_history(request: Request) -> Response:
        if (r := await gate(request, "GET /api/alerts/history")) is not None:
            return r
        return JSONResponse({"alerts": history_entries(request, "start", "end", "limit")})

    async def dp_history(request: Request) -> Response:
        if (r := await gate(request, "GET /api/history/{name}")) is not None:
            return r
        name = unquote(request.path_params["name"])
        q = request.query_params
        start = _ts(q.get("start"), plant.epoch)
        end = _ts(q.get("end"), datetime.now(UTC))
        limit = min(int(q.get("limit", "1000")), 1000)
        values = plant.archive(name, start, end, limit)
        if values is None:
            return JSONResponse({"error": "not archived"}, status_code=404)
        return JSONResponse({"name": name, "values": [{"value": v, "quality": qc, "timestamp": iso(t)}
                                                      for t, v, qc in values]})

    # ---- restservice ----------------------------------------------------------------------------------------
    def rs_var(tag: Tag) -> dict[str, Any]:
        var: dict[str, Any] = {"name": tag.rs_name, "dataType": RS_TYPE[tag.type], "group": tag.rs_group,
                               "connection": "PLC1"}
        for k, v in (("unit", tag.unit), ("lowLimit", tag.low), ("highLimit", tag.high)):
            if v is not None:
                var[k] = v
        return var

    def rs_variables() -> list[dict[str, Any]]:
        out = [rs_var(t) for t in plant.tags.values()]
        for i in range(plant.generated):
            if i not in plant.removed_generated:
                out.append({"name": plant.gen_name(i, "restservice"), "dataType": RS_TYPE[plant.gen_type(i)],
                            "group": f"Gen{i // 1000:03d}", "connection": "PLC1"})
        return out

    def rs_value(name: str) -> dict[str, Any]:
        dp = rs_tag(name)
        found = None if dp is None or failing(name) else plant.read(dp)
        if found is None:
            return {"variableName": name, "value": None, "dataType": 0, "timestamp": None, "qualityCode": 0,
                    "errorCode": 1 if not failing(name) else 99,
                    "errorDescription": "simulated failure" if failing(name) else "unknown variable"}
        value, quality, ts, dtype = found
        return {"variableName": name, "value": value, "dataType": RS_TYPE[dtype], "timestamp": iso(ts),
                "qualityCode": quality, "errorCode": 0, "errorDescription": ""}

    async def rs_connections(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Connections")) is not None:
            return r
        return JSONResponse({"connections": [{"name": "PLC1"}]})

    async def rs_groups(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Groups")) is not None:
            return r
        groups = dict.fromkeys(v["group"] for v in rs_variables())
        return JSONResponse({"groups": [{"name": g, "connection": "PLC1"} for g in groups]})

    async def rs_browse(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Variables")) is not None:
            return r
        limit = int(request.query_params.get("itemLimit", "1000"))
        offset = int(request.query_params.get("continuationPoint") or 0)
        variables = rs_variables()
        nxt = str(offset + limit) if offset + limit < len(variables) else None
        return JSONResponse({"variables": variables[offset:offset + limit], "continuationPoint": nxt})

    async def rs_read_one(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Value/{name}")) is not None:
            return r
        return JSONResponse(rs_value(unquote(request.path_params["name"])))

    async def rs_read_many(request: Request) -> Response:
        if (r := await gate(request, "POST /tagManagement/Values")) is not None:
            return r
        names = (await request.json()).get("variableNames", [])
        stats.read_batches.append(len(names))
        return JSONResponse([rs_value(n) for n in names])

    def rs_write(name: str, value: Any) -> dict[str, Any]:
        dp = rs_tag(name)
        if dp is None:
            return {"variableName": name, "errorCode": 1, "errorDescription": "unknown variable"}
        status, error = plant.check_write(dp, value)
        code = 0 if status == 200 else 4 if status == 403 else 2 if error.startswith("type") else 3
        if code == 0:
            stats.writes.append({"name": name, "value": value})
        return {"variableName": name, "errorCode": code, "errorDescription": error}

    async def rs_write_one(request: Request) -> Response:
        if (r := await gate(request, "PUT /tagManagement/Value/{name}")) is not None:
            return r
        result = rs_write(unquote(request.path_params["name"]), (await request.json()).get("value"))
        return JSONResponse({"errorcode": result["errorCode"], "errorDescription": result["errorDescription"]})

    async def rs_write_many(request: Request) -> Response:
        if (r := await gate(request, "PUT /tagManagement/Values")) is not None:
            return r
        items = await request.json()
        return JSONResponse([rs_write(i.get("variableName"), i.get("value")) for i in items])

    archived_rs = {t.rs_name: t for t in plant.tags.values() if t.archived}

    async def rs_archives(request: Request) -> Response:
        if (r := await gate(request, "GET /tagLogging/Archives")) is not None:
            return r
        return JSONResponse([{"name": ARCHIVE, "variableName": ""}])

    async def rs_archive_vars(request: Request) -> Response:
        if (r := await gate(request, "GET /tagLogging/Archive/{a}/Variables")) is not None:
            return r
        if request.path_params["a"] != ARCHIVE:
            return JSONResponse({"error": "unknown archive"}, status_code=404)
        out = [{"name": f"{n}_Arch", "variableName": n} for n in archived_rs]
        out += [{"name": f"{plant.gen_name(i, 'restservice')}_Arch", "variableName": plant.gen_name(i, "restservice")}
                for i in range(0, plant.generated, 10) if i not in plant.removed_generated]
        return JSONResponse(out)

    async def rs_archive_values(request: Request) -> Response:
        if (r := await gate(request, "POST /tagLogging/Values")) is not None:
            return r
        body = await request.json()
        answer = []
        for archive in body.get("archives", []):
            variables = []
            for var in archive.get("variables", []):
                arch_name = var.get("name", "")
                name = rs_tag(arch_name.removesuffix("_Arch"))
                limit = min(int(var.get("maxValues", 1000)), 1000)
                start = _ts(var.get("timeFrom"), plant.epoch)
                end = _ts(var.get("timeTo"), datetime.now(UTC))
                values = plant.archive(name, start, end, limit) if name else None
                variables.append({"name": arch_name, "values": [
                    {"value": v, "timestamp": iso(t), "qualityCode": qc} for t, v, qc in (values or [])]})
            answer.append({"name": archive.get("name"), "variables": variables})
        return JSONResponse({"archives": answer})

    def rs_message(e: dict[str, Any]) -> dict[str, Any]:
        state = (3 if e["acknowledged"] else 1) if e["state"] == "came" else (4 if e["acknowledged"] else 2)
        tag = plant.tags.get(e["dp"])
        return {"messageNumber": int(e["id"]), "instanceId": int(e["id"]), "state": state,
                "stateText": ["", "came in", "went out", "came in, acknowledged", "went out, acknowledged"][state],
                "text": e["text"], "class": e["class"], "priority": e["priority"], "timestamp": e["timestamp"],
                "variableName": tag.rs_name if tag else e["dp"]}

    async def rs_messages(request: Request) -> Response:
        if (r := await gate(request, "GET /alarmLogging/MessageList")) is not None:
            return r
        limit = int(request.query_params.get("maxValues", "1000"))
        return JSONResponse({"messages": [rs_message(alarm_json(a)) for a in plant.active_alarms()][:limit]})

    async def rs_short_term(request: Request) -> Response:
        if (r := await gate(request, "GET /alarmLogging/ShortTermArchive")) is not None:
            return r
        entries = history_entries(request, "timeFrom", "timeTo", "maxValues")
        return JSONResponse({"messages": [rs_message(e) for e in entries]})

    # ---- control --------------------------------------------------------------------------------------------
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "dialect": dialect, "tags": len(plant.tags) + plant.generated,
                             "pid": os.getpid()})

    async def get_stats(request: Request) -> Response:
        return JSONResponse(stats.as_json())

    async def reset_stats(request: Request) -> Response:
        stats.reset()
        return JSONResponse({"ok": True})

    async def set_faults(request: Request) -> Response:
        if request.method == "DELETE":
            faults.clear()
        else:
            spec = await request.json()
            if spec.get("mode") == "expire_sessions":
                tokens.clear()
            else:
                faults.set(spec)
        return JSONResponse({"active": list(faults.modes)})

    async def control_tags(request: Request) -> Response:
        body = await request.json()
        for name, value in body.get("set", {}).items():
            if name in plant.tags:
                plant.set(name, value)
        for name, quality in body.get("quality", {}).items():
            if name in plant.tags:
                plant.set(name, plant.tags[name].value, int(quality))
        for item in body.get("add", []):
            tag = Tag(item["name"], DataType(item.get("type", "double")), item.get("value", 0.0),
                      unit=item.get("unit"), low=item.get("min"), high=item.get("max"),
                      writable=bool(item.get("writable")), archived=False)
            plant.tags[tag.name] = tag
            by_rs[tag.rs_name] = tag
        for name in body.get("remove", []):
            tag = plant.tags.pop(name, None)
            if tag is not None:
                by_rs.pop(tag.rs_name, None)
            elif (i := plant.gen_index(name)) is not None:
                plant.removed_generated.add(i)
        return JSONResponse({"tags": len(plant.tags)})

    async def control_alarms(request: Request) -> Response:
        body = await request.json()
        if "raise" in body:
            plant.forced_alarms[str(body["raise"])] = True
            plant.set_alarm(str(body["raise"]), True)
        if "clear" in body:
            plant.forced_alarms[str(body["clear"])] = False
            plant.set_alarm(str(body["clear"]), False)
        return JSONResponse({"active": [a.id for a in plant.active_alarms()]})

    control = [
        Route("/_sim/health", health),
        Route("/_sim/stats", get_stats),
        Route("/_sim/stats/reset", reset_stats, methods=["POST"]),
        Route("/_sim/faults", set_faults, methods=["POST", "DELETE"]),
        Route("/_sim/tags", control_tags, methods=["POST"]),
        Route("/_sim/alarms", control_alarms, methods=["POST"]),
    ]
    if dialect == "dp":
        api = [
            Route("/api/auth/login", login, methods=["POST"]),
            Route("/api/dp/browse", dp_browse),
            Route("/api/dp/{name:path}", dp_read_one, methods=["GET"]),
            Route("/api/dp/{name:path}", dp_write_one, methods=["PUT"]),
            Route("/WinCC/REST/Tags/ReadMultiple", read_multiple, methods=["POST"]),
            Route("/api/alerts/active", alerts_active),
            Route("/api/alert/{id}/acknowledge", alert_ack, methods=["POST"]),
            Route("/api/alerts/history", alerts_history),
            Route("/api/history/{name:path}", dp_history),
        ]
    else:
        api = [
            Route(RS + "/tagManagement/Connections", rs_connections),
            Route(RS + "/tagManagement/Groups", rs_groups),
            Route(RS + "/tagManagement/Variables", rs_browse),
            Route(RS + "/tagManagement/Value/{name:path}", rs_read_one, methods=["GET"]),
            Route(RS + "/tagManagement/Value/{name:path}", rs_write_one, methods=["PUT"]),
            Route(RS + "/tagManagement/Values", rs_read_many, methods=["POST"]),
            Route(RS + "/tagManagement/Values", rs_write_many, methods=["PUT"]),
            Route(RS + "/tagLogging/Archives", rs_archives),
            Route(RS + "/tagLogging/Archive/{a}/Variables", rs_archive_vars),
            Route(RS + "/tagLogging/Values", rs_archive_values, methods=["POST"]),
            Route(RS + "/alarmLogging/MessageList", rs_messages),
            Route(RS + "/alarmLogging/ShortTermArchive", rs_short_term),
        ]
    app = Starlette(routes=control + api)
    return _DownFault(app, faults)  # type: ignore[return-value]


class _DownFault:
    """ASGI wrapper for the `down` fault: data requests get no answer at all and their connection is aborted, so a
    client sees a dead server (a connection error), not an HTTP status. /_sim/ keeps working to lift the fault."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app, self.faults = app, faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.faults.active("down") and not scope["path"].startswith("/_sim/"):
            # uvicorn's `send` is a method of the connection's request cycle, which holds the transport
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                transport.abort()
                return
        await self.app(scope, receive, send)
