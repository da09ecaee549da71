"""Dialect `unified`: WinCC Unified's GraphQL runtime API (see docs/wincc-rest-api.md, section Unified).

Queries and mutations go as `POST <wincc.url>` `{"query", "variables"}` with a Bearer token from the `login`
mutation. Unified answers an expired or missing session with HTTP 200, the field `null` and an error whose
`extensions.code` is UNAUTHENTICATED: the client logs in again once and repeats. The session is extended with
`extendSession` before it runs out, so a running bridge never meets that case in the first place.

Value changes can also be pushed over the WebSocket (`bridge.wincc.unified_push`); this module is the request side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Generator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bridge.config import AuthConfig, WinCCConfig
from bridge.wincc.dialect import write_failure
from bridge.wincc.errors import (
    WinCCBadAnswer,
    WinCCError,
    WinCCNotFound,
    WinCCRejected,
    WinCCUnauthorized,
    WinCCUnreachable,
)
from bridge.wincc.models import (
    Alarm,
    ArchiveValue,
    DataType,
    Folder,
    TagError,
    TagErrorKind,
    TagInfo,
    TagValue,
    WriteError,
    WriteResult,
)
from bridge.wincc.parse import format_ts, parse_ts, read_in_batches, to_wire
from bridge.wincc.selection import select_browse
from bridge.wincc.transport import SecretSink, Transport
from bridge.wincc.unified_push import OnValues, TagPush
from bridge.wincc.unified_wire import (
    ACKNOWLEDGE_ALARMS,
    ACTIVE_ALARMS,
    BROWSE,
    EXTEND_SESSION,
    LOGGED_ALARMS,
    LOGGED_TAG_VALUES,
    LOGIN,
    TAG_VALUES,
    WRITE_TAG_VALUES,
    alarm_from_unified,
    error_code,
    parse_tag_item,
    quality_byte,
    split_logging_tag,
)

__all__ = ["DATA_TYPES", "UnifiedClient", "tag_folder"]

log = logging.getLogger(__name__)

# Unified (TIA Portal) data type names -> the bridge's WinCC types. Unknown names are offered as double and the
# value's own JSON type decides what is served (as the restservice dialect does with unknown numbers).
DATA_TYPES: dict[str, DataType] = {
    "bool": DataType.bool,
    "sint": DataType.int8,
    "int": DataType.int16,
    "dint": DataType.int32,
    "lint": DataType.int64,
    "usint": DataType.uint8,
    "byte": DataType.uint8,
    "uint": DataType.uint16,
    "word": DataType.uint16,
    "udint": DataType.uint32,
    "dword": DataType.uint32,
    "ulint": DataType.uint64,
    "lword": DataType.uint64,
    "real": DataType.float,
    "lreal": DataType.double,
    "string": DataType.string,
    "wstring": DataType.string,
    "char": DataType.string,
    "wchar": DataType.string,
    "datetime": DataType.datetime,
    "date_and_time": DataType.datetime,
    "dtl": DataType.datetime,
    "ldt": DataType.datetime,
}

# Write error codes (contract): 2 unknown name, 201 type, 203 range, 204 read-only, 205 no access.
_WRITE_ERRORS: dict[int, WriteError] = {
    2: WriteError.not_found,
    201: WriteError.type_mismatch,
    203: WriteError.out_of_range,
    204: WriteError.not_writable,
    205: WriteError.forbidden,
}
_ACK_ALREADY = 305
_ACK_UNKNOWN = (2, 306)
# Extend the session this long before it runs out (at most a fifth of its life).
_EXTEND_MARGIN_S = 60.0
_UNAUTHENTICATED = "UNAUTHENTICATED"


def tag_folder(name: str) -> tuple[tuple[str, ...], str]:
    """(folder path, display name) of a Unified tag name: `System::A.B.C` -> (("System", "A", "B"), "C")."""
    system, sep, path = name.partition("::")
    if not sep:
        return (), name
    parts = path.split(".")
    return (system, *parts[:-1]), parts[-1]


def _name_filter(root: str) -> str:
    """The browse filter for `wincc.browse_root`: "" = every system, `System` = one system, `System::A.B` = a
    subtree. `**` matches across levels."""
    if not root:
        return "*::**"
    if "::" not in root:
        return root + "::**"
    return root + ("**" if root.endswith("::") else ".**")


class _Session(httpx.Auth):
    """The Bearer header of every request: the current Unified session token (none before the first login)."""

    def __init__(self) -> None:
        self.token: str | None = None
        self.expires: float = 0.0  # loop time
        self.generation = 0

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


class UnifiedClient:
    """WinCCClient for WinCC Unified (GraphQL over HTTP). Tags are named `<system>::<path>`."""

    dialect = "unified"

    def __init__(
        self,
        config: WinCCConfig,
        transport: Transport | None = None,
        *,
        batch_size: int = 500,
        on_secret: SecretSink | None = None,
    ) -> None:
        self._config = config
        self._auth: AuthConfig = config.auth
        self._session = _Session()
        self._on_secret = on_secret
        # The transport does no auth of its own: Unified's session is a GraphQL mutation, not an HTTP scheme.
        # The endpoint's path is sent as the request path: httpx would append a slash to a base URL's path.
        url = httpx.URL(config.url)
        self._path = url.path.rstrip("/") or "/"
        plain = config.model_copy(update={"auth": AuthConfig(), "url": str(url.copy_with(path="/", query=None))})
        self._t = transport or Transport(plain, on_secret=on_secret, auth=self._session)
        self._batch = batch_size
        self._login_lock = asyncio.Lock()
        self._keepalive: asyncio.Task[None] | None = None
        if self._auth.password is not None and on_secret is not None:
            on_secret(self._auth.password.get_secret_value())

    async def __aenter__(self) -> UnifiedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            await asyncio.gather(self._keepalive, return_exceptions=True)
            self._keepalive = None
        await self._t.aclose()

    @property
    def token(self) -> str | None:
        """The current session token (the WebSocket's connection_init carries it)."""
        return self._session.token

    def invalidate_session(self) -> None:
        """The server refused the token (e.g. the WebSocket closed with 4403): log in again on next use."""
        self._drop_session(self._session.generation)

    def open_push(self, on_values: OnValues, on_covered_changed: Callable[[], None]) -> TagPush:
        """The WebSocket side: value changes of the tags the caller wants pushed (see bridge.wincc.unified_push)."""
        return TagPush(self, self._config, on_values, on_covered_changed)

    async def ensure_session(self) -> str | None:
        """Log in if there is no session yet; the token (None with auth mode none)."""
        if self._auth.mode != "none" and self._session.token is None:
            await self._login(self._session.generation)
        return self._session.token

    # -- GraphQL --------------------------------------------------------------------------------------------

    async def call(
        self, query: str, variables: Mapping[str, Any], field: str, *, kind: str = "read", retry: bool = True
    ) -> Any:
        """`data.<field>` of one operation. Raises WinCCError for the whole request (HTTP, top-level errors)."""
        relogged = False
        while True:
            generation = self._session.generation
            if self._auth.mode != "none" and self._session.token is None:
                await self._login(generation)
                generation = self._session.generation
            body = await self._t.request_json(
                "POST",
                self._path,
                json={"query": query, "variables": dict(variables)},
                retry=retry,
                kind="write" if kind == "write" else "read",
            )
            if not isinstance(body, dict):
                raise self._t.bad_answer("POST", self._path, f"{field}: answer is not an object")
            errors = body.get("errors") or []
            data = body.get("data")
            value = data.get(field) if isinstance(data, dict) else None
            if errors and _unauthenticated(errors) and self._auth.mode != "none" and not relogged:
                relogged = True
                self._drop_session(generation)
                continue
            if errors and value is None:
                if _unauthenticated(errors):
                    raise WinCCUnauthorized(f"{field}: not logged in (UNAUTHENTICATED)", status=200)
                raise WinCCRejected(f"{field}: {_error_text(errors)}", status=200)
            if value is None:
                raise self._t.bad_answer("POST", self._path, f"{field}: answer has no data.{field}")
            return value

    def _drop_session(self, generation: int) -> None:
        if self._session.generation == generation:
            self._session.token = None

    async def _login(self, generation: int) -> None:
        async with self._login_lock:
            if self._session.generation != generation and self._session.token is not None:
                return  # another caller logged in meanwhile
            password = self._auth.password.get_secret_value() if self._auth.password else ""
            self._session.token = None
            answer = await self._t.request_json(
                "POST",
                self._path,
                json={"query": LOGIN, "variables": {"username": self._auth.username, "password": password}},
                retry=True,
            )
            self._take_session(answer, "login")
            log.info("logged in to WinCC Unified as %s", self._auth.username)
            if self._keepalive is None or self._keepalive.done():
                self._keepalive = asyncio.create_task(self._keep_session(), name="wincc-unified-session")

    def _take_session(self, answer: Any, field: str) -> None:
        data = answer.get("data") if isinstance(answer, dict) else None
        session = data.get(field) if isinstance(data, dict) else None
        if not isinstance(session, dict):
            raise WinCCUnauthorized(f"{field}: {_error_text((answer or {}).get('errors') or [])}", status=200)
        error = session.get("error")
        if isinstance(error, dict) and error_code(error.get("code")) not in (0, None):
            # 101 wrong credentials, 102 UMC error: the description, never the credentials
            raise WinCCUnauthorized(f"{field} refused: {error.get('description') or error.get('code')}", status=200)
        token = session.get("token")
        if not isinstance(token, str) or not token:
            raise WinCCBadAnswer(f"{field}: answer has no token", status=200)
        if self._on_secret is not None:
            self._on_secret(token)
        life = 900.0
        try:
            expires = parse_ts(session.get("expires"))
            life = max(1.0, (expires - datetime.now(UTC)).total_seconds())
        except ValueError:
            log.warning("%s: session has no readable expiry; extending every %.0f s", field, life / 2)
        self._session.token = token
        self._session.expires = asyncio.get_running_loop().time() + life
        self._session.generation += 1

    async def _keep_session(self) -> None:
        """Extend the session before it expires; on failure log in again (the next call would anyway)."""
        loop = asyncio.get_running_loop()
        while True:
            left = self._session.expires - loop.time()
            await asyncio.sleep(max(0.5, left - min(_EXTEND_MARGIN_S, left / 5)))
            if self._session.token is None:
                continue
            try:
                answer = await self._t.request_json(
                    "POST", self._path, json={"query": EXTEND_SESSION, "variables": {}}, retry=True
                )
                self._take_session(answer, "extendSession")
            except WinCCError as exc:
                log.warning("WinCC Unified session could not be extended (%s); logging in again", exc)
                self._drop_session(self._session.generation)
                try:
                    await self._login(self._session.generation)
                except WinCCError as again:
                    log.warning("WinCC Unified login failed: %s", again)
                    self._session.expires = loop.time() + 5.0

    # -- browse ---------------------------------------------------------------------------------------------

    def browse(self) -> AsyncGenerator[Folder | TagInfo, None]:
        return select_browse(self._config, self._browse_root)

    async def _browse_root(self, root: str) -> AsyncGenerator[Folder | TagInfo, None]:
        """One browse call per root; folders come from the names (system, then the dotted path)."""
        entries = await self.call(
            BROWSE,
            {"nameFilters": [_name_filter(root.strip())], "objectTypeFilters": ["SIMPLETAG", "LOGGINGTAG"]},
            "browse",
        )
        if not isinstance(entries, list):
            raise self._t.bad_answer("POST", self._path, "browse: answer is not a list")
        logging_tags: dict[str, str] = {}
        tags: list[dict[str, Any]] = []
        for raw in entries:
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
                log.warning("browse: skipping an entry without a name")
                continue
            kind = str(raw.get("objectType") or "").upper()
            if kind == "LOGGINGTAG":
                tag, _ = split_logging_tag(raw["name"])
                if tag:
                    logging_tags.setdefault(tag, raw["name"])
            elif kind in ("SIMPLETAG", "TAG"):
                tags.append(raw)
        seen_folders: set[tuple[str, ...]] = set()
        for raw in tags:
            info = self._tag_info(raw, logging_tags.get(raw["name"]))
            for depth in range(1, len(info.folder) + 1):
                path = info.folder[:depth]
                if path not in seen_folders:
                    seen_folders.add(path)
                    yield Folder(path)
            yield info

    def _tag_info(self, raw: dict[str, Any], logging_tag: str | None) -> TagInfo:
        name: str = raw["name"]
        folder, leaf = tag_folder(name)
        type_name = str(raw.get("dataType") or "").lower()
        data_type = DATA_TYPES.get(type_name)
        if data_type is None:
            log.warning("browse: tag %s has unknown dataType %r; offering it as double", name, raw.get("dataType"))
            data_type = DataType.double
        shown = raw.get("displayName")
        display = shown if isinstance(shown, str) and shown else leaf
        return TagInfo(
            name=name,
            data_type=data_type,
            folder=folder,
            display_name=leaf if display == name else display,
            writable=True,  # Unified's browse carries no access right: WinCC's answer to a write decides
            archived=logging_tag is not None,
            archive_tag=logging_tag,
        )

    # -- read -----------------------------------------------------------------------------------------------

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        return await read_in_batches(names, self._batch, self._read_chunk)

    async def _read_chunk(self, batch: list[str]) -> dict[str, TagValue | TagError]:
        items = await self.call(TAG_VALUES, {"names": batch}, "tagValues")
        if not isinstance(items, list):
            raise self._t.bad_answer("POST", self._path, "tagValues: answer is not a list")
        out: dict[str, TagValue | TagError] = {}
        for position, raw in enumerate(items):
            name = raw.get("name") if isinstance(raw, dict) else None
            if not isinstance(name, str) and position < len(batch):
                name = batch[position]
            if not isinstance(name, str) or name in out:
                continue
            out[name] = parse_tag_item(name, raw)
        for name in batch:
            if name not in out:
                out[name] = TagError(name, "missing from the answer", TagErrorKind.bad_answer)
        return out

    # -- write ----------------------------------------------------------------------------------------------

    async def write(self, items: Mapping[str, Any]) -> dict[str, WriteResult]:
        pairs = list(items.items())
        if not pairs:
            return {}
        variables = {"input": [{"name": n, "value": to_wire(v)} for n, v in pairs]}
        try:
            answer = await self.call(WRITE_TAG_VALUES, variables, "writeTagValues", kind="write", retry=False)
        except WinCCError as exc:
            # no usable answer maps as for every dialect; a request GraphQL refused as a whole is plain Bad
            failed = isinstance(exc, WinCCUnreachable | WinCCUnauthorized)
            kind = write_failure(exc) if failed else WriteError.other
            return {n: WriteResult(n, kind, str(exc)) for n, _ in pairs}
        results: dict[str, WriteResult] = {}
        listed = answer if isinstance(answer, list) else []
        for position, (name, value) in enumerate(pairs):
            raw = listed[position] if position < len(listed) else None
            if isinstance(raw, dict) and raw.get("name") not in (None, name):
                raw = next((r for r in listed if isinstance(r, dict) and r.get("name") == name), None)
            results[name] = _write_result(name, value, raw)
        return results

    # -- archive --------------------------------------------------------------------------------------------

    async def archive(
        self, tag: TagInfo | str, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncGenerator[list[ArchiveValue], None]:
        logging_tag = tag.archive_tag if isinstance(tag, TagInfo) else None
        if logging_tag is None:
            name = tag.name if isinstance(tag, TagInfo) else tag
            raise WinCCNotFound(f"loggedTagValues: {name} has no logging tag", status=None)
        cursor, dup = start, 0
        while True:
            limit = page_size + dup
            values = await self._logged_values(logging_tag, cursor, end, limit)
            fresh = values[dup:] if dup and values and values[0].timestamp == cursor else values
            fresh = [v for v in fresh if start <= v.timestamp <= end]
            if not fresh:
                return
            for i in range(0, len(fresh), page_size):
                yield fresh[i : i + page_size]
            if len(values) < limit:
                return
            last = fresh[-1].timestamp
            same = sum(1 for v in values if v.timestamp == last)
            dup = same if last != cursor else dup + same
            cursor = last

    async def _logged_values(self, logging_tag: str, start: datetime, end: datetime, limit: int) -> list[ArchiveValue]:
        variables = {
            "names": [logging_tag],
            "startTime": format_ts(start),
            "endTime": format_ts(end),
            "maxNumberOfValues": limit,
            "sortingMode": "TIME_ASC",
        }
        answer = await self.call(LOGGED_TAG_VALUES, variables, "loggedTagValues")
        if not isinstance(answer, list) or not answer or not isinstance(answer[0], dict):
            raise self._t.bad_answer("POST", self._path, "loggedTagValues: answer is not a list of logging tags")
        entry = answer[0]
        error = entry.get("error")
        if isinstance(error, dict) and error_code(error.get("code")) not in (0, None):
            raise WinCCNotFound(f"loggedTagValues {logging_tag}: {error.get('description') or error.get('code')}")
        out: list[ArchiveValue] = []
        for raw in entry.get("values") or []:
            try:
                v = raw["value"]
                out.append(ArchiveValue(v.get("value"), quality_byte(v.get("quality")), parse_ts(v.get("timestamp"))))
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                log.warning("loggedTagValues %s: skipping a value: %s", logging_tag, exc)
        return out

    # -- alarms ---------------------------------------------------------------------------------------------

    async def active_alarms(self) -> list[Alarm]:
        answer = await self.call(ACTIVE_ALARMS, {}, "activeAlarms")
        return _alarms(answer, "activeAlarms")

    async def alarm_history(self, start: datetime, end: datetime, limit: int = 1000) -> list[Alarm]:
        # loggedAlarms excludes its bounds; the other dialects include them: widen by a millisecond.
        variables = {
            "startTime": format_ts(start - timedelta(milliseconds=1)),
            "endTime": format_ts(end + timedelta(milliseconds=1)),
            "maxNumberOfResults": limit,
        }
        answer = await self.call(LOGGED_ALARMS, variables, "loggedAlarms")
        return sorted(_alarms(answer, "loggedAlarms"), key=lambda a: a.timestamp)

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        """`alarm_id` is `<alarm name>#<instanceID>` as active_alarms names it. Unified records the bridge's own
        login as the acknowledging user and keeps no comment: the bridge's audit keeps both."""
        name, _, instance = alarm_id.rpartition("#")
        try:
            instance_id = int(instance)
        except ValueError:
            raise WinCCNotFound(f"acknowledgeAlarms: {alarm_id!r} is not <name>#<instance>") from None
        answer = await self.call(
            ACKNOWLEDGE_ALARMS,
            {"input": [{"name": name, "instanceID": instance_id}]},
            "acknowledgeAlarms",
            kind="write",
            retry=False,
        )
        raw = answer[0] if isinstance(answer, list) and answer else None
        error = raw.get("error") if isinstance(raw, dict) else None
        code = error_code(error.get("code")) if isinstance(error, dict) else 0
        if code in (0, None):
            return
        text = error.get("description") or str(code) if isinstance(error, dict) else str(code)
        if code == _ACK_ALREADY:
            raise WinCCRejected(f"acknowledgeAlarms {alarm_id}: already acknowledged ({text})", status=409)
        if code in _ACK_UNKNOWN:
            raise WinCCNotFound(f"acknowledgeAlarms {alarm_id}: {text}", status=404)
        raise WinCCRejected(f"acknowledgeAlarms {alarm_id}: {text}", status=400)


def _write_result(name: str, value: Any, raw: Any) -> WriteResult:
    if not isinstance(raw, dict):
        return WriteResult(name, WriteError.unreachable, "writeTagValues: no result for this tag")
    error = raw.get("error")
    code = error_code(error.get("code")) if isinstance(error, dict) else 0
    if code in (0, None):
        return WriteResult(name, value=value)
    text = f"error {code}: {error.get('description') or ''}" if isinstance(error, dict) else f"error {code}"
    return WriteResult(name, _WRITE_ERRORS.get(code, WriteError.other), text)


def _alarms(answer: Any, field: str) -> list[Alarm]:
    if not isinstance(answer, list):
        raise WinCCBadAnswer(f"{field}: answer is not a list", status=200)
    out: list[Alarm] = []
    for raw in answer:
        try:
            alarm = alarm_from_unified(raw)
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("%s: skipping an alarm: %s", field, exc)
            continue
        if alarm is not None:
            out.append(alarm)
    return out


def _unauthenticated(errors: Any) -> bool:
    return (
        any(
            isinstance(e, dict)
            and isinstance(e.get("extensions"), dict)
            and str(e["extensions"].get("code", "")).upper() == _UNAUTHENTICATED
            for e in errors
        )
        if isinstance(errors, list)
        else False
    )


def _error_text(errors: Any) -> str:
    if isinstance(errors, list):
        texts = [str(e.get("message")) for e in errors if isinstance(e, dict) and e.get("message")]
        if texts:
            return "; ".join(texts)[:300]
    return "request failed"
