"""The simulator's HTTP API: the WinCC REST API (docs/wincc-rest-api.md) in one dialect, plus the control API
under /_sim/.

Control API (no auth, JSON bodies; a bad body answers 400 {"error": ...}):
- GET /_sim/health, GET /_sim/stats (requests per endpoint, tags per read batch, applied writes, acknowledgements,
  browse listings built), POST /_sim/stats/reset
- POST /_sim/tags {"set": {name: value}, "quality": {name: q}, "add": [ITEM...], "remove": [name...]}
  ITEM = {"name": "<dp name>", "type": "double", "value": 0, "unit", "min", "max", "writable": false, "rs_name"}
  (`rs_name` gives a restservice name other than the derived one). Names in set/quality/remove may be either
  dialect's name.
- POST /_sim/alarms {"raise"|"clear": id}
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
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.simulator import wire
from bridge.simulator.faults import Faults
from bridge.simulator.plant import RS_TYPE, Plant, Tag, iso
from bridge.simulator.wire import BadRequest, json_response
from bridge.wincc.models import DataType

__all__ = ["Faults", "Restart", "Stats", "build_app", "change_tags"]

RS = "/WinCCRestService"
ARCHIVE = "ProcessArchive"
GEN_BLOCK = 1000  # generated tags per dp folder / restservice group

# (add, remove, down_s) -> None once the simulator is down; ValueError for a bad tag change, RuntimeError if busy
Restart = Callable[[list[Any], list[Any], float], Awaitable[None]]
T = TypeVar("T")


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    read_batches: deque[int] = field(default_factory=lambda: deque(maxlen=1000))
    writes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    acknowledged: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=1000))
    # browse listings built (not served): one per listing and tag-list version, however many pages are read
    listings_built: Counter[str] = field(default_factory=Counter)

    def as_json(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "read_batches": list(self.read_batches),
                "writes": list(self.writes), "acknowledged": list(self.acknowledged),
                "listings_built": dict(self.listings_built)}

    def reset(self) -> None:
        self.requests.clear()
        self.read_batches.clear()
        self.writes.clear()
        self.acknowledged.clear()
        self.listings_built.clear()


def _tag_from_item(item: Any) -> Tag:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise ValueError("an added tag is an object with a non-empty name")
    try:
        type_ = DataType(item.get("type", "double"))
    except ValueError:
        raise ValueError(f"unknown type {item.get('type')!r} for {item['name']!r}") from None
    rs_name = item.get("rs_name")
    if rs_name is not None and (not isinstance(rs_name, str) or not rs_name):
        raise ValueError(f"rs_name of {item['name']!r} must be a non-empty name")
    for key in ("min", "max"):
        if item.get(key) is not None and (isinstance(item[key], bool) or not isinstance(item[key], (int, float))):
            raise ValueError(f"{key} of {item['name']!r} must be a number")
    if not isinstance(item.get("unit", ""), (str, type(None))):
        raise ValueError(f"unit of {item['name']!r} must be text")
    return Tag(item["name"], type_, item.get("value", 0.0), unit=item.get("unit"), low=item.get("min"),
               high=item.get("max"), writable=bool(item.get("writable")), archived=False, rs_alias=rs_name)


def change_tags(plant: Plant, add: Any = (), remove: Any = ()) -> None:
    """Add and remove tags (control API and restart). Checks everything first: a bad item changes nothing."""
    if not isinstance(add, (list, tuple)) or not isinstance(remove, (list, tuple)):
        raise ValueError("add and remove must be lists")
    tags = [_tag_from_item(item) for item in add]
    if not all(isinstance(n, str) for n in remove):
        raise ValueError("remove must be a list of tag names")
    for tag in tags:
        plant.add_tag(tag)
    for name in remove:
        plant.remove_tag(name)


class _Listings:
    """Browse listings, built once per version of the tag list (plant.version) so a page costs O(page), not O(tags).
    Entries stay cheap (a Tag, a generated index or a folder name) and are turned into JSON per page."""

    _MAX_KEYS = 1024  # distinct browse paths remembered

    def __init__(self, plant: Plant, stats: Stats) -> None:
        self._plant, self._stats = plant, stats
        self._version = -1
        self._cache: dict[tuple[str, str], Any] = {}

    def get(self, kind: str, key: str, build: Callable[[], T]) -> T:
        if self._version != self._plant.version or len(self._cache) >= self._MAX_KEYS:
            self._cache.clear()
            self._version = self._plant.version
        try:
            return self._cache[kind, key]  # type: ignore[no-any-return]
        except KeyError:
            self._stats.listings_built[kind] += 1
            value = self._cache[kind, key] = build()
            return value


def _page(entries: Sequence[T], offset: int, limit: int) -> tuple[Sequence[T], str | None]:
    """One page of a listing and the continuation point of the next (an offset, opaque to clients)."""
    end = offset + limit
    return entries[offset:end], (str(end) if end < len(entries) else None)


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone also takes digits int() refuses, such as "²"


def _continuation(request: Request, key: str) -> int:
    raw = request.query_params.get(key) or "0"
    if not _number(raw):
        raise BadRequest(f"unknown {key}")
    return int(raw)


def _secret_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def build_app(plant: Plant, dialect: str, *, auth: str = "none", username: str = "opcua", password: str | None = None,
              token_ttl_s: float = 900, faults: Faults, stats: Stats, restart: Restart | None = None) -> Any:
    tokens: dict[str, tuple[float, int]] = {}  # token -> (monotonic expiry, faults.session_epoch at issue)
    listings = _Listings(plant, stats)
    expected_pw = password or ""

    # ---- auth and faults ----------------------------------------------------------------------------------
    def authorized(request: Request) -> bool:
        if auth == "none":
            return True
        header = request.headers.get("authorization", "")
        if auth == "basic":
            if not header.startswith("Basic "):
                return False
            try:
                user, _, pw = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except ValueError:
                return False
            return _secret_equal(user, username) & _secret_equal(pw, expected_pw)
        if not header.startswith("Bearer "):
            return False
        issued = tokens.get(header[7:])
        return issued is not None and issued[0] > time.monotonic() and issued[1] == faults.session_epoch

    async def gate(request: Request, key: str, *, login: bool = False) -> Response | None:
        """Count the request, apply faults and auth. A response here replaces the real answer."""
        stats.requests[key] += 1
        if faults.modes:
            if latency := faults.latency_s():
                await asyncio.sleep(latency)
            if faults.active("error500"):
                return json_response({"error": "internal server error (simulated)"}, 500)
            if faults.active("unauthorized"):
                return json_response({"error": "unauthorized"}, 401)
        if not login and not authorized(request):
            return json_response({"error": "unauthorized"}, 401)
        if faults.active("malformed"):
            return Response("<html>this is not json", media_type="application/json")
        return None

    def write_value(content: dict[str, Any]) -> Any:
        if "value" not in content:
            raise BadRequest("the body needs a value")
        return content["value"]

    # ---- dp -----------------------------------------------------------------------------------------------
    async def login(request: Request) -> Response:
        if (r := await gate(request, "POST /api/auth/login", login=True)) is not None:
            return r
        content = await wire.body(request)
        user, pw = content.get("username"), content.get("password")
        if not isinstance(user, str) or not isinstance(pw, str):
            raise BadRequest("username and password must be text")
        if not (_secret_equal(user, username) & _secret_equal(pw, expected_pw)):
            return json_response({"error": "bad credentials"}, 401)
        now = time.monotonic()
        for old in [t for t, (expiry, epoch) in tokens.items() if expiry <= now or epoch != faults.session_epoch]:
            del tokens[old]
        token = secrets.token_urlsafe(24)
        tokens[token] = (now + token_ttl_s, faults.session_epoch)
        return json_response({"token": token, "expiresIn": token_ttl_s})

    def dp_item(entry: Tag | int | str) -> dict[str, Any]:
        if isinstance(entry, str):
            return {"name": entry, "kind": "folder"}
        if isinstance(entry, int):
            return {"name": plant.gen_name(entry, "dp"), "kind": "dp", "type": plant.gen_type(entry).value,
                    "writable": False, "archived": entry % 10 == 0}
        item: dict[str, Any] = {"name": entry.name, "kind": "dp", "type": entry.type.value,
                                "description": entry.description, "writable": entry.writable,
                                "archived": entry.archived}
        for k, v in (("unit", entry.unit), ("min", entry.low), ("max", entry.high)):
            if v is not None:
                item[k] = v
        return item

    def dp_children(prefix: str) -> list[Tag | int | str]:
        folders: dict[str, None] = {}
        tags: list[Tag | int | str] = []
        for tag in plant.tags.values():
            if not tag.name.startswith(prefix):
                continue
            rest = tag.name[len(prefix):].split(".")
            if len(rest) == 1:
                tags.append(tag)
            else:
                folders[prefix + rest[0]] = None
        n = plant.generated
        if n and prefix in ("", "System1."):
            folders["System1" if prefix == "" else "System1.Gen"] = None
        elif n and prefix == "System1.Gen.":
            folders.update({f"System1.Gen.G{b:03d}": None for b in range((n + GEN_BLOCK - 1) // GEN_BLOCK)})
        elif n and prefix.startswith("System1.Gen.G") and prefix.endswith(".") and _number(prefix[13:-1]):
            block = int(prefix[13:-1])
            removed = plant.removed_generated
            tags += [i for i in range(block * GEN_BLOCK, min(n, (block + 1) * GEN_BLOCK)) if i not in removed]
        return [*folders, *tags]

    async def dp_browse(request: Request) -> Response:
        if (r := await gate(request, "GET /api/dp/browse")) is not None:
            return r
        path = request.query_params.get("path", "")
        limit = max(1, wire.int_param(request, "limit", 1000))
        children = listings.get("dp browse", path, lambda: dp_children(path))
        page, nxt = _page(children, _continuation(request, "continuation"), limit)
        return json_response({"path": path, "items": [dp_item(e) for e in page], "continuation": nxt})

    def dp_value(name: str) -> dict[str, Any] | None:
        found = plant.read(name)
        if found is None:
            return None
        value, quality, ts, _ = found
        return {"name": name, "value": value, "quality": quality, "timestamp": ts}

    # Path parameters come percent-decoded from the server (once, as the client encoded them): no unquote here.
    async def dp_read_one(request: Request) -> Response:
        if (r := await gate(request, "GET /api/dp/{name}")) is not None:
            return r
        content = dp_value(request.path_params["name"])
        return json_response(content) if content else json_response({"error": "not found"}, 404)

    async def dp_write_one(request: Request) -> Response:
        if (r := await gate(request, "PUT /api/dp/{name}")) is not None:
            return r
        name = request.path_params["name"]
        value = write_value(await wire.body(request))
        if (spec := faults.write_errors().get(name)) is not None:
            text = spec.get("error") or spec.get("errorDescription") or "simulated write error"
            return json_response({"error": text}, spec.get("status", 400))
        if faults.active("forbidden"):
            return json_response({"error": f"no right to write {name} (simulated)"}, 403)
        status, error = plant.check_write(name, value)
        if status != 200:
            return json_response({"error": error}, status)
        stats.writes.append({"name": name, "value": value})
        return json_response(dp_value(name))

    async def read_multiple(request: Request) -> Response:
        if (r := await gate(request, "POST /WinCC/REST/Tags/ReadMultiple")) is not None:
            return r
        names = wire.names(await wire.body(request), "TagNames")
        stats.read_batches.append(len(names))
        failing, read, now = faults.failing(), plant.read, time.time()
        out = []
        for name in names:
            found = None if name in failing else read(name, now)
            if found is None:
                out.append({"Name": name, "Value": None, "Quality": 0, "Timestamp": None,
                            "Error": "simulated failure" if name in failing else "not found"})
            else:
                out.append({"Name": name, "Value": found[0], "Quality": found[1], "Timestamp": found[2],
                            "Error": None})
        return json_response({"Tags": out})

    def alarm_json(a: Any) -> dict[str, Any]:
        return plant.alarm_entry(a, "came" if a.active else "went")

    async def alerts_active(request: Request) -> Response:
        if (r := await gate(request, "GET /api/alerts/active")) is not None:
            return r
        return json_response({"alerts": [alarm_json(a) for a in plant.active_alarms()]})

    async def alert_ack(request: Request) -> Response:
        if (r := await gate(request, "POST /api/alert/{id}/acknowledge")) is not None:
            return r
        alarm_id = request.path_params["id"]
        content = await wire.body(request)
        user, comment = content.get("user"), content.get("comment")
        if not isinstance(user, (str, type(None))) or not isinstance(comment, (str, type(None))):
            raise BadRequest("user and comment must be text")
        status = plant.acknowledge(alarm_id)
        if status == 404:
            return json_response({"error": "unknown alarm"}, 404)
        if status == 409:
            return json_response({"error": "already acknowledged"}, 409)
        stats.acknowledged.append({"id": alarm_id, "user": user, "comment": comment})
        return json_response({"id": alarm_id, "acknowledged": True})

    def history_entries(request: Request, start_key: str, end_key: str, limit_key: str) -> list[dict[str, Any]]:
        """Alarm log entries in the query's time range (both dialects name the parameters differently)."""
        q = request.query_params
        start = wire.timestamp(q.get(start_key), datetime(1970, 1, 1, tzinfo=UTC), start_key)
        end = wire.timestamp(q.get(end_key), datetime.now(UTC), end_key)
        limit = wire.int_param(request, limit_key, 1000)
        out = [e for e in plant.alarm_log if start <= wire.timestamp(e["timestamp"], start) <= end]
        return out[:limit]

    async def alerts_history(request: Request) -> Response:
        if (r := await gate(request, "GET /api/alerts/history")) is not None:
            return r
        return json_response({"alerts": history_entries(request, "start", "end", "limit")})

    async def dp_history(request: Request) -> Response:
        if (r := await gate(request, "GET /api/history/{name}")) is not None:
            return r
        name = request.path_params["name"]
        q = request.query_params
        start = wire.timestamp(q.get("start"), plant.epoch, "start")
        end = wire.timestamp(q.get("end"), datetime.now(UTC), "end")
        values = plant.archive(name, start, end, min(wire.int_param(request, "limit", 1000), 1000))
        if values is None:
            return json_response({"error": "not archived"}, 404)
        return json_response({"name": name, "values": [{"value": v, "quality": qc, "timestamp": iso(t)}
                                                       for t, v, qc in values]})

    # ---- restservice ----------------------------------------------------------------------------------------
    def rs_var(entry: Tag | int) -> dict[str, Any]:
        if isinstance(entry, int):
            return {"name": plant.gen_name(entry, "restservice"), "dataType": RS_TYPE[plant.gen_type(entry)],
                    "group": f"Gen{entry // GEN_BLOCK:03d}", "connection": "PLC1"}
        var: dict[str, Any] = {"name": entry.rs_name, "dataType": RS_TYPE[entry.type], "group": entry.rs_group,
                               "connection": "PLC1"}
        for k, v in (("unit", entry.unit), ("lowLimit", entry.low), ("highLimit", entry.high)):
            if v is not None:
                var[k] = v
        return var

    def rs_variables() -> list[Tag | int]:
        removed = plant.removed_generated
        return [*plant.tags.values(), *(i for i in range(plant.generated) if i not in removed)]

    def rs_groups_list() -> list[str]:
        groups = dict.fromkeys(t.rs_group for t in plant.tags.values())
        removed = plant.removed_generated
        for block in range((plant.generated + GEN_BLOCK - 1) // GEN_BLOCK):
            live = range(block * GEN_BLOCK, min(plant.generated, (block + 1) * GEN_BLOCK))
            if not removed or any(i not in removed for i in live):
                groups[f"Gen{block:03d}"] = None
        return list(groups)

    def rs_value(name: str, failing: frozenset[str], now: float | None = None) -> dict[str, Any]:
        if name in failing:
            return {"variableName": name, "value": None, "dataType": 0, "timestamp": None, "qualityCode": 0,
                    "errorCode": 99, "errorDescription": "simulated failure"}
        dp = plant.dp_name(name)
        found = None if dp is None else plant.read(dp, now)
        if found is None:
            return {"variableName": name, "value": None, "dataType": 0, "timestamp": None, "qualityCode": 0,
                    "errorCode": 1, "errorDescription": "unknown variable"}
        value, quality, ts, dtype = found
        return {"variableName": name, "value": value, "dataType": RS_TYPE[dtype], "timestamp": ts,
                "qualityCode": quality, "errorCode": 0, "errorDescription": ""}

    async def rs_connections(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Connections")) is not None:
            return r
        return json_response({"connections": [{"name": "PLC1"}]})

    async def rs_groups(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Groups")) is not None:
            return r
        groups = listings.get("restservice groups", "", rs_groups_list)
        return json_response({"groups": [{"name": g, "connection": "PLC1"} for g in groups]})

    async def rs_browse(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Variables")) is not None:
            return r
        limit = max(1, wire.int_param(request, "itemLimit", 1000))
        variables = listings.get("restservice variables", "", rs_variables)
        page, nxt = _page(variables, _continuation(request, "continuationPoint"), limit)
        return json_response({"variables": [rs_var(e) for e in page], "continuationPoint": nxt})

    async def rs_read_one(request: Request) -> Response:
        if (r := await gate(request, "GET /tagManagement/Value/{name}")) is not None:
            return r
        return json_response(rs_value(request.path_params["name"], faults.failing()))

    async def rs_read_many(request: Request) -> Response:
        if (r := await gate(request, "POST /tagManagement/Values")) is not None:
            return r
        names = wire.names(await wire.body(request), "variableNames")
        stats.read_batches.append(len(names))
        failing, now = faults.failing(), time.time()
        return json_response([rs_value(n, failing, now) for n in names])

    def rs_write(name: str, value: Any, failing: frozenset[str]) -> dict[str, Any]:
        def item(code: int, text: str) -> dict[str, Any]:
            return {"variableName": name, "errorCode": code, "errorDescription": text}

        if (spec := faults.write_errors().get(name)) is not None:
            return item(spec.get("errorCode", 99), spec.get("errorDescription") or spec.get("error")
                        or "simulated write error")
        if faults.active("forbidden"):
            return item(7, f"no access right to write {name} (simulated)")
        if name in failing:
            return item(99, "simulated failure")
        dp = plant.dp_name(name)
        if dp is None:
            return item(1, "unknown variable")
        status, error = plant.check_write(dp, value)
        code = 0 if status == 200 else 4 if status == 403 else 2 if error.startswith("type") else 3
        if code == 0:
            stats.writes.append({"name": name, "value": value})
        return item(code, error)

    def rs_write_status(names: list[str]) -> Response | None:
        """write_errors with an HTTP status fail the whole PUT."""
        errors = faults.write_errors()
        for name in names:
            spec = errors.get(name)
            if spec is not None and "status" in spec:
                text = spec.get("error") or spec.get("errorDescription") or "simulated write error"
                return json_response({"error": text}, spec["status"])
        return None

    async def rs_write_one(request: Request) -> Response:
        if (r := await gate(request, "PUT /tagManagement/Value/{name}")) is not None:
            return r
        name = request.path_params["name"]
        value = write_value(await wire.body(request))
        if (r := rs_write_status([name])) is not None:
            return r
        result = rs_write(name, value, faults.failing())
        return json_response({"errorcode": result["errorCode"], "errorDescription": result["errorDescription"]})

    async def rs_write_many(request: Request) -> Response:
        if (r := await gate(request, "PUT /tagManagement/Values")) is not None:
            return r
        items = await wire.body(request, list)
        if not all(isinstance(i, dict) and isinstance(i.get("variableName"), str) and "value" in i for i in items):
            raise BadRequest("every item needs a variableName and a value")
        if (r := rs_write_status([i["variableName"] for i in items])) is not None:
            return r
        failing = faults.failing()
        return json_response([rs_write(i["variableName"], i["value"], failing) for i in items])

    def rs_archive_list() -> list[dict[str, str]]:
        out = [{"name": f"{t.rs_name}_Arch", "variableName": t.rs_name} for t in plant.tags.values() if t.archived]
        out += [{"name": f"{plant.gen_name(i, 'restservice')}_Arch", "variableName": plant.gen_name(i, "restservice")}
                for i in range(0, plant.generated, 10) if i not in plant.removed_generated]
        return out

    async def rs_archives(request: Request) -> Response:
        if (r := await gate(request, "GET /tagLogging/Archives")) is not None:
            return r
        return json_response([{"name": ARCHIVE, "variableName": ""}])

    async def rs_archive_vars(request: Request) -> Response:
        if (r := await gate(request, "GET /tagLogging/Archive/{a}/Variables")) is not None:
            return r
        if request.path_params["a"] != ARCHIVE:
            return json_response({"error": "unknown archive"}, 404)
        return json_response(listings.get("restservice archive variables", "", rs_archive_list))

    async def rs_archive_values(request: Request) -> Response:
        if (r := await gate(request, "POST /tagLogging/Values")) is not None:
            return r
        archives = (await wire.body(request)).get("archives", [])
        if not isinstance(archives, list) or not all(
                isinstance(a, dict) and isinstance(a.get("variables", []), list)
                and all(isinstance(v, dict) for v in a.get("variables", [])) for a in archives):
            raise BadRequest("archives must be a list of {name, variables: [{name, timeFrom, timeTo, maxValues}]}")
        answer = []
        for archive in archives:
            variables = []
            for var in archive.get("variables", []):
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
                variables.append({"name": arch_name, "values": [
                    {"value": v, "timestamp": iso(t), "qualityCode": qc} for t, v, qc in (values or [])]})
            answer.append({"name": archive.get("name"), "variables": variables})
        return json_response({"archives": answer})

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
        limit = wire.int_param(request, "maxValues", 1000)
        return json_response({"messages": [rs_message(alarm_json(a)) for a in plant.active_alarms()][:limit]})

    async def rs_short_term(request: Request) -> Response:
        if (r := await gate(request, "GET /alarmLogging/ShortTermArchive")) is not None:
            return r
        entries = history_entries(request, "timeFrom", "timeTo", "maxValues")
        return json_response({"messages": [rs_message(e) for e in entries]})

    # ---- control --------------------------------------------------------------------------------------------
    async def health(request: Request) -> Response:
        return json_response({"ok": True, "dialect": dialect, "tags": plant.tag_count(), "pid": os.getpid()})

    async def get_stats(request: Request) -> Response:
        return json_response(stats.as_json())

    async def reset_stats(request: Request) -> Response:
        stats.reset()
        return json_response({"ok": True})

    async def set_faults(request: Request) -> Response:
        if request.method == "DELETE":
            faults.clear()
        else:
            try:
                faults.set(await wire.body(request))
            except ValueError as exc:
                raise BadRequest(str(exc)) from None
        return json_response({"active": list(faults.modes)})

    def control_tag(name: Any) -> Tag:
        tag = plant.tags.get(name) or plant.by_rs.get(name) if isinstance(name, str) else None
        if tag is None:
            raise BadRequest(f"no tag {name!r} to set (generated tags compute their values)")
        return tag

    async def control_tags(request: Request) -> Response:
        content = await wire.body(request)
        sets, qualities = content.get("set", {}), content.get("quality", {})
        if not isinstance(sets, dict) or not isinstance(qualities, dict):
            raise BadRequest("set and quality map tag names to values")
        if not all(type(q) is int and 0 <= q <= 255 for q in qualities.values()):
            raise BadRequest("a quality is a number 0..255")
        updates = [(control_tag(n), v, None) for n, v in sets.items()]
        updates += [(control_tag(n), None, q) for n, q in qualities.items()]
        try:
            change_tags(plant, content.get("add", []), content.get("remove", []))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        for tag, value, quality in updates:
            plant.set(tag.name, tag.value if quality is not None else value, quality)
        return json_response({"tags": len(plant.tags)})

    async def control_alarms(request: Request) -> Response:
        content = await wire.body(request)
        for key, active in (("raise", True), ("clear", False)):
            if key in content:
                alarm_id = str(content[key])
                if alarm_id not in plant.alarms:
                    raise BadRequest(f"no alarm {alarm_id!r}")
                plant.forced_alarms[alarm_id] = active
                plant.set_alarm(alarm_id, active)
        return json_response({"active": [a.id for a in plant.active_alarms()]})

    async def control_restart(request: Request) -> Response:
        if restart is None:
            return json_response({"error": "restart needs the Simulator that runs this app"}, 501)
        content = await wire.body(request)
        down_s = content.get("down_s", 0.5)
        if isinstance(down_s, bool) or not isinstance(down_s, (int, float)) or not 0 <= down_s <= 60:
            raise BadRequest("down_s must be a number of seconds (0..60)")
        try:
            await restart(content.get("add", []), content.get("remove", []), float(down_s))
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        except RuntimeError as exc:
            return json_response({"error": str(exc)}, 409)
        return json_response({"restarting": True, "down_s": down_s, "tags": plant.tag_count()})

    async def bad_request(request: Request, exc: Exception) -> Response:
        return json_response({"error": str(exc)}, 400)

    control = [
        Route("/_sim/health", health),
        Route("/_sim/stats", get_stats),
        Route("/_sim/stats/reset", reset_stats, methods=["POST"]),
        Route("/_sim/faults", set_faults, methods=["POST", "DELETE"]),
        Route("/_sim/tags", control_tags, methods=["POST"]),
        Route("/_sim/alarms", control_alarms, methods=["POST"]),
        Route("/_sim/restart", control_restart, methods=["POST"]),
    ]
    if dialect == "unified":
        from bridge.simulator.unified import unified_routes

        api, _ = unified_routes(plant, faults=faults, stats=stats, auth=auth, username=username, password=password,
                                token_ttl_s=token_ttl_s)
    elif dialect == "dp":
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
    app = Starlette(routes=control + api, exception_handlers={BadRequest: bad_request})
    return _DownFault(app, faults)


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
