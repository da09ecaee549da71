"""The fault gate in front of every WinCC endpoint, as ASGI middleware: count the request, apply the faults that
replace an answer, check authentication. /_sim/ (the control API) never passes through it.

`FaultGate` runs inside Starlette (it answers with HTTP statuses); `DownFault` wraps the whole app, because the
`down` fault answers nothing at all and must reach uvicorn's own connection to abort it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from bridge.simulator.faults import Faults
from bridge.simulator.state import SimState
from bridge.simulator.wire import json_response

__all__ = ["CONTROL_PREFIX", "DownFault", "FaultGate", "LOGIN"]

CONTROL_PREFIX = "/_sim/"
LOGIN = "POST /api/auth/login"  # faults apply to the login, authentication does not


class FaultGate:
    """Each data route's `name` is its key in the request counters (e.g. "GET /api/dp/{name}"); the gate finds the
    route the way the router will, so an unknown path or method is left to the router (404 / 405, not counted)."""

    _MAX_KEYS = 4096  # (method, path) pairs remembered; the cache starts over when full

    def __init__(self, app: ASGIApp, sim: SimState, routes: Sequence[BaseRoute]) -> None:
        self.app, self.sim, self.routes = app, sim, routes
        self._keys: dict[tuple[str, str], str | None] = {}

    def _key(self, scope: Scope) -> str | None:
        """The counter key of the route the request will reach; None if it reaches none (404 / 405)."""
        where = (scope["method"], scope["path"])
        try:
            return self._keys[where]
        except KeyError:
            pass
        key = None
        for route in self.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                key = getattr(route, "name", None)
                break
        if len(self._keys) >= self._MAX_KEYS:
            self._keys.clear()
        self._keys[where] = key
        return key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(CONTROL_PREFIX):
            await self.app(scope, receive, send)
            return
        key = self._key(scope)
        answer = await self._gate(scope, key) if key is not None else None
        if answer is None:
            await self.app(scope, receive, send)
        else:
            await answer(scope, receive, send)

    async def _gate(self, scope: Scope, key: str) -> Response | None:
        """A response here replaces the real answer."""
        sim = self.sim
        faults = sim.faults
        sim.stats.requests[key] += 1
        if faults.modes:
            if latency := faults.latency_s():
                await asyncio.sleep(latency)
            if faults.active("error500"):
                return json_response({"error": "internal server error (simulated)"}, 500)
            if faults.active("unauthorized"):
                return json_response({"error": "unauthorized"}, 401)
        if key != LOGIN and sim.auth != "none" and not sim.authorized(_authorization(scope)):
            return json_response({"error": "unauthorized"}, 401)
        if faults.active("malformed"):
            return Response("<html>this is not json", media_type="application/json")
        return None


class DownFault:
    """The `down` fault: data requests get no answer at all and their connection is aborted, so a client sees a
    dead server (a connection error), not an HTTP status. /_sim/ keeps working to lift the fault."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app, self.faults = app, faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.faults.active("down") and not scope["path"].startswith(CONTROL_PREFIX):
            # uvicorn's `send` is a method of the connection's request cycle, which holds the transport
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                transport.abort()
                return
        await self.app(scope, receive, send)


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value).decode("latin-1")
    return ""
