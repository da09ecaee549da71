"""The simulated WinCC Unified's WebSocket: graphql-transport-ws on `/graphql`, the `tagValues` and `activeAlarms`
subscriptions and the `ws_down` fault (every open socket is closed and new ones refused while it is on)."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from graphql import GraphQLError, parse, subscribe, validate
from starlette.websockets import WebSocket, WebSocketDisconnect

from bridge.runtime.clock import sleep_to_tick
from bridge.simulator.unified_schema import alarm_json, bearer, dp_name

if TYPE_CHECKING:
    from bridge.simulator.plant import Alarm
    from bridge.simulator.unified import UnifiedApi

__all__ = ["alarm_changes", "first_field", "tag_changes", "websocket_endpoint"]

# Every subscription sends what changed on one shared grid of this period, as a runtime sends what its acquisition
# cycle found: a subscriber gets one burst per tick, not one per subscription at that subscription's own phase (at
# 10k tags in 20 subscriptions, the bridge was woken 37-59 times a second from one run to the next, and its CPU
# followed: bench/README.md).
_TICK_S = 0.05
_FIELD = re.compile(r"\{\s*([A-Za-z_]\w*)")


def first_field(query: str) -> str:
    """The first field a GraphQL document selects (what the stats count a request as)."""
    match = _FIELD.search(query)
    return match.group(1) if match else "?"


async def tag_changes(api: UnifiedApi, names: list[str]) -> AsyncIterator[dict[str, Any]]:
    """ADDED with the current value of every name, then MODIFIED for each change as it happens. Generated tags
    change on a known schedule (a heap of next change times); demo tags are compared each tick."""
    plant = api.plant
    demo: dict[str, tuple[Any, ...]] = {}
    schedule: list[tuple[float, int, str]] = []
    period = 1.0 / plant.change_rate if plant.change_rate > 0 else 0.0
    now = time.time()
    for name in names:
        item = api.value_of(name)
        yield {**item, "notificationReason": "ADDED"}
        dp = dp_name(name)
        if dp is None:
            continue
        if dp in plant.tags:
            demo[name] = _snapshot(plant.tags[dp])
        elif period and (i := plant.gen_index(dp)) is not None:
            phase = (i * 0.6180339887 % 1.0) * period
            schedule.append(((int((now - phase) // period) + 1) * period + phase, i, name))
    heapq.heapify(schedule)
    while True:
        await sleep_to_tick(_TICK_S)
        now = time.time()
        while schedule and schedule[0][0] <= now:
            due, i, name = heapq.heappop(schedule)
            heapq.heappush(schedule, (due + period, i, name))
            yield {**api.value_of(name), "notificationReason": "MODIFIED"}
        for name, seen in demo.items():
            tag = plant.tags.get(dp_name(name) or "")
            if tag is None:
                continue
            snap = _snapshot(tag)
            if snap != seen:
                demo[name] = snap
                yield {**api.value_of(name), "notificationReason": "MODIFIED"}


def _snapshot(tag: Any) -> tuple[Any, ...]:
    return tag.value, tag.quality, tag.timestamp


async def alarm_changes(api: UnifiedApi) -> AsyncIterator[list[dict[str, Any]]]:
    """The whole active list first (each ADDED; an empty list if none), then per tick the alarms whose state
    changed, in the order the plant changed them: ADDED (entered the active list), MODIFIED, REMOVED (left it:
    went and acknowledged). The plant's alarm log is the source: every raise, clear and acknowledge appends one
    entry, so a subscriber reads the entries after the last one it has seen."""
    plant = api.plant
    listed: set[str] = set()
    log = plant.alarm_log
    last = log[-1] if log else None
    yield [_note(api, _entry(plant, a), "ADDED", listed) for a in plant.active_alarms()]
    while True:
        await sleep_to_tick(_TICK_S)
        log = plant.alarm_log
        if not log or log[-1] is last:
            continue
        fresh = _after(log, last)
        last = log[-1]
        out: list[dict[str, Any]] = []
        if fresh is None:  # the log was trimmed past what this subscriber saw: compare the whole list
            current = {a.id: a for a in plant.active_alarms()}
            for alarm_id in sorted(listed - current.keys()):
                out.append(_note(api, _entry(plant, plant.alarms[alarm_id]), "REMOVED", listed))
            fresh = [_entry(plant, a) for a in current.values()]
        for entry in fresh:
            in_list = entry["state"] == "came" or not entry["acknowledged"]
            if in_list:
                out.append(_note(api, entry, "MODIFIED" if entry["id"] in listed else "ADDED", listed))
            elif entry["id"] in listed:
                out.append(_note(api, entry, "REMOVED", listed))
        if out:
            yield out


def _entry(plant: Any, alarm: Alarm) -> dict[str, Any]:
    entry: dict[str, Any] = plant.alarm_entry(alarm, "came" if alarm.active else "went")
    return entry


def _note(api: UnifiedApi, entry: dict[str, Any], reason: str, listed: set[str]) -> dict[str, Any]:
    if reason == "REMOVED":
        listed.discard(entry["id"])
    else:
        listed.add(entry["id"])
    return {**alarm_json(entry), "notificationReason": reason}


def _after(log: list[dict[str, Any]], last: dict[str, Any] | None) -> list[dict[str, Any]] | None:
    """The entries after `last` (by identity), None if it is no longer in the log."""
    if last is None:
        return None if len(log) >= 10_000 else list(log)
    for i in range(len(log) - 1, -1, -1):
        if log[i] is last:
            return log[i + 1 :]
    return None


def websocket_endpoint(api: UnifiedApi) -> Callable[[WebSocket], Awaitable[None]]:
    async def websocket(ws: WebSocket) -> None:
        api.stats.requests["WS /graphql"] += 1
        if api.faults.active("ws_down") or api.faults.active("down"):
            await ws.close(code=1013)
            return
        await ws.accept(subprotocol="graphql-transport-ws")
        api.sockets.add(ws)
        running: dict[str, asyncio.Task[None]] = {}
        try:
            await _serve_socket(api, ws, running)
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            api.sockets.discard(ws)
            for task in running.values():
                task.cancel()
            await asyncio.gather(*running.values(), return_exceptions=True)

    return websocket


async def _serve_socket(api: UnifiedApi, ws: WebSocket, running: dict[str, asyncio.Task[None]]) -> None:
    init = orjson.loads(await asyncio.wait_for(ws.receive_text(), 10))
    if init.get("type") != "connection_init":
        await ws.close(code=4400)
        return
    payload = init.get("payload") or {}
    token = bearer(payload.get("Authorization") if isinstance(payload, dict) else None) or bearer(
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
                payload = message.get("payload") or {}
                api.stats.requests[f"WS subscribe {first_field(str(payload.get('query') or ''))}"] += 1
                running[sub_id] = asyncio.create_task(_run_subscription(api, ws, sub_id, payload, token))
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
    async def send(message: dict[str, Any]) -> None:
        await ws.send_text(orjson.dumps(message).decode())

    try:
        document = parse(payload.get("query") or "")
        errors = validate(api.schema, document)
        if errors:
            await send({"type": "error", "id": sub_id, "payload": [e.formatted for e in errors]})
            return
        variables = payload.get("variables") or {}
        field = _only_field(document)
        # The bridge's own subscriptions: validated above, then streamed without running every event through
        # graphql-core (the simulator must keep up with 100k subscribed tags; the real server is not Python).
        if field == "tagValues" and (names := _names(document, variables)) is not None:
            if not api.token_ok(token):
                raise api.unauthenticated()
            async for item in tag_changes(api, list(dict.fromkeys(names))):
                await send({"type": "next", "id": sub_id, "payload": {"data": {"tagValues": item}}})
            return
        if field == "activeAlarms":
            if not api.token_ok(token):
                raise api.unauthenticated()
            async for alarms in alarm_changes(api):
                for alarm in alarms:  # one ActiveAlarmNotification per message, as Unified sends them
                    await send({"type": "next", "id": sub_id, "payload": {"data": {"activeAlarms": alarm}}})
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


def _only_field(document: Any) -> str | None:
    """The field of a document that is exactly one subscription selecting one field, else None."""
    ops = [d for d in document.definitions if getattr(d, "operation", None) is not None]
    if len(ops) != 1 or ops[0].operation.value != "subscription" or len(ops[0].selection_set.selections) != 1:
        return None
    field = ops[0].selection_set.selections[0]
    name = getattr(field, "name", None)
    return str(name.value) if name is not None else None


def _names(document: Any, variables: dict[str, Any]) -> list[str] | None:
    """The `names` of the one `tagValues(names: $x)` field, given as a variable, else None."""
    field = [d for d in document.definitions if getattr(d, "operation", None) is not None][0].selection_set.selections[
        0
    ]
    for arg in field.arguments:
        if arg.name.value == "names" and arg.value.kind == "variable":
            names = variables.get(arg.value.name.value)
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
    return None
