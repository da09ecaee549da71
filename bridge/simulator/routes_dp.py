"""The `dp` dialect's endpoints (docs/wincc-rest-api.md). The fault gate (gate.py) has already counted the request,
applied the faults and checked authentication; a route's `name` is its key in the request counters."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.simulator import wire
from bridge.simulator.gate import LOGIN
from bridge.simulator.plant import Plant, Tag, iso
from bridge.simulator.state import GEN_BLOCK, continuation, number, page, sim_of, write_value
from bridge.simulator.wire import BadRequest, json_response

__all__ = ["ROUTES", "alarm_json", "history_entries"]


async def login(request: Request) -> Response:
    sim = sim_of(request)
    content = await wire.body(request)
    user, pw = content.get("username"), content.get("password")
    if not isinstance(user, str) or not isinstance(pw, str):
        raise BadRequest("username and password must be text")
    if not sim.credentials_match(user, pw):
        return json_response({"error": "bad credentials"}, 401)
    return json_response({"token": sim.issue_token(), "expiresIn": sim.token_ttl_s})


def _item(plant: Plant, entry: Tag | int | str) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"name": entry, "kind": "folder"}
    if isinstance(entry, int):
        return {
            "name": plant.gen_name(entry, "dp"),
            "kind": "dp",
            "type": plant.gen_type(entry).value,
            "writable": False,
            "archived": entry % 10 == 0,
        }
    item: dict[str, Any] = {
        "name": entry.name,
        "kind": "dp",
        "type": entry.type.value,
        "description": entry.description,
        "writable": entry.writable,
        "archived": entry.archived,
    }
    for k, v in (("unit", entry.unit), ("min", entry.low), ("max", entry.high)):
        if v is not None:
            item[k] = v
    return item


def _children(plant: Plant, prefix: str) -> list[Tag | int | str]:
    folders: dict[str, None] = {}
    tags: list[Tag | int | str] = []
    for tag in plant.tags.values():
        if not tag.name.startswith(prefix):
            continue
        rest = tag.name[len(prefix) :].split(".")
        if len(rest) == 1:
            tags.append(tag)
        else:
            folders[prefix + rest[0]] = None
    n = plant.generated
    if n and prefix in ("", "System1."):
        folders["System1" if prefix == "" else "System1.Gen"] = None
    elif n and prefix == "System1.Gen.":
        folders.update({f"System1.Gen.G{b:03d}": None for b in range((n + GEN_BLOCK - 1) // GEN_BLOCK)})
    elif n and prefix.startswith("System1.Gen.G") and prefix.endswith(".") and number(prefix[13:-1]):
        block = int(prefix[13:-1])
        removed = plant.removed_generated
        tags += [i for i in range(block * GEN_BLOCK, min(n, (block + 1) * GEN_BLOCK)) if i not in removed]
    return [*folders, *tags]


async def browse(request: Request) -> Response:
    sim = sim_of(request)
    path = request.query_params.get("path", "")
    limit = max(1, wire.int_param(request, "limit", 1000))
    children = sim.listings.get("dp browse", path, lambda: _children(sim.plant, path))
    entries, nxt = page(children, continuation(request, "continuation"), limit)
    return json_response({"path": path, "items": [_item(sim.plant, e) for e in entries], "continuation": nxt})


def _value(plant: Plant, name: str) -> dict[str, Any] | None:
    found = plant.read(name)
    if found is None:
        return None
    value, quality, ts, _ = found
    return {"name": name, "value": value, "quality": quality, "timestamp": ts}


# Path parameters come percent-decoded from the server (once, as the client encoded them): no unquote here.
async def read_one(request: Request) -> Response:
    content = _value(sim_of(request).plant, request.path_params["name"])
    return json_response(content) if content else json_response({"error": "not found"}, 404)


async def write_one(request: Request) -> Response:
    sim = sim_of(request)
    name = request.path_params["name"]
    value = write_value(await wire.body(request))
    if (spec := sim.faults.write_errors().get(name)) is not None:
        text = spec.get("error") or spec.get("errorDescription") or "simulated write error"
        return json_response({"error": text}, spec.get("status", 400))
    if sim.faults.active("forbidden"):
        return json_response({"error": f"no right to write {name} (simulated)"}, 403)
    status, error = sim.plant.check_write(name, value)
    if status != 200:
        return json_response({"error": error}, status)
    sim.stats.writes.append({"name": name, "value": value})
    return json_response(_value(sim.plant, name))


async def read_multiple(request: Request) -> Response:
    sim = sim_of(request)
    names = wire.names(await wire.body(request), "TagNames")
    sim.stats.read_batches.append(len(names))
    failing, read, now = sim.faults.failing(), sim.plant.read, time.time()
    out = []
    for name in names:
        found = None if name in failing else read(name, now)
        if found is None:
            out.append(
                {
                    "Name": name,
                    "Value": None,
                    "Quality": 0,
                    "Timestamp": None,
                    "Error": "simulated failure" if name in failing else "not found",
                }
            )
        else:
            out.append({"Name": name, "Value": found[0], "Quality": found[1], "Timestamp": found[2], "Error": None})
    return json_response({"Tags": out})


def alarm_json(plant: Plant, a: Any) -> dict[str, Any]:
    return plant.alarm_entry(a, "came" if a.active else "went")


async def alerts_active(request: Request) -> Response:
    plant = sim_of(request).plant
    return json_response({"alerts": [alarm_json(plant, a) for a in plant.active_alarms()]})


async def alert_ack(request: Request) -> Response:
    sim = sim_of(request)
    alarm_id = request.path_params["id"]
    content = await wire.body(request)
    user, comment = content.get("user"), content.get("comment")
    if not isinstance(user, str | None) or not isinstance(comment, str | None):
        raise BadRequest("user and comment must be text")
    status = sim.plant.acknowledge(alarm_id, user, comment)
    if status == 404:
        return json_response({"error": "unknown alarm"}, 404)
    if status == 409:
        return json_response({"error": "already acknowledged"}, 409)
    sim.stats.acknowledged.append({"id": alarm_id, "user": user, "comment": comment})
    return json_response({"id": alarm_id, "acknowledged": True})


def history_entries(request: Request, start_key: str, end_key: str, limit_key: str) -> list[dict[str, Any]]:
    """Alarm log entries in the query's time range (both dialects name the parameters differently)."""
    plant = sim_of(request).plant
    q = request.query_params
    start = wire.timestamp(q.get(start_key), datetime(1970, 1, 1, tzinfo=UTC), start_key)
    end = wire.timestamp(q.get(end_key), datetime.now(UTC), end_key)
    limit = wire.int_param(request, limit_key, 1000)
    out = [e for e in plant.alarm_log if start <= wire.timestamp(e["timestamp"], start) <= end]
    return out[:limit]


