"""JSON in and out for the simulator's endpoints: fast answers, and a 400 {"error": ...} (as WinCC answers) for a
request body or query parameter that is not what the endpoint takes, instead of a crash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["BadRequest", "body", "int_param", "json_response", "names", "timestamp"]


class BadRequest(Exception):
    """The client sent something the endpoint does not take; the text is the 400 answer's "error"."""


def json_response(content: Any, status: int = 200) -> Response:
    try:
        raw = orjson.dumps(content)
    except TypeError:  # an integer wider than 64 bits (set through /_sim/tags): the standard library writes it
        raw = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(raw, status_code=status, media_type="application/json")


async def body(request: Request, kind: type[dict[str, Any]] | type[list[Any]] = dict) -> Any:
    """The request's JSON body, which must be an object (or, with kind=list, an array)."""
    raw = await request.body()
    if not raw.strip():
        raise BadRequest("the request needs a JSON body")
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:  # what orjson refuses but JSON allows in practice, e.g. integers wider than 64 bits
            parsed = json.loads(raw)
        except ValueError:
            raise BadRequest("the request body is not JSON") from None
    if not isinstance(parsed, kind):
        raise BadRequest(f"the request body must be a JSON {'object' if kind is dict else 'array'}")
    return parsed


def names(content: dict[str, Any], key: str) -> list[str]:
    value = content.get(key)
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise BadRequest(f"{key} must be a list of tag names")
    return value


def int_param(request: Request, key: str, default: int) -> int:
    raw = request.query_params.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{key} must be a whole number") from None
    if value < 0:
        raise BadRequest(f"{key} must not be negative")
    return value


def timestamp(text: Any, default: datetime, what: str = "time") -> datetime:
    if text is None or text == "":
        return default
    if not isinstance(text, str):
        raise BadRequest(f"{what} must be an ISO 8601 time")
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{what} is not an ISO 8601 time: {text[:40]!r}") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)
