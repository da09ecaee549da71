"""The simulator's state for one HTTP app: the plant, the fault switches, the counters, the sessions and the browse
listings. Route modules read it from `request.app.state.sim` (see `sim_of`); nothing lives in closures."""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from starlette.requests import Request

from bridge.simulator.faults import Faults
from bridge.simulator.plant import Plant, Tag
from bridge.simulator.wire import BadRequest
from bridge.wincc.models import DataType

__all__ = ["GEN_BLOCK", "Listings", "Restart", "SimState", "Stats", "change_tags", "continuation", "page", "sim_of"]

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
        return {
            "requests": dict(self.requests),
            "read_batches": list(self.read_batches),
            "writes": list(self.writes),
            "acknowledged": list(self.acknowledged),
            "listings_built": dict(self.listings_built),
        }

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
        if item.get(key) is not None and (isinstance(item[key], bool) or not isinstance(item[key], int | float)):
            raise ValueError(f"{key} of {item['name']!r} must be a number")
    if not isinstance(item.get("unit", ""), str | None):
        raise ValueError(f"unit of {item['name']!r} must be text")
    return Tag(
        item["name"],
        type_,
        item.get("value", 0.0),
        unit=item.get("unit"),
        low=item.get("min"),
        high=item.get("max"),
        writable=bool(item.get("writable")),
        archived=False,
        rs_alias=rs_name,
    )


def change_tags(plant: Plant, add: Any = (), remove: Any = ()) -> None:
    """Add and remove tags (control API and restart). Checks everything first: a bad item changes nothing."""
    if not isinstance(add, list | tuple) or not isinstance(remove, list | tuple):
        raise ValueError("add and remove must be lists")
    tags = [_tag_from_item(item) for item in add]
    if not all(isinstance(n, str) for n in remove):
        raise ValueError("remove must be a list of tag names")
    for tag in tags:
        plant.add_tag(tag)
    for name in remove:
        plant.remove_tag(name)


class Listings:
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
            cached: T = self._cache[kind, key]
            return cached
        except KeyError:
            self._stats.listings_built[kind] += 1
            value = self._cache[kind, key] = build()
            return value


def page(entries: Sequence[T], offset: int, limit: int) -> tuple[Sequence[T], str | None]:
    """One page of a listing and the continuation point of the next (an offset, opaque to clients)."""
    end = offset + limit
    return entries[offset:end], (str(end) if end < len(entries) else None)


def number(text: str) -> bool:
    return text.isascii() and text.isdigit()  # str.isdigit alone also takes digits int() refuses, such as "²"


def continuation(request: Request, key: str) -> int:
    raw = request.query_params.get(key) or "0"
    if not number(raw):
        raise BadRequest(f"unknown {key}")
    return int(raw)


def secret_equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


@dataclass
class SimState:
    """Everything one simulator app serves from. `auth`: none | basic | token (token: dp's login)."""

    plant: Plant
    dialect: str
    faults: Faults
    stats: Stats
    auth: str = "none"
    username: str = "opcua"
    password: str = ""
    token_ttl_s: float = 900
    restart: Restart | None = None
    tokens: dict[str, tuple[float, int]] = field(default_factory=dict)  # token -> (expiry, faults.session_epoch)
    listings: Listings = field(init=False)

    def __post_init__(self) -> None:
        self.listings = Listings(self.plant, self.stats)

    def authorized(self, header: str) -> bool:
        """Whether a request with this Authorization header (or "") may pass."""
        if self.auth == "none":
            return True
        if self.auth == "basic":
            if not header.startswith("Basic "):
                return False
            try:
                user, _, pw = base64.b64decode(header[6:], validate=True).decode().partition(":")
            except ValueError:
                return False
            return secret_equal(user, self.username) & secret_equal(pw, self.password)
        if not header.startswith("Bearer "):
            return False
        issued = self.tokens.get(header[7:])
        return issued is not None and issued[0] > time.monotonic() and issued[1] == self.faults.session_epoch

    def credentials_match(self, user: str, password: str) -> bool:
        return secret_equal(user, self.username) & secret_equal(password, self.password)

    def issue_token(self) -> str:
        """A new session token; expired ones and those of an earlier session epoch are dropped on the way."""
        now = time.monotonic()
        epoch = self.faults.session_epoch
        for old in [t for t, (expiry, e) in self.tokens.items() if expiry <= now or e != epoch]:
            del self.tokens[old]
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (now + self.token_ttl_s, epoch)
        return token


def sim_of(request: Request) -> SimState:
    state: SimState = request.app.state.sim
    return state


def write_value(content: dict[str, Any]) -> Any:
    """The value of a write request's body (both dialects send {"value": ...} for one tag)."""
    if "value" not in content:
        raise BadRequest("the body needs a value")
    return content["value"]
