"""Small tolerant parsers shared by both dialects: JSON, timestamps, qualities, numbers, chunking, and the two
caches that make a poll cheap when WinCC repeats itself (AnswerCache per tag, BatchMemo per batch)."""

from __future__ import annotations

import asyncio
import json as jsonlib
import re
import time
from collections.abc import Awaitable, Callable, ItemsView, Iterator, KeysView, Mapping, Sequence, ValuesView
from datetime import UTC, datetime
from itertools import compress
from operator import ne
from typing import Any, TypeVar

import orjson

from bridge.wincc.errors import WinCCError
from bridge.wincc.models import TagError, TagErrorKind, TagValue, decode_quality

__all__ = [
    "AnswerCache",
    "BatchAnswer",
    "BatchMemo",
    "cached_result",
    "chunks",
    "dumps",
    "error_code",
    "format_ts",
    "item_bytes",
    "item_error",
    "loads",
    "opt_float",
    "parse_batch",
    "parse_ts",
    "read_in_batches",
    "tag_value",
    "to_wire",
    "unchanged",
]

T = TypeVar("T")


def loads(content: bytes) -> Any:
    """Parse a JSON body. orjson first (poll answers are most of the bridge's CPU); the standard library for what
    orjson refuses but real servers send, such as NaN or integers wider than 64 bits."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        return jsonlib.loads(content)


def dumps(body: Any) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # e.g. an integer wider than 64 bits: the standard library writes it
        return jsonlib.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def parse_ts(raw: Any) -> datetime:
    """ISO 8601 (with `Z` or an offset) -> aware UTC datetime. A missing offset is taken as UTC."""
    if not isinstance(raw, str) or not raw:
        raise ValueError(f"timestamp {raw!r} is not ISO 8601 text")
    try:
        dt = datetime.fromisoformat(raw)  # the common form, "Z" included, on the hot path of every poll
    except ValueError:
        text = raw.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def format_ts(dt: datetime) -> str:
    """UTC with milliseconds and `Z`, the form WinCC documents (naive datetimes are taken as UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    dt = dt.astimezone(UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def to_wire(value: Any) -> Any:
    """A value as it travels in JSON: datetimes as ISO text, everything else as is."""
    if isinstance(value, datetime):
        return format_ts(value)
    return value


def opt_float(raw: Any) -> float | None:
    if raw is None or isinstance(raw, bool):
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


class AnswerCache:
    """The last good TagValue of each tag, with the raw JSON fields it was parsed from.

    Most items of a poll answer are what WinCC sent the cycle before. A dialect that finds an item's raw value,
    quality and timestamp unchanged returns the very TagValue it returned then, without parsing anything, and the
    sync engine skips that tag with one identity check. Entries of tags nobody read for `keep_s` (a tag WinCC
    dropped, or one no longer polled) are forgotten after at most twice that, so the cache never outgrows what is
    polled.

    The raw fields are kept apart from the TagValue, as a tuple of JSON scalars: CPython stops tracking such a tuple
    at the first collection that sees it, so the collector's passes over its older generations never walk it. Held
    with the TagValue in one tuple, it was one more object per changed tag in every pass: at 100,000 tags changing
    10 % a second those passes held the event loop 0.3-0.45 s (bench/README.md, the garbage collector at 10 %/s).
    """

    __slots__ = ("_keep_s", "_new", "_old", "_results", "_swap_at")

    def __init__(self, keep_s: float = 600.0) -> None:
        self._keep_s = keep_s
        self._new: dict[str, tuple[Any, Any, Any]] = {}  # tag -> (raw value, raw quality, raw timestamp)
        self._old: dict[str, tuple[Any, Any, Any]] = {}
        self._results: dict[str, TagValue] = {}  # tag -> the TagValue its raw fields were parsed into
        self._swap_at = time.monotonic() + keep_s

    def lookup(self, name: str, value: Any, quality: Any, timestamp: Any) -> TagValue | None:
        """The tag's last TagValue if these raw fields repeat its last good answer exactly, else None."""
        raw = self._new.get(name)
        if raw is None:
            raw = self._old.pop(name, None)
            if raw is None:
                return None
            self._new[name] = raw
        return self._results[name] if unchanged(raw, value, quality, timestamp) else None

    def put(self, name: str, value: Any, quality: Any, timestamp: Any, result: TagValue) -> None:
        self._new[name] = (value, quality, timestamp)
        self._results[name] = result

    def drop(self, name: str) -> None:
        self._new.pop(name, None)
        self._old.pop(name, None)
        self._results.pop(name, None)

    def age(self) -> None:
        """Call once per read: past `keep_s` the entries not used since become the old generation."""
        now = time.monotonic()
        if now >= self._swap_at:
            for name in self._old:  # unused for a whole generation: forgotten
                if name not in self._new:
                    self._results.pop(name, None)
            self._old, self._new = self._new, {}
            self._swap_at = now + self._keep_s

    def __len__(self) -> int:
        return len(self._results)


# between two objects of a JSON array, whatever whitespace a server puts there
_ITEM_SEPARATOR = re.compile(rb"\}\s*,\s*\{")


def item_bytes(content: bytes, expected: int | None = None) -> list[bytes] | None:
    """The objects of the JSON array in a batch answer as raw bytes, each without its outer braces; None when the
    answer does not look like one array of objects. A split is only a guess (a string value may contain "},{"):
    BatchMemo trusts it only where a full parse of the same answer found exactly that many items, in order.
    Compact JSON (no whitespace between items) is split without a regex when that gives `expected` items."""
    start, end = content.find(b"["), content.rfind(b"]")
    if start < 0 or end <= start:
        return None
    inner = content[start + 1 : end].strip()
    if not inner:
        return []
    if inner[:1] != b"{" or inner[-1:] != b"}":
        return None
    inner = inner[1:-1]
    if expected is not None:
        parts = inner.split(b"},{")
        if len(parts) == expected:
            return parts
    return _ITEM_SEPARATOR.split(inner)


ItemParser = Callable[[str, dict[str, Any]], "TagValue | TagError"]


_Entry = tuple[bytes, list[bytes], list["TagValue | TagError"]]  # the last answer, its items' bytes, their results


class BatchAnswer(Mapping[str, "TagValue | TagError"]):
    """The results of one batch read (tag -> result, in request order) as BatchMemo replayed them, with `news`: the
    positions whose item differs from the last answer to the same batch, and `base`: that last answer's results.
    Every other result is the very object of `base`, so the sync engine looks at `news` alone if `base` is what it
    applied last for this batch (bridge/opcua/sync/values.py says when it may).
    A mapping like any read's answer; the dict behind it is only made if somebody asks for it by name."""

    __slots__ = ("_by_name", "base", "names", "news", "results")

    def __init__(
        self,
        names: tuple[str, ...],
        results: Sequence[TagValue | TagError],
        news: Sequence[int],
        base: Sequence[TagValue | TagError] | None = None,
    ) -> None:
        self.names = names
        self.results = results
        self.news = news
        self.base = base
        self._by_name: dict[str, TagValue | TagError] | None = None

    def _dict(self) -> dict[str, TagValue | TagError]:
        if self._by_name is None:
            self._by_name = dict(zip(self.names, self.results, strict=True))
        return self._by_name

    def __getitem__(self, name: str) -> TagValue | TagError:
        return self._dict()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self._dict()

    def keys(self) -> KeysView[str]:
        return self._dict().keys()

    def items(self) -> ItemsView[str, TagValue | TagError]:
        return self._dict().items()

    def values(self) -> ValuesView[TagValue | TagError]:
        return self._dict().values()

    def __repr__(self) -> str:
        return f"BatchAnswer({len(self.names)} tags, {len(self.news)} new)"


class BatchMemo:
    """The last answer to each batch of tag names, item by item as the raw bytes WinCC sent, with the result each
    item was parsed into.

    A poll asks for the same batches cycle after cycle, and most items come back byte for byte as before. An answer
    equal to the last one as a whole (most batches when few tags change: at 0.1 % of tags a second, 6 in 10
    batches of 500) costs one compare of the body. Otherwise `replay` splits the new answer at its item boundaries,
    compares the bytes with the last answer's (a C-level compare) and parses only the items that differ; every
    other item is the very result of last time. Anything unexpected (another item count, an item that does not
    parse or names another tag) makes `replay` give up, and the dialect parses the whole answer as always, then
    `learn`s it for the next cycle. Batches not asked for in `keep_s` (the poll
    plan changed) are forgotten after at most twice that.

    The batches change whenever the tags in demand do (clients subscribing and leaving): each change makes new
    batches, and the old ones, a whole answer body each, used to stay for those 10-20 minutes (the soak's memory
    growth). So the memo also holds at most `budget()` items over all batches, forgetting the least recently
    used batches first; the dialect's budget is twice the tags it has answers for, room for every current batch.
    """

    __slots__ = ("_budget", "_items", "_keep_s", "_name_key", "_new", "_old", "_swap_at")

    def __init__(self, name_key: str, keep_s: float = 600.0, budget: Callable[[], int] | None = None) -> None:
        self._name_key = name_key  # the item field holding the tag name ("Name", "variableName")
        self._keep_s = keep_s
        self._budget = budget
        self._items = 0  # results held over both generations
        # least recently used first in each generation: _put moves a batch to the end
        self._new: dict[tuple[str, ...], _Entry] = {}
        self._old: dict[tuple[str, ...], _Entry] = {}
        self._swap_at = time.monotonic() + keep_s

    def _get(self, batch: tuple[str, ...]) -> _Entry | None:
        now = time.monotonic()
        if now >= self._swap_at:
            self._items -= sum(len(entry[2]) for entry in self._old.values())
            self._old, self._new = self._new, {}
            self._swap_at = now + self._keep_s
        entry = self._new.get(batch)
        if entry is None:
            entry = self._old.pop(batch, None)
            if entry is not None:
                self._items -= len(entry[2])
        return entry

    def _put(self, batch: tuple[str, ...], entry: _Entry) -> None:
        self._forget(batch)
        self._new[batch] = entry
        self._items += len(entry[2])
        if self._budget is None:
            return
        budget = self._budget()
        for generation in (self._old, self._new):
            while self._items > budget and generation:
                oldest = next(iter(generation))
                if oldest == batch:  # the one just stored: never forgotten at once
                    return
                self._items -= len(generation.pop(oldest)[2])

    def replay(self, batch: tuple[str, ...], content: bytes, parse_item: ItemParser) -> BatchAnswer | None:
        """The results for `content` from the last answer plus its changed items, or None (parse it all)."""
        entry = self._get(batch)
        if entry is None:
            return None
        old_content, old_parts, results = entry
        base = results
        if content == old_content:
            self._put(batch, entry)
            return BatchAnswer(batch, results, (), base)
        parts = item_bytes(content, len(old_parts))
        if parts is None or len(parts) != len(old_parts):
            return None
        # the positions whose bytes differ, compared in C (most items of most answers are byte for byte the same)
        changed = list(compress(range(len(parts)), map(ne, parts, old_parts)))
        if changed:
            results = list(results)
            key = self._name_key
            for i in changed:
                try:
                    raw = loads(b"{" + parts[i] + b"}")
                except ValueError:
                    return None
                name = batch[i]
                if type(raw) is not dict or raw.get(key) != name:
                    return None
                results[i] = parse_item(name, raw)
        self._put(batch, (content, parts, results))
        return BatchAnswer(batch, results, changed, base)

    def learn(
        self, batch: tuple[str, ...], content: bytes, items: list[Any], out: dict[str, TagValue | TagError]
    ) -> None:
        """Remember a fully parsed answer, if its items are exactly the batch, in order; else forget the batch's last
        answer (a later replay must never compare with an answer older than the last one)."""
        key = self._name_key
        if len(items) == len(batch) and all(
            type(raw) is dict and raw.get(key) == name for name, raw in zip(batch, items, strict=True)
        ):
            parts = item_bytes(content)
            if parts is not None and len(parts) == len(batch):
                self._put(batch, (content, parts, [out[name] for name in batch]))
                return
        self._forget(batch)

    def _forget(self, batch: tuple[str, ...]) -> None:
        held = self._new.pop(batch, None) or self._old.pop(batch, None)
        if held is not None:
            self._items -= len(held[2])

    def __len__(self) -> int:
        return len(self._new) + len(self._old)


def unchanged(raw: tuple[Any, Any, Any], value: Any, quality: Any, timestamp: Any) -> bool:
    """True if a raw item repeats the cached one exactly (same JSON types too: 1 and true and 1.0 all differ)."""
    return raw[2] == timestamp and raw[1] == quality and type(raw[0]) is type(value) and raw[0] == value


def error_code(raw: dict[str, Any]) -> int:
    """An item's `errorCode` / `errorcode` (missing, null or empty: 0). ValueError if it is not an integer."""
    code = raw.get("errorCode")
    if code is None:
        code = raw.get("errorcode")
    if code is None or code == "":
        return 0
    if isinstance(code, bool) or (isinstance(code, float) and not code.is_integer()):
        raise ValueError("errorCode is not an integer")
    return int(code)


def item_error(
    name: str, raw: dict[str, Any], text_keys: tuple[str, ...], not_found_code: int | None = None
) -> TagError | None:
    """The item rule of docs/wincc-rest-api.md: a non-zero `errorCode`/`errorcode` or a non-empty error text (under
    `text_keys`) makes this item, and only it, an error. None if the item is fine."""
    try:
        code = error_code(raw)
    except (ValueError, TypeError):
        return TagError(name, "unreadable errorCode", TagErrorKind.bad_answer)
    if code:
        desc = raw.get("errorDescription") or next((raw[k] for k in text_keys if raw.get(k)), "")
        kind = TagErrorKind.not_found if code == not_found_code else TagErrorKind.item_error
        return TagError(name, f"errorCode {code}: {desc}".rstrip(": "), kind)
    for key in text_keys:
        error = raw.get(key)
        if error:
            text = str(error)
            kind = TagErrorKind.not_found if "not found" in text.lower() else TagErrorKind.item_error
            return TagError(name, text, kind)
    return None


def tag_value(name: str, value: Any, quality: Any, timestamp: Any) -> TagValue | TagError:
    """A TagValue from an item's raw fields, or TagError(bad_answer) if its quality or timestamp is unreadable."""
    try:
        return TagValue(name=name, value=value, quality=decode_quality(quality), timestamp=parse_ts(timestamp))
    except (ValueError, TypeError) as exc:
        return TagError(name, f"bad item: {exc}", TagErrorKind.bad_answer)


def cached_result(
    cache: AnswerCache, name: str, value: Any, quality: Any, timestamp: Any, error: TagError | None
) -> TagValue | TagError:
    """One answer item's result, through the cache: the cached TagValue itself if the item repeats it.

    The dialects' item parser: for the items of a full parse (the first answer to a batch, or one BatchMemo could
    not replay), the items that changed in a replayed answer, and single reads."""
    if error is not None:
        cache.drop(name)
        return error
    cached = cache.lookup(name, value, quality, timestamp)
    if cached is not None:
        return cached
    result = tag_value(name, value, quality, timestamp)
    if type(result) is TagValue:
        cache.put(name, value, quality, timestamp, result)
    else:
        cache.drop(name)
    return result


def parse_batch(
    batch: list[str], items: list[Any], name_key: str, parse_item: ItemParser
) -> dict[str, TagValue | TagError]:
    """A batch answer parsed in full, each item found by its name (`name_key`). Answers come in request order, so an
    item without a usable name is that position's tag (TagError); a tag missing from the answer gets
    TagError(bad_answer); items naming tags not asked for are ignored. Off the hot path: BatchMemo replays
    answers that repeat."""
    out: dict[str, TagValue | TagError] = {}
    wanted = set(batch)
    for i, raw in enumerate(items):
        name = raw.get(name_key) if type(raw) is dict else None
        if type(name) is not str:
            if i < len(batch) and batch[i] not in out:
                out[batch[i]] = TagError(batch[i], f"answer item has no {name_key}", TagErrorKind.bad_answer)
            continue
        if name in wanted:
            out[name] = parse_item(name, raw)
    for n in batch:
        if n not in out:
            out[n] = TagError(n, "missing from the answer", TagErrorKind.bad_answer)
    return out


async def read_in_batches(
    names: Sequence[str],
    batch_size: int,
    read_batch: Callable[[list[str]], Awaitable[Mapping[str, TagValue | TagError]]],
    read_one: Callable[[str], Awaitable[TagValue | TagError]] | None = None,
) -> Mapping[str, TagValue | TagError]:
    """Read `names` (deduplicated) in batches, concurrently (the transport caps requests in flight).

    A failed batch gives its tags TagError(bad_answer) and leaves the others usable; if every batch failed, the
    first error is raised so the caller can mark everything as unreachable at once. Exactly one tag goes through
    `read_one` (the dialect's read-one endpoint), whose whole-request errors are raised the same way."""
    # The sync engine's batches never repeat a name: a set's size says so in half the time of rebuilding the list
    # (at 100,000 polled tags the rebuild alone was ~3 % of the bridge's CPU, bench/README.md).
    wanted = list(names) if len(set(names)) == len(names) else list(dict.fromkeys(names))
    if not wanted:
        return {}
    if read_one is not None and len(wanted) == 1:
        return {wanted[0]: await read_one(wanted[0])}
    if len(wanted) <= batch_size:  # the sync engine's reads: one batch, its answer as the dialect made it
        return await read_batch(wanted)
    batches = list(chunks(wanted, batch_size))
    results = await asyncio.gather(*(read_batch(b) for b in batches), return_exceptions=True)
    out: dict[str, TagValue | TagError] = {}
    failures: list[WinCCError] = []
    for batch, result in zip(batches, results, strict=True):
        if isinstance(result, WinCCError):
            failures.append(result)
            for n in batch:
                out[n] = TagError(n, f"batch failed: {result}", TagErrorKind.bad_answer)
        elif isinstance(result, BaseException):
            raise result
        else:
            out.update(result)
    if len(failures) == len(batches):
        raise failures[0]
    return out
