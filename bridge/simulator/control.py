"""The control API under /_sim/ (documented in bridge/simulator/app.py): tests and the demo drive the simulated
plant, its faults and its restarts through it. No auth, and the fault gate never applies here."""

from __future__ import annotations

import os
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.simulator import wire
from bridge.simulator.plant import Tag
from bridge.simulator.state import SimState, change_tags, sim_of
from bridge.simulator.wire import BadRequest, json_response

__all__ = ["ROUTES"]


async def health(request: Request) -> Response:
    sim = sim_of(request)
    return json_response({"ok": True, "dialect": sim.dialect, "tags": sim.plant.tag_count(), "pid": os.getpid()})


async def get_stats(request: Request) -> Response:
    return json_response(sim_of(request).stats.as_json())


async def reset_stats(request: Request) -> Response:
    sim_of(request).stats.reset()
    return json_response({"ok": True})


async def set_faults(request: Request) -> Response:
    faults = sim_of(request).faults
    if request.method == "DELETE":
        faults.clear()
    else:
        try:
            faults.set(await wire.body(request))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return json_response({"active": list(faults.modes)})


def _tag(sim: SimState, name: Any) -> Tag:
    tag = sim.plant.tags.get(name) or sim.plant.by_rs.get(name) if isinstance(name, str) else None
    if tag is None:
        raise BadRequest(f"no tag {name!r} to set (generated tags compute their values)")
    return tag


async def tags(request: Request) -> Response:
    sim = sim_of(request)
    content = await wire.body(request)
    sets, qualities = content.get("set", {}), content.get("quality", {})
    if not isinstance(sets, dict) or not isinstance(qualities, dict):
        raise BadRequest("set and quality map tag names to values")
    if not all(type(q) is int and 0 <= q <= 255 for q in qualities.values()):
        raise BadRequest("a quality is a number 0..255")
    updates = [(_tag(sim, n), v, None) for n, v in sets.items()]
    updates += [(_tag(sim, n), None, q) for n, q in qualities.items()]
    try:
        change_tags(sim.plant, content.get("add", []), content.get("remove", []))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    for tag, value, quality in updates:
        sim.plant.set(tag.name, tag.value if quality is not None else value, quality)
    return json_response({"tags": len(sim.plant.tags)})


async def alarms(request: Request) -> Response:
    plant = sim_of(request).plant
    content = await wire.body(request)
    generate = content.get("generate", 0)
    if type(generate) is not int or not 0 <= generate <= 100_000:
        raise BadRequest("generate is a number of alarms, 0..100000")
    added = plant.add_alarms(generate) if generate else []
    for key, active in (("raise", True), ("clear", False)):
        if key in content:  # one id, or a list of ids
            ids = content[key] if isinstance(content[key], list) else [content[key]]
            for alarm_id in map(str, ids):
                if alarm_id not in plant.alarms:
                    raise BadRequest(f"no alarm {alarm_id!r}")
                plant.forced_alarms[alarm_id] = active
                plant.set_alarm(alarm_id, active)
    active_ids = [a.id for a in plant.active_alarms()]
    return json_response({"active": active_ids[:1000], "active_count": len(active_ids), "added": len(added)})


async def restart(request: Request) -> Response:
    sim = sim_of(request)
    if sim.restart is None:
        return json_response({"error": "restart needs the Simulator that runs this app"}, 501)
    content = await wire.body(request)
    down_s = content.get("down_s", 0.5)
    if isinstance(down_s, bool) or not isinstance(down_s, int | float) or not 0 <= down_s <= 60:
        raise BadRequest("down_s must be a number of seconds (0..60)")
    try:
        await sim.restart(content.get("add", []), content.get("remove", []), float(down_s))
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    except RuntimeError as exc:
        return json_response({"error": str(exc)}, 409)
    return json_response({"restarting": True, "down_s": down_s, "tags": sim.plant.tag_count()})


ROUTES = [
    Route("/_sim/health", health),
    Route("/_sim/stats", get_stats),
    Route("/_sim/stats/reset", reset_stats, methods=["POST"]),
    Route("/_sim/faults", set_faults, methods=["POST", "DELETE"]),
    Route("/_sim/tags", tags, methods=["POST"]),
    Route("/_sim/alarms", alarms, methods=["POST"]),
    Route("/_sim/restart", restart, methods=["POST"]),
]
