"""Fault injection state: which faults are on, checked once when set so a bad spec is refused, never half-applied.

One `Faults` object is shared by the HTTP app (POST /_sim/faults) and the in-process API (`sim.faults.set(...)`);
both go through `set`, so every mode works the same either way. Several modes can be on at once; setting a mode
again replaces its spec. The modes are listed in the docstring of `bridge.simulator.app`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["MODES", "FaultGate", "Faults"]

# mode -> what its spec may carry besides "mode"
MODES: dict[str, str] = {
    "down": "",
    "slow": "latency_ms",
    "unauthorized": "",
    "error500": "",
    "malformed": "",
    "partial": "tags",
    "forbidden": "",
    "write_errors": "tags",
    "ws_down": "",  # unified: WebSockets closed and refused, HTTP answers
    # on the wire (FaultGate): an HTTP error status, items that do not parse, an answer cut off mid-body
    "status": "status, retry_after, count",
    "malformed_item": "tags",
    "reset": "",
}
_STATUSES = (401, 403, 429, 500, 502, 503, 504)
_ONE_SHOT = "expire_sessions"


def _write_error(name: str, spec: Any) -> dict[str, Any]:
    """Check one write_errors entry: {"status": N, "error": text} or {"errorCode": N, "errorDescription": text}."""
    if not isinstance(spec, dict) or not ("status" in spec or "errorCode" in spec):
        raise ValueError(f"write_errors[{name!r}] needs a status or an errorCode")
    status, code = spec.get("status"), spec.get("errorCode")
    if status is not None and (type(status) is not int or not 400 <= status <= 599):
        raise ValueError(f"write_errors[{name!r}].status must be an HTTP error status (400..599)")
    if code is not None and (type(code) is not int or code == 0):
        raise ValueError(f"write_errors[{name!r}].errorCode must be a non-zero integer")
    for key in ("error", "errorDescription"):
        if not isinstance(spec.get(key, ""), str):
            raise ValueError(f"write_errors[{name!r}].{key} must be text")
    return dict(spec)


@dataclass
class Faults:
    modes: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Tokens issued before the last expiry are refused: `expire_sessions` and a restart bump it.
    session_epoch: int = 0

    def active(self, mode: str) -> dict[str, Any] | None:
        return self.modes.get(mode)

    def set(self, spec: dict[str, Any]) -> None:
        """Turn a fault on ({"mode": "none"} turns every fault off). ValueError for an unknown mode or a bad spec."""
        if not isinstance(spec, dict):
            raise ValueError("a fault is a JSON object with a mode")
        mode = spec.get("mode", "none")
        if mode == "none":
            self.modes.clear()
        elif mode == _ONE_SHOT:
            self.expire_sessions()
        elif mode not in MODES:
            raise ValueError(f"unknown fault mode {mode!r}; known: none, {_ONE_SHOT}, {', '.join(MODES)}")
        else:
            self.modes[mode] = self._checked(mode, spec)

    def clear(self) -> None:
        self.modes.clear()

    def expire_sessions(self) -> None:
        """Every token issued so far becomes invalid (once: logging in again works)."""
        self.session_epoch += 1

    # -- what the HTTP side asks ------------------------------------------------------------------------------

    def latency_s(self) -> float:
        spec = self.modes.get("slow")
        return 0.0 if spec is None else spec["latency_ms"] / 1000

    def failing(self) -> frozenset[str]:
        """Tags that fail inside batch answers (`partial`)."""
        spec = self.modes.get("partial")
        return frozenset() if spec is None else spec["tags"]

    def write_errors(self) -> dict[str, dict[str, Any]]:
        spec = self.modes.get("write_errors")
        return {} if spec is None else spec["tags"]

    def take_status(self) -> dict[str, Any] | None:
        """The `status` fault for one request, counting it down: a burst of `count` answers lifts itself."""
        spec = self.modes.get("status")
        if spec is None:
            return None
        if spec["count"] is not None:
            spec["count"] -= 1
            if spec["count"] <= 0:
                del self.modes["status"]
        return spec

    @staticmethod
    def _checked(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": mode}
        if mode == "slow":
            latency = spec.get("latency_ms", 1000)
            if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not 0 <= latency <= 600_000:
                raise ValueError("slow.latency_ms must be a number of milliseconds (0..600000)")
            out["latency_ms"] = latency
        elif mode == "partial":
            tags = spec.get("tags", [])
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise ValueError("partial.tags must be a list of tag names")
            out["tags"] = frozenset(tags)
        elif mode == "write_errors":
            tags = spec.get("tags")
            if not isinstance(tags, dict):
                raise ValueError(
                    "write_errors.tags must map tag names to {status, error} or {errorCode, errorDescription}"
                )
            out["tags"] = {name: _write_error(name, s) for name, s in tags.items()}
        elif mode == "malformed_item":
            tags = spec.get("tags")
            if not isinstance(tags, list) or not tags or not all(isinstance(t, str) for t in tags):
                raise ValueError("malformed_item.tags must be a non-empty list of tag names")
            out["tags"] = frozenset(tags)
        elif mode == "status":
            out.update(_status_spec(spec))
        return out


def _status_spec(spec: dict[str, Any]) -> dict[str, Any]:
    status, retry_after, count = spec.get("status", 503), spec.get("retry_after"), spec.get("count")
    if type(status) is not int or status not in _STATUSES:
        raise ValueError(f"status.status must be one of {', '.join(map(str, _STATUSES))}")
    if (
        retry_after is not None
        and not isinstance(retry_after, str)
        and (isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)) or retry_after < 0)
    ):
        raise ValueError("status.retry_after must be seconds (>= 0) or an HTTP date")
    if count is not None and (type(count) is not int or count < 1):
        raise ValueError("status.count must be a whole number >= 1 (absent: until lifted)")
    return {"status": status, "retry_after": None if retry_after is None else str(retry_after), "count": count}


# tag-name and value fields of an answer item, both dialects, batch and single reads
_NAME_KEYS = ("Name", "variableName", "name")
_BROKEN_FIELDS = {
    "Quality": "garbage",
    "quality": "garbage",
    "qualityCode": "garbage",
    "Timestamp": "not a time",
    "timestamp": "not a time",
}


def _break_items(content: Any, tags: frozenset[str]) -> Any:
    """The answer with the items of `tags` broken: quality and timestamp become text no reader can use."""
    if isinstance(content, list):
        return [_break_items(item, tags) for item in content]
    if not isinstance(content, dict):
        return content
    if any(content.get(k) in tags for k in _NAME_KEYS if isinstance(content.get(k), str)):
        return {k: _BROKEN_FIELDS.get(k, v) for k, v in content.items()}
    return {k: _break_items(v, tags) for k, v in content.items()}


class FaultGate:
    """ASGI wrapper for the faults that act on the wire, not on an endpoint's logic, for data requests (/_sim/ is
    never affected):
    - `status`: the request is answered with that HTTP status (and Retry-After if given) and never reaches the
      endpoint, so nothing is applied; with `count`, only that many requests (a burst), then the fault lifts.
    - `malformed_item`: the endpoint answers as usual, then the items naming those tags get a quality and a
      timestamp that are not readable (other items stay intact).
    - `reset`: the endpoint runs (a write IS applied), the status line, headers and half the body go out, then
      the connection is aborted: the client sees a connection reset mid-body."""

    def __init__(self, app: Any, faults: Faults) -> None:
        self.app, self.faults = app, faults

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        faults = self.faults
        if (
            scope["type"] != "http"
            or scope["path"].startswith("/_sim/")
            or not (faults.modes.keys() & {"status", "malformed_item", "reset"})
        ):
            await self.app(scope, receive, send)
            return
        if (spec := faults.take_status()) is not None:
            headers = [(b"content-type", b"application/json")]
            if spec["retry_after"] is not None:
                headers.append((b"retry-after", spec["retry_after"].encode()))
            body = orjson.dumps({"error": f"HTTP {spec['status']} (simulated)"})
            await send({"type": "http.response.start", "status": spec["status"], "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def keep(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        body = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        broken = faults.active("malformed_item")
        if broken is not None and start.get("status") == 200:
            try:
                body = orjson.dumps(_break_items(orjson.loads(body), broken["tags"]))
            except orjson.JSONDecodeError:
                pass
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        if faults.active("reset") and len(body) > 1:
            await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
            await asyncio.sleep(0)  # the half leaves first (a localhost write goes out at once)
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is not None:
                transport.abort()
                return
            body = body[len(body) // 2 :]
        await send({"type": "http.response.body", "body": body})
