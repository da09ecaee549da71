"""The `restservice` dialect's endpoints under /WinCCRestService (docs/wincc-rest-api.md). The fault gate (gate.py)
has already counted the request, applied the faults and checked authentication; a route's `name` is its key in the
request counters (the path without the /WinCCRestService prefix)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.simulator import wire
from bridge.simulator.plant import RS_TYPE, Plant, Tag, iso
from bridge.simulator.routes_dp import alarm_json, alert_ack, history_entries
from bridge.simulator.state import GEN_BLOCK, SimState, continuation, page, sim_of, write_value
from bridge.simulator.wire import BadRequest, json_response

__all__ = ["ARCHIVE", "ROUTES", "RS"]

RS = "/WinCCRestService"
ARCHIVE = "ProcessArchive"
_STATE_TEXT = ["", "came in", "went out", "came in, acknowledged", "went out, acknowledged"]


def _var(plant: Plant, entry: Tag | int) -> dict[str, Any]:
    if isinstance(entry, int):
        return {
            "name": plant.gen_name(entry, "restservice"),
            "dataType": RS_TYPE[plant.gen_type(entry)],
            "group": f"Gen{entry // GEN_BLOCK:03d}",
            "connection": "PLC1",
        }
    var: dict[str, Any] = {
        "name": entry.rs_name,
        "dataType": RS_TYPE[entry.type],
        "group": entry.rs_group,
        "connection": "PLC1",
    }
    for k, v in (("unit", entry.unit), ("lowLimit", entry.low), ("highLimit", entry.high)):
        if v is not None:
            var[k] = v
    return var


def _variables(plant: Plant) -> list[Tag | int]:
    removed = plant.removed_generated
    return [*plant.tags.values(), *(i for i in range(plant.generated) if i not in removed)]


def _groups(plant: Plant) -> list[str]:
    groups = dict.fromkeys(t.rs_group for t in plant.tags.values())
    removed = plant.removed_generated
    for block in range((plant.generated + GEN_BLOCK - 1) // GEN_BLOCK):
        live = range(block * GEN_BLOCK, min(plant.generated, (block + 1) * GEN_BLOCK))
        if not removed or any(i not in removed for i in live):
            groups[f"Gen{block:03d}"] = None
    return list(groups)


def _value(plant: Plant, name: str, failing: frozenset[str], now: float | None = None) -> dict[str, Any]:
    if name in failing:
        return {
            "variableName": name,
            "value": None,
            "dataType": 0,
            "timestamp": None,
            "qualityCode": 0,
            "errorCode": 99,
            "errorDescription": "simulated failure",
        }
    dp = plant.dp_name(name)
    found = None if dp is None else plant.read(dp, now)
    if found is None:
        return {
            "variableName": name,
            "value": None,
            "dataType": 0,
            "timestamp": None,
            "qualityCode": 0,
            "errorCode": 1,
            "errorDescription": "unknown variable",
        }
    value, quality, ts, dtype = found
    return {
        "variableName": name,
        "value": value,
        "dataType": RS_TYPE[dtype],
        "timestamp": ts,
        "qualityCode": quality,
        "errorCode": 0,
        "errorDescription": "",
    }


async def connections(request: Request) -> Response:
    return json_response({"connections": [{"name": "PLC1"}]})


async def groups(request: Request) -> Response:
    sim = sim_of(request)
    names = sim.listings.get("restservice groups", "", lambda: _groups(sim.plant))
    return json_response({"groups": [{"name": g, "connection": "PLC1"} for g in names]})


async def browse(request: Request) -> Response:
    sim = sim_of(request)
    limit = max(1, wire.int_param(request, "itemLimit", 1000))
    variables = sim.listings.get("restservice variables", "", lambda: _variables(sim.plant))
    entries, nxt = page(variables, continuation(request, "continuationPoint"), limit)
    return json_response({"variables": [_var(sim.plant, e) for e in entries], "continuationPoint": nxt})


async def read_one(request: Request) -> Response:
    sim = sim_of(request)
    return json_response(_value(sim.plant, request.path_params["name"], sim.faults.failing()))


async def read_many(request: Request) -> Response:
    sim = sim_of(request)
    names = wire.names(await wire.body(request), "variableNames")
    sim.stats.read_batches.append(len(names))
    failing, now = sim.faults.failing(), time.time()
    return json_response([_value(sim.plant, n, failing, now) for n in names])


def _write(sim: SimState, name: str, value: Any, failing: frozenset[str]) -> dict[str, Any]:
    def item(code: int, text: str) -> dict[str, Any]:
        return {"variableName": name, "errorCode": code, "errorDescription": text}

    if (spec := sim.faults.write_errors().get(name)) is not None:
        return item(
            spec.get("errorCode", 99), spec.get("errorDescription") or spec.get("error") or "simulated write error"
        )
    if sim.faults.active("forbidden"):
        return item(7, f"no access right to write {name} (simulated)")
    if name in failing:
        return item(99, "simulated failure")
    dp = sim.plant.dp_name(name)
    if dp is None:
        return item(1, "unknown variable")
    status, error = sim.plant.check_write(dp, value)
    code = 0 if status == 200 else 4 if status == 403 else 2 if error.startswith("type") else 3
    if code == 0:
        sim.stats.writes.append({"name": name, "value": value})
    return item(code, error)


def _write_status(sim: SimState, names: list[str]) -> Response | None:
    """write_errors with an HTTP status fail the whole PUT."""
    errors = sim.faults.write_errors()
    for name in names:
        spec = errors.get(name)
        if spec is not None and "status" in spec:
            text = spec.get("error") or spec.get("errorDescription") or "simulated write error"
            return json_response({"error": text}, spec["status"])
    return None


async def write_one(request: Request) -> Response:
    sim = sim_of(request)
    name = request.path_params["name"]
    value = write_value(await wire.body(request))
    if (r := _write_status(sim, [name])) is not None:
        return r
    result = _write(sim, name, value, sim.faults.failing())
    return json_response({"errorcode": result["errorCode"], "errorDescription": result["errorDescription"]})


async def write_many(request: Request) -> Response:
    sim = sim_of(request)
    items = await wire.body(request, list)
    if not all(isinstance(i, dict) and isinstance(i.get("variableName"), str) and "value" in i for i in items):
        raise BadRequest("every item needs a variableName and a value")
    if (r := _write_status(sim, [i["variableName"] for i in items])) is not None:
        return r
    failing = sim.faults.failing()
    return json_response([_write(sim, i["variableName"], i["value"], failing) for i in items])


def _archive_list(plant: Plant) -> list[dict[str, str]]:
    out = [{"name": f"{t.rs_name}_Arch", "variableName": t.rs_name} for t in plant.tags.values() if t.archived]
    out += [
        {"name": f"{plant.gen_name(i, 'restservice')}_Arch", "variableName": plant.gen_name(i, "restservice")}
        for i in range(0, plant.generated, 10)
        if i not in plant.removed_generated
    ]
    return out


async def archives(request: Request) -> Response:
    return json_response([{"name": ARCHIVE, "variableName": ""}])


async def archive_vars(request: Request) -> Response:
    sim = sim_of(request)
    if request.path_params["a"] != ARCHIVE:
        return json_response({"error": "unknown archive"}, 404)
    return json_response(sim.listings.get("restservice archive variables", "", lambda: _archive_list(sim.plant)))


def _archive_variable(plant: Plant, var: dict[str, Any]) -> dict[str, Any]:
    arch_name = var.get("name", "")
    if not isinstance(arch_name, str):
        raise BadRequest("an archive variable's name must be text")
    max_values = var.get("maxValues", 1000)
    if type(max_values) is not int or max_values < 0:
        raise BadRequest("maxValues must be a whole number")
    start = wire.timestamp(var.get("timeFrom"), plant.epoch, "timeFrom")
    end = wire.timestamp(var.get("timeTo"), datetime.now(UTC), "timeTo")
    name = plant.dp_name(arch_name.removesuffix("_Arch"))
    values = plant.archive(name, start, end, min(max_values, 1000)) if name else None
    return {
        "name": arch_name,
        "values": [{"value": v, "timestamp": iso(t), "qualityCode": qc} for t, v, qc in (values or [])],
    }


async def archive_values(request: Request) -> Response:
    plant = sim_of(request).plant
    wanted = (await wire.body(request)).get("archives", [])
    if not isinstance(wanted, list) or not all(
        isinstance(a, dict)
        and isinstance(a.get("variables", []), list)
        and all(isinstance(v, dict) for v in a.get("variables", []))
        for a in wanted
    ):
        raise BadRequest("archives must be a list of {name, variables: [{name, timeFrom, timeTo, maxValues}]}")
    answer = [
        {"name": a.get("name"), "variables": [_archive_variable(plant, v) for v in a.get("variables", [])]}
        for a in wanted
    ]
    return json_response({"archives": answer})


def _message(plant: Plant, e: dict[str, Any]) -> dict[str, Any]:
    state = (3 if e["acknowledged"] else 1) if e["state"] == "came" else (4 if e["acknowledged"] else 2)
    tag = plant.tags.get(e["dp"])
    return {
        "messageNumber": int(e["id"]),
        "instanceId": int(e["id"]),
        "state": state,
        "stateText": _STATE_TEXT[state],
        "text": e["text"],
        "class": e["class"],
        "priority": e["priority"],
        "timestamp": e["timestamp"],
        "variableName": tag.rs_name if tag else e["dp"],
    }


async def messages(request: Request) -> Response:
    plant = sim_of(request).plant
    limit = wire.int_param(request, "maxValues", 1000)
    return json_response({"messages": [_message(plant, alarm_json(plant, a)) for a in plant.active_alarms()][:limit]})


async def short_term(request: Request) -> Response:
    plant = sim_of(request).plant
    entries = history_entries(request, "timeFrom", "timeTo", "maxValues")
    return json_response({"messages": [_message(plant, e) for e in entries]})


def _route(path: str, endpoint: Any, method: str = "GET") -> Route:
    return Route(RS + path, endpoint, methods=[method], name=f"{method} {path.replace(':path', '')}")


ROUTES = [
    _route("/tagManagement/Connections", connections),
    _route("/tagManagement/Groups", groups),
    _route("/tagManagement/Variables", browse),
    _route("/tagManagement/Value/{name:path}", read_one),
    _route("/tagManagement/Value/{name:path}", write_one, "PUT"),
    _route("/tagManagement/Values", read_many, "POST"),
    _route("/tagManagement/Values", write_many, "PUT"),
    _route("/tagLogging/Archives", archives),
    _route("/tagLogging/Archive/{a}/Variables", archive_vars),
    _route("/tagLogging/Values", archive_values, "POST"),
    _route("/alarmLogging/MessageList", messages),
    _route("/alarmLogging/ShortTermArchive", short_term),
    # not WinCC's: a site's own acknowledge script, as `wincc.acknowledge` may name one (tests, demo)
    _route("/_site/alarms/{id}/acknowledge", alert_ack, "POST"),
]
