"""Dialect `unified`: WinCC Unified's GraphQL runtime API (see docs/wincc-rest-api.md, section Unified).

The operations (browse, tagValues, writeTagValues, loggedTagValues, activeAlarms, acknowledgeAlarms,
loggedAlarms) on top of the logged-in session of `bridge.wincc.unified_session`. Value and alarm changes are
also pushed over the WebSocket (`bridge.wincc.unified_push`): `open_push` and `open_alarm_push`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from bridge.wincc.client import AlarmNews
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
from bridge.wincc.unified_push import AlarmPush, OnValues, TagPush
from bridge.wincc.unified_session import UnifiedSession
from bridge.wincc.unified_wire import (
    ACKNOWLEDGE_ALARMS,
    ACTIVE_ALARMS,
    BROWSE,
    LOGGED_ALARMS,
    LOGGED_TAG_VALUES,
    TAG_VALUES,
    WRITE_TAG_VALUES,
    alarm_from_unified,
    error_code,
    parse_tag_item,
    quality_byte,
    split_logging_tag,
)

__all__ = ["DATA_TYPES", "UnifiedClient", "browse_filters", "tag_folder"]

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


def tag_folder(name: str) -> tuple[tuple[str, ...], str]:
    """(folder path, display name) of a Unified tag name: `System::A.B.C` -> (("System", "A", "B"), "C")."""
    system, sep, path = name.partition("::")
    if not sep:
        return (), name
    parts = path.split(".")
    return (system, *parts[:-1]), parts[-1]


def browse_filters(root: str) -> list[str]:
    """The browse filters for `wincc.browse_root`: "" = every system, `System` = one system, `System::A.B` = a
    subtree. `**` matches across the dotted levels but not into subelements (`<tag>:<logging tag>`), which only a
    filter with a `:` part matches: hence the second filter, for the logging tags."""
    if not root:
        tags = "*::**"
    elif "::" not in root:
        tags = root + "::**"
    else:
        tags = root + ("**" if root.endswith("::") else ".**")
    return [tags, tags + ":*"]


class UnifiedClient(UnifiedSession):
    """WinCCClient for WinCC Unified (GraphQL over HTTP, pushes over WebSocket). Tags are named `<system>::<path>`."""

    dialect = "unified"

    async def __aenter__(self) -> UnifiedClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def open_push(self, on_values: OnValues, on_covered_changed: Callable[[], None]) -> TagPush:
        """The WebSocket side: value changes of the tags the caller wants pushed (see bridge.wincc.unified_push)."""
        return TagPush(self, self._config, on_values, on_covered_changed)

    def open_alarm_push(
        self, on_alarms: Callable[[AlarmNews], Awaitable[None]], on_live_changed: Callable[[], None]
    ) -> AlarmPush:
        """The `activeAlarms` subscription: alarm changes as they happen (see bridge.wincc.unified_push)."""
        return AlarmPush(self, self._config, on_alarms, on_live_changed)

    def browse(self) -> AsyncGenerator[Folder | TagInfo, None]:
        return select_browse(self._config, self._browse_root)

    async def _browse_root(self, root: str) -> AsyncGenerator[Folder | TagInfo, None]:
        """One browse call per root; folders come from the names (system, then the dotted path)."""
        entries = await self.call(
            BROWSE,
            {"nameFilters": browse_filters(root.strip()), "objectTypeFilters": ["SIMPLETAG", "LOGGINGTAG"]},
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

    async def read(self, names: Sequence[str]) -> Mapping[str, TagValue | TagError]:
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