async def alerts_history(request: Request) -> Response:
    return json_response({"alerts": history_entries(request, "start", "end", "limit")})


async def archive(request: Request) -> Response:
    plant = sim_of(request).plant
    name = request.path_params["name"]
    q = request.query_params
    start = wire.timestamp(q.get("start"), plant.epoch, "start")
    end = wire.timestamp(q.get("end"), datetime.now(UTC), "end")
    values = plant.archive(name, start, end, min(wire.int_param(request, "limit", 1000), 1000))
    if values is None:
        return json_response({"error": "not archived"}, 404)
    return json_response(
        {"name": name, "values": [{"value": v, "quality": qc, "timestamp": iso(t)} for t, v, qc in values]}
    )


ROUTES = [
    Route("/api/auth/login", login, methods=["POST"], name=LOGIN),
    Route("/api/dp/browse", browse, name="GET /api/dp/browse"),
    Route("/api/dp/{name:path}", read_one, methods=["GET"], name="GET /api/dp/{name}"),
    Route("/api/dp/{name:path}", write_one, methods=["PUT"], name="PUT /api/dp/{name}"),
    Route("/WinCC/REST/Tags/ReadMultiple", read_multiple, methods=["POST"], name="POST /WinCC/REST/Tags/ReadMultiple"),
    Route("/api/alerts/active", alerts_active, name="GET /api/alerts/active"),
    Route("/api/alert/{id}/acknowledge", alert_ack, methods=["POST"], name="POST /api/alert/{id}/acknowledge"),
    Route("/api/alerts/history", alerts_history, name="GET /api/alerts/history"),
    Route("/api/history/{name:path}", archive, name="GET /api/history/{name}"),
]
