"""How WinCC's answers become tag values in the address space: converted to the node's type, quality mapped to a
StatusCode, written only when something changed (value, status or source timestamp), the last value kept with a
Bad status when a read fails. The sync engine (engine.py) decides when to read; this applies what it read.

Values are published straight into asyncua's node data rather than through `write_attribute_value`: asyncua
replaces the value with null whenever the StatusCode is Bad, and the design keeps the last value visible with
the Bad status. The datachange callbacks (subscriptions) are called exactly as asyncua calls them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from asyncua import Server, ua

from bridge.opcua._asyncua import datachange_callbacks, node_table, store_value
from bridge.opcua.model.status import quality_to_status, shared_status
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.model.types import VARIANT_TYPES, from_wincc, json_variant_type
from bridge.wincc.models import DataType, TagError, TagErrorKind, TagValue
from bridge.wincc.parse import BatchAnswer

__all__ = ["TagRecord", "TagValues"]

# the logger name these lines always had (operators' log filters know them by it)
log = logging.getLogger("bridge.opcua.sync.engine")

S = ua.StatusCodes
_ITEM_ERROR = {
    TagErrorKind.not_found: ua.StatusCode(S.BadConfigurationError),  # WinCC no longer knows the tag
    TagErrorKind.bad_answer: ua.StatusCode(S.BadCommunicationError),
    TagErrorKind.item_error: ua.StatusCode(S.Bad),
}
_CONVERSION_FAILED = ua.StatusCode(S.BadTypeMismatch)
_BASE_DATA_TYPE = ua.NodeId(ua.ObjectIds.BaseDataType)


@dataclass(slots=True)
class TagRecord:
    name: str
    node_id: ua.NodeId
    data_type: DataType
    variant_type: ua.VariantType
    value: Any = None  # last value shown (None: none yet)
    status: int = S.BadWaitingForInitialData
    source_ts: datetime | None = None


class TagValues:
    """The tags kept in step with WinCC (their last shown value, status and timestamp) and WinCC's last answer for
    each: an answer that is the very same object again changed nothing.

    Polls settle tags: a poll answer replayed by the REST client's BatchMemo says which of its items differ from the
    last answer to the same batch (`BatchAnswer.news`), and every other item is the very object of that answer
    (`BatchAnswer.base`). If `base` is the answer this batch's last poll applied here and every tag in it is
    settled, only the news is looked at (at 100,000 tags, 1 % changing a second: 1,000 looks instead of 100,000).
    A tag is unsettled (looked at in full, with its whole batch, on its next poll) while its last applied answer
    may be another one: after a read on demand or a push applied something else, a failure or `forget_answer`
    dropped it, it was added or retyped, or the poll plan (so the batches) changed. Answers to reads of an earlier
    plan, still out when it changed, settle nothing (the engine passes `poll=False` for them: `plan`); and answers
    to the same batch applied out of the order the memo saw them fail the `base` check."""

    def __init__(self, server: Server, directory: TagDirectory, on_failure: Literal["bad", "uncertain"]) -> None:
        self._nodes = node_table(server)  # see module docstring
        self._directory = directory
        self._on_failure = on_failure
        self.tags: dict[str, TagRecord] = {}
        # tag -> WinCC's last answer for it; an answer that is this very object again changed nothing
        self._last: dict[str, TagValue | TagError] = {}
        self._unsettled: set[str] = set()  # tags whose next poll answer is looked at in full (class docstring)
        self._applied: dict[tuple[str, ...], Sequence[TagValue | TagError]] = {}  # batch -> its last poll's results
        self.plan = 0  # bumped when the poll plan changes (unsettle_all)
        self._served_as_sent: set[str] = set()  # tags whose values did not fit their declared type (logged once)
        self.updated = 0  # values published (metric values_updated_total)

    def tags_changed(self, added: Sequence[str], removed: Sequence[str]) -> None:
        for name in removed:
            self.tags.pop(name, None)
            self._last.pop(name, None)
            self._unsettled.discard(name)
        # a re-browse may replace a tag's type in place: keep the record in step with the directory
        for name, tag in self.tags.items():
            info = self._directory.get(name)
            if info is not None and info.data_type is not tag.data_type:
                self.tags[name] = TagRecord(name, tag.node_id, info.data_type, VARIANT_TYPES[info.data_type])
                self._last.pop(name, None)  # the same answer converts to the new type: news
                self._unsettled.add(name)
        self.add(added)

    def add(self, names: Sequence[str]) -> None:
        """Records for tags new to the directory (their first answer is news)."""
        directory = self._directory
        node_ids = directory.node_ids(names)
        for name in names:
            info = directory.get(name)
            if info is not None:
                self.tags[name] = TagRecord(name, node_ids[name], info.data_type, VARIANT_TYPES[info.data_type])
                self._unsettled.add(name)

    def forget_answer(self, name: str) -> None:
        """The next answer for this tag is news, even if it is what WinCC sent last."""
        self._last.pop(name, None)
        self._unsettled.add(name)

    def unsettle_all(self) -> None:
        """The poll plan changed (so the batches did): look at every tag's next poll answer in full."""
        self._unsettled.update(self.tags)
        self._applied.clear()
        self.plan += 1

    async def apply_batch(
        self, results: Mapping[str, TagValue | TagError], now: datetime, *, poll: bool = False
    ) -> None:
        """Apply one answer. `poll`: the answer of a poll group's batch (it settles its tags; class docstring)."""
        last = self._last
        unsettled = self._unsettled
        batch = results if poll and type(results) is BatchAnswer else None
        if (
            batch is not None
            and batch.base is not None
            and self._applied.get(batch.names) is batch.base
            and (not unsettled or unsettled.isdisjoint(batch.names))
        ):
            names, answers = batch.names, batch.results
            news = [(names[i], answers[i]) for i in batch.news]
            changed = [(name, result) for name, result in news if last.get(name) is not result]
        else:
            # Most answers of a cycle are what WinCC sent last time, as the very same object (the REST client's
            # caches): one comprehension over identities finds the few that are not.
            changed = [(name, result) for name, result in results.items() if last.get(name) is not result]
            if poll and unsettled:
                unsettled.difference_update(results)
        if batch is not None:
            self._applied[batch.names] = batch.results
        tags = self.tags
        for name, result in changed:
            tag = tags.get(name)
            if tag is None:
                continue
            last[name] = result
            if not poll:
                unsettled.add(name)
            if type(result) is TagValue:
                await self._apply_one(tag, result, now)
            elif isinstance(result, TagError):
                code = _ITEM_ERROR[result.kind].value
                if code != tag.status:  # an error that persists is news once, not every cycle
                    await self.publish(tag, tag.value, code, tag.source_ts, now)

    async def _apply_one(self, tag: TagRecord, result: TagValue, now: datetime) -> None:
        status = quality_to_status(result.quality).value
        try:
            value = from_wincc(tag.data_type, result.value)
            variant_type = VARIANT_TYPES[tag.data_type]
        except (ValueError, TypeError):
            as_sent = json_variant_type(result.value)
            if as_sent is None:  # nothing a client could use (null, an object, a list)
                value, status, variant_type = tag.value, _CONVERSION_FAILED.value, tag.variant_type
            else:
                value, variant_type = result.value, as_sent
                self._serve_as_sent(tag, as_sent, result.value)
        if (
            value == tag.value
            and status == tag.status
            and result.timestamp == tag.source_ts
            and type(value) is type(tag.value)
        ):
            return
        tag.variant_type = variant_type
        await self.publish(tag, value, status, result.timestamp, now)

    def _serve_as_sent(self, tag: TagRecord, variant_type: ua.VariantType, sent: Any) -> None:
        """WinCC declared a type its values do not fit (docs/wincc-rest-api.md: trust the JSON value, log the tag
        once). The value goes out as WinCC sent it, so the node's DataType becomes BaseDataType, which admits any."""
        if tag.name in self._served_as_sent:
            return
        self._served_as_sent.add(tag.name)
        log.warning(
            "tag %s: WinCC declares it %s but sends %s values; serving them as %s (DataType BaseDataType)",
            tag.name,
            tag.data_type.value,
            type(sent).__name__,
            variant_type.name,
        )
        node = self._nodes.get(tag.node_id)
        attr = node.attributes.get(ua.AttributeIds.DataType) if node is not None else None
        if attr is not None:
            attr.value = ua.DataValue(ua.Variant(_BASE_DATA_TYPE, ua.VariantType.NodeId))

    async def mark_failed(self, names: Iterable[str]) -> None:
        failed = S.UncertainLastUsableValue if self._on_failure == "uncertain" else S.BadCommunicationError
        now = datetime.now(UTC)
        for name in names:
            self._last.pop(name, None)  # when WinCC answers again, even the same answer is news (Good again)
            self._unsettled.add(name)
            tag = self.tags.get(name)
            if tag is None or tag.status == failed:
                continue
            if tag.status == S.BadWaitingForInitialData and failed == S.UncertainLastUsableValue:
                continue  # nothing to be uncertain about yet
            await self.publish(tag, tag.value, failed, tag.source_ts, now)

    async def publish(self, tag: TagRecord, value: Any, status: int, source_ts: datetime | None, now: datetime) -> None:
        tag.value, tag.status, tag.source_ts = value, status, source_ts
        node = self._nodes.get(tag.node_id)
        if node is None:
            return
        variant = ua.Variant(value, tag.variant_type) if value is not None else ua.Variant(None, ua.VariantType.Null)
        dv = ua.DataValue(
            variant, StatusCode=shared_status(status), SourceTimestamp=source_ts or now, ServerTimestamp=now
        )
        attval = store_value(node, dv)
        self.updated += 1
        for handle, callback in datachange_callbacks(attval):
            try:
                await callback(handle, dv)
            except Exception:
                log.exception("datachange callback failed for %s", tag.name)
