"""The simulator's HTTP API: the WinCC REST API (docs/wincc-rest-api.md) in one dialect, plus the control API
under /_sim/.

Control API (no auth, JSON bodies; a bad body answers 400 {"error": ...}):
- GET /_sim/health, GET /_sim/stats (requests per endpoint, tags per read batch, applied writes, acknowledgements,
  browse listings built), POST /_sim/stats/reset
- POST /_sim/tags {"set": {name: value}, "quality": {name: q}, "add": [ITEM...], "remove": [name...]}
  ITEM = {"name": "<dp name>", "type": "double", "value": 0, "unit", "min", "max", "writable": false, "rs_name"}
  (`rs_name` gives a restservice name other than the derived one). Names in set/quality/remove may be either
  dialect's name.
- POST /_sim/alarms {"raise"|"clear": id or [ids], "generate": n}
- restservice only: POST <base>/_site/alarms/{id}/acknowledge {"user", "comment"} (a site script for
  `wincc.acknowledge`; WinCC's restservice has no acknowledge call)
- POST /_sim/faults SPEC turns one fault on (several may be on at once; the same mode again replaces its spec);
  DELETE /_sim/faults (or {"mode": "none"}) turns all off. In-process: `sim.faults.set(SPEC)`, `sim.faults.clear()`.
- POST /_sim/restart {"add": [ITEM...], "remove": [name...], "down_s": 0.5} restarts WinCC: every session token
  is dropped, the listener closes (connections are refused, open ones closed) for down_s seconds, /_sim/ included,
  then the simulator serves again with the changed tag list (faults and stats are kept). It answers
  {"restarting": true, "down_s": ..., "tags": N} before going down; 409 while a restart is under way.
  In-process: `await sim.restart(add=[...], remove=[...], down_s=0.5)` (returns once down; `sim.restarting`).

Fault SPECs (data endpoints only; /_sim/ keeps working except during a restart):
- {"mode": "down"}: connections are aborted without an answer (a dead server, not an HTTP status)
- {"mode": "slow", "latency_ms": 1000}: every answer, login included, is that late
- {"mode": "error500"} / {"mode": "unauthorized"}: every request, login included, answers 500 / 401
- {"mode": "malformed"}: every answer is 200 with a body that is not JSON
- {"mode": "expire_sessions"}: every token issued so far becomes invalid (once; logging in again works)
- {"mode": "partial", "tags": [name...]}: those tags fail as items wherever an answer has per-item errors: dp
  ReadMultiple ("Error"), restservice reads and writes, batch and single (errorCode 99); a failed write is not
  applied. dp's single-tag GET and PUT have no item error and are unaffected.
- {"mode": "forbidden"}: every write is refused as for a user without the right: dp PUT /api/dp/<name> answers
  403, restservice items get errorCode 7 (no access right). Nothing is applied.
- {"mode": "write_errors", "tags": {"<tag name as the dialect names it>": WSPEC}}: writes of those tags fail, are
  not applied, other tags behave normally. dp: WSPEC {"status": 400|403|404|500, "error": "type mismatch: ..."}
  -> PUT /api/dp/<name> answers that status with {"error": text}. restservice: WSPEC {"errorCode": N,
  "errorDescription": "..."} -> that item of PUT /tagManagement/Values or PUT /tagManagement/Value/<name> gets
  that errorCode; WSPEC {"status": 500} -> the whole PUT (batch or single) answers that HTTP status. (A dp
  WSPEC without status answers 400 with its errorDescription; a restservice errorCode defaults to 99.)
- {"mode": "status", "status": 401|403|429|500|502|503|504, "retry_after": 2, "count": N}: data requests are answered
  with that status (and Retry-After) without reaching the endpoint; with count, only the next N (a burst)
- {"mode": "malformed_item", "tags": [name...]}: those tags' items in read answers get an unreadable quality and
  timestamp; the rest of the answer is intact
- {"mode": "reset"}: every data answer is cut off mid-body by a connection reset (a write is applied first)
  (these three: bridge.simulator.faults.FaultGate)
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute

from bridge.simulator import control, routes_dp, routes_restservice
from bridge.simulator.faults import FaultGate as WireFaults
from bridge.simulator.faults import Faults
from bridge.simulator.gate import DownFault, FaultGate
from bridge.simulator.plant import Plant
from bridge.simulator.state import Restart, SimState, Stats, change_tags
from bridge.simulator.wire import BadRequest, json_response

__all__ = ["Faults", "Restart", "Stats", "build_app", "change_tags"]


async def _bad_request(request: Request, exc: Exception) -> Response:
    return json_response({"error": str(exc)}, 400)


def build_app(
    plant: Plant,
    dialect: str,
    *,
    auth: str = "none",
    username: str = "opcua",
    password: str | None = None,
    token_ttl_s: float = 900,
    faults: Faults,
    stats: Stats,
    restart: Restart | None = None,
) -> Any:
    """The ASGI app of one simulated WinCC: the dialect's routes behind the fault gate, plus the control API."""
    sim = SimState(
        plant,
        dialect,
        faults,
        stats,
        auth=auth,
        username=username,
        password=password or "",
        token_ttl_s=token_ttl_s,
        restart=restart,
    )
    gated: list[BaseRoute] = []
    if dialect == "unified":  # GraphQL over HTTP and WebSocket: its module applies faults and auth itself
        from bridge.simulator.unified import unified_routes

        api, _ = unified_routes(
            plant, faults=faults, stats=stats, auth=auth, username=username, password=password, token_ttl_s=token_ttl_s
        )
    else:
        api = gated = [*(routes_dp.ROUTES if dialect == "dp" else routes_restservice.ROUTES)]
    app = Starlette(
        routes=[*control.ROUTES, *api],
        exception_handlers={BadRequest: _bad_request},
        middleware=[Middleware(FaultGate, sim=sim, routes=gated)],
    )
    app.state.sim = sim
    # wire faults (status bursts, one malformed item, a reset mid-body) act on the real answer: outside the gate
    return DownFault(WireFaults(app, faults), faults)
