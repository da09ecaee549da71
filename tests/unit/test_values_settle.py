"""Poll answers settle their tags (bridge/opcua/sync/values.py): for a poll answer replayed by BatchMemo (a
BatchAnswer) whose tags are all settled, only its `news` is looked at; anything that may leave a tag's last applied
answer different from the memo's (a change not from a poll, a failure, forget_answer, a tag added or retyped, a new
poll plan) unsettles it, and its next poll answer is looked at in full. The probe throughout is an answer that breaks
the memo's promise on purpose: a result that differs from the last one but is not in `news` is applied only when
the answer is looked at in full.

Then the engine (bridge/opcua/sync/engine.py) on the virtual clock of tests/fakes.py: a new poll plan unsettles
every tag; a silent cycle is marked failed once, not once per read timeout; a cycle that keeps answering is not
overdue; and, with the real dp client and its memo, WinCC coming back with byte-identical answers makes the tags
Good again; and an answer to a read of the previous plan, arriving after the plan changed, settles nothing (it did
before the engine passed the plan along: the first answer of the new plan's batch was replayed against the memo's
older entry for that batch, only its news was looked at, and an error WinCC reported again stayed hidden)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

import httpx
import orjson
import pytest
import pytest_asyncio
from asyncua import Server, ua

from bridge.config import SyncConfig, WinCCConfig
from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.services.session import BridgeInternalServer
from bridge.opcua.sync.engine import SyncEngine
from bridge.opcua.sync.values import TagValues
from bridge.wincc.dp import DpClient
from bridge.wincc.models import DataType, TagError, TagInfo, TagValue
from bridge.wincc.parse import BatchAnswer
from bridge.wincc.transport import Transport
from tests.fakes import FakeClock, FakeWinCC

# one asyncua server for the module (its init takes seconds), a fresh address space in new namespaces per test
pytestmark = pytest.mark.asyncio(loop_scope="module")

S = ua.StatusCodes
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 24, 10, 0, 1, tzinfo=UTC)

TAGS = [
    TagInfo("Plant.A.Level", DataType.double, ("Plant", "A"), "Level"),
    TagInfo("Plant.A.Count", DataType.int16, ("Plant", "A"), "Count"),
    TagInfo("Plant.A.Run", DataType.bool, ("Plant", "A"), "Run"),
]
LEVEL, COUNT, RUN = (t.name for t in TAGS)
NAMES = (LEVEL, COUNT, RUN)


def tv(name: str, value: Any, ts: datetime = T0) -> TagValue:
    return TagValue(name, value, 0xC0, ts)


def batch(
    results: Sequence[TagValue | TagError], news: Sequence[int] = (), base: BatchAnswer | None = None
) -> BatchAnswer:
    """An answer as BatchMemo replays it; `base`: the answer it was replayed against (the memo's last)."""
    return BatchAnswer(tuple(r.name for r in results), list(results), news, base.results if base else None)


def first_answer() -> list[TagValue | TagError]:
    return [tv(LEVEL, 1.5), tv(COUNT, 7), tv(RUN, True)]


_spaces = itertools.count()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def server() -> Server:
    srv = Server(iserver=BridgeInternalServer())
    await srv.init()
    return srv


@pytest_asyncio.fixture(loop_scope="module")
async def rig(server: Server) -> tuple[Server, TagDirectory]:
    uri = f"urn:settle:{next(_spaces)}"
    directory = TagDirectory(*[await server.register_namespace(uri + suffix) for suffix in ("", "/f", "/b")])
    await AddressSpace(server, directory).build(TAGS)
    return server, directory


async def settled(rig: tuple[Server, TagDirectory], on_failure: Any = "bad") -> tuple[TagValues, BatchAnswer]:
    """TagValues with every tag added and settled by a first poll answer (looked at in full: the tags are new)."""
    server, directory = rig
    values = TagValues(server, directory, on_failure)
    values.tags_changed(list(NAMES), [])
    first = batch(first_answer())
    await values.apply_batch(first, T0, poll=True)
    assert [values.tags[n].value for n in NAMES] == [1.5, 7, True]
    return values, first


def shown(values: TagValues, name: str) -> tuple[Any, int]:
    tag = values.tags[name]
    return tag.value, tag.status


def with_level(first: BatchAnswer, value: float, news: Sequence[int] = ()) -> BatchAnswer:
    """The last answer again, but Level reads `value` (a new result); `news` says which positions are new."""
    results = list(first.results)
    results[0] = tv(LEVEL, value, T1)
    return batch(results, news, base=first)


# -- apply_batch(poll=True): news only, for settled tags ------------------------------------------------------------


async def test_a_settled_poll_answer_is_looked_at_in_its_news_only(rig) -> None:
    values, first = await settled(rig)
    results = list(first.results)
    results[0] = tv(LEVEL, 2.5, T1)  # differs, but not in news: not looked at
    results[1] = tv(COUNT, 8, T1)  # in news: applied
    updated = values.updated
    await values.apply_batch(batch(results, news=(1,), base=first), T1, poll=True)
    assert shown(values, COUNT) == (8, S.Good)
    assert shown(values, LEVEL) == (1.5, S.Good)
    assert values.updated == updated + 1


async def test_the_same_answer_not_from_a_poll_is_looked_at_in_full(rig) -> None:
    values, first = await settled(rig)
    await values.apply_batch(with_level(first, 2.5), T1)  # a read on demand (poll=False)
    assert shown(values, LEVEL)[0] == 2.5


async def test_a_poll_answer_that_is_no_batch_answer_is_looked_at_in_full(rig) -> None:
    values, first = await settled(rig)
    await values.apply_batch(dict(with_level(first, 2.5)), T1, poll=True)  # e.g. a batch parsed in full
    assert shown(values, LEVEL)[0] == 2.5


# -- what unsettles a tag -------------------------------------------------------------------------------------------


async def test_a_change_not_from_a_poll_unsettles_the_tag(rig) -> None:
    """A read on demand showed another answer than the memo's last: the next poll answer, even with no news, is
    looked at in full and shows the poll's answer again; that look settles the tag again."""
    values, first = await settled(rig)
    await values.apply_batch({LEVEL: tv(LEVEL, 9.0, T1)}, T1)  # poll=False
    assert shown(values, LEVEL)[0] == 9.0
    await values.apply_batch(first, T1, poll=True)  # the memo's last answer again: no news
    assert shown(values, LEVEL)[0] == 1.5
    await values.apply_batch(with_level(first, 3.5), T1, poll=True)  # settled again: a non-news change is unseen
    assert shown(values, LEVEL)[0] == 1.5


@pytest.mark.parametrize(
    ("on_failure", "failed"), [("bad", S.BadCommunicationError), ("uncertain", S.UncertainLastUsableValue)]
)
async def test_a_byte_identical_answer_after_a_failure_makes_the_tag_good_again(
    rig, on_failure: str, failed: int
) -> None:
    """WinCC down, then back with the very answer it gave before: BatchMemo replays it with no news, and the
    failed tags must still come back Good (not stay Bad behind an empty `news`)."""
    server, directory = rig
    values, first = await settled(rig, on_failure)
    await values.mark_failed([LEVEL, COUNT])
    assert shown(values, LEVEL) == (1.5, failed) and shown(values, COUNT) == (7, failed)
    again = batch(first.results, base=first)  # the same results, no news
    await values.apply_batch(again, T1, poll=True)
    assert shown(values, LEVEL) == (1.5, S.Good) and shown(values, COUNT) == (7, S.Good)
    assert shown(values, RUN) == (True, S.Good)
    node = server.iserver.aspace.read_attribute_value(directory.node_id(LEVEL), ua.AttributeIds.Value)
    assert node.StatusCode.is_good() and node.Value.Value == 1.5  # what clients read
    await values.apply_batch(with_level(again, 3.5), T1, poll=True)  # that look settled them again
    assert shown(values, LEVEL)[0] == 1.5


async def test_forget_answer_unsettles_the_tag(rig) -> None:
    values, first = await settled(rig)
    values.forget_answer(LEVEL)
    await values.apply_batch(with_level(first, 2.5), T1, poll=True)
    assert shown(values, LEVEL)[0] == 2.5


async def test_a_tag_added_is_looked_at_in_full(rig) -> None:
    server, directory = rig
    values = TagValues(server, directory, "bad")
    values.tags_changed([LEVEL, COUNT], [])
    first = batch(first_answer())
    await values.apply_batch(first, T0, poll=True)  # Run is not a tag yet: skipped
    assert RUN not in values.tags
    values.tags_changed([RUN], [])
    await values.apply_batch(first, T1, poll=True)  # no news, but Run was added since
    assert shown(values, RUN) == (True, S.Good)


async def test_a_retyped_tag_is_looked_at_in_full(rig) -> None:
    """A re-browse turns Count into a double: the very same answer now converts to another value."""
    _, directory = rig
    values, first = await settled(rig)
    assert type(values.tags[COUNT].value) is int
    directory.add([TagInfo(COUNT, DataType.double, ("Plant", "A"), "Count")])  # this test's own directory
    values.tags_changed([], [])
    await values.apply_batch(first, T1, poll=True)  # the same objects, no news
    value, status = shown(values, COUNT)
    assert value == 7.0 and type(value) is float and status == S.Good


async def test_unsettle_all_unsettles_every_tag(rig) -> None:
    values, _ = await settled(rig)
    values.unsettle_all()
    results = [tv(LEVEL, 2.5, T1), tv(COUNT, 8, T1), tv(RUN, False, T1)]
    await values.apply_batch(batch(results), T1, poll=True)
    assert [shown(values, n)[0] for n in NAMES] == [2.5, 8, False]


async def test_one_unsettled_tag_gets_its_whole_batch_looked_at(rig) -> None:
    values, first = await settled(rig)
    values.forget_answer(RUN)
    await values.apply_batch(with_level(first, 2.5), T1, poll=True)  # Level is settled, but in Run's batch
    assert shown(values, LEVEL)[0] == 2.5


async def test_a_poll_answer_settles_only_the_tags_it_holds(rig) -> None:
    values, _ = await settled(rig)
    values.unsettle_all()
    level_count = batch([tv(LEVEL, 1.5), tv(COUNT, 7)])  # Run not in this batch
    await values.apply_batch(level_count, T1, poll=True)
    await values.apply_batch(batch([tv(RUN, False, T1)]), T1, poll=True)  # no news, but Run is unsettled
    assert shown(values, RUN)[0] is False
    await values.apply_batch(batch([tv(LEVEL, 4.5, T1), tv(COUNT, 7)], base=level_count), T1, poll=True)  # unseen
    assert shown(values, LEVEL)[0] == 1.5


async def test_answers_applied_out_of_the_memos_order_are_looked_at_in_full(rig) -> None:
    """Two answers to the same batch (a poll and a read on demand of the very same tags) may be applied in the other
    order than the memo saw them: the later one's news is then counted from an answer that was never applied."""
    values, first = await settled(rig)
    second = with_level(first, 2.5, news=(0,))  # replayed against first: Level changed
    third = batch(second.results, base=second)  # replayed against second: nothing new
    await values.apply_batch(third, T1, poll=True)  # applied before second: its base is not what was applied
    assert shown(values, LEVEL)[0] == 2.5
    await values.apply_batch(batch([tv(LEVEL, 9.5, T1), *third.results[1:]], base=third), T1, poll=True)
    assert shown(values, LEVEL)[0] == 2.5  # third was applied: the next answer is settled on it again


async def test_an_answer_not_from_a_poll_does_not_settle(rig) -> None:
    values, first = await settled(rig)
    values.unsettle_all()
    await values.apply_batch(dict(first), T1)  # poll=False, the very last answers: nothing changes, nothing settles
    await values.apply_batch(with_level(first, 2.5), T1, poll=True)
    assert shown(values, LEVEL)[0] == 2.5


# -- the engine ---------------------------------------------------------------------------------------------------

BASE = "http://wincc.test:8700"
TS = "2026-11-24T10:15:30.250Z"


def sync_config(**kw: Any) -> SyncConfig:
    """Every tag in the 100 ms idle group (nobody monitors them), one batch of three unless `batch_size` says."""
    base: dict[str, Any] = {"interval_ms": 50, "poll_groups_ms": [50], "idle_interval_ms": 100, "max_backoff_s": 0.2}
    return SyncConfig.model_validate(base | kw)


def node(rig: tuple[Server, TagDirectory], name: str) -> ua.DataValue:
    server, directory = rig
    return server.iserver.aspace.read_attribute_value(directory.node_id(name), ua.AttributeIds.Value)


def all_status(rig: tuple[Server, TagDirectory], status: int, names: Iterable[str] = NAMES) -> bool:
    return all(node(rig, n).StatusCode.value == status for n in names)


class NoNewsWinCC(FakeWinCC):
    """Answers every read as a BatchAnswer claiming nothing changed since the last answer: BatchMemo's promise broken
    on purpose, so the engine shows a change only where it looks at an answer in full."""

    def __init__(self, tags: Sequence[TagInfo]) -> None:
        super().__init__(tags)
        self.last: dict[tuple[str, ...], list[TagValue | TagError]] = {}  # batch -> its last answer (the memo's)

    async def read(self, names: Sequence[str]) -> BatchAnswer:  # type: ignore[override]
        out = await super().read(names)
        batch = tuple(out)
        base = self.last.get(batch)
        results = self.last[batch] = list(out.values())
        return BatchAnswer(batch, results, (), base)


async def test_a_new_poll_plan_makes_the_engine_look_at_every_answer_in_full(rig) -> None:
    wincc = NoNewsWinCC(TAGS)
    wincc.set(LEVEL, 1.5)
    clock = FakeClock()
    engine = SyncEngine(rig[0], rig[1], wincc, sync_config(), clock=clock)
    await engine.start()
    try:
        await clock.run_until(lambda: node(rig, LEVEL).Value.Value == 1.5)  # new tags: looked at in full
        wincc.set(LEVEL, 2.5)
        reads = wincc.reads
        await clock.run_until(lambda: wincc.reads >= reads + 5)
        assert node(rig, LEVEL).Value.Value == 1.5  # settled: only the (empty) news is looked at
        engine.tags_changed([], [])  # a replan that keeps every group as it was: nothing to look at again
        reads = wincc.reads
        await clock.run_until(lambda: wincc.reads >= reads + 5)
        assert node(rig, LEVEL).Value.Value == 1.5
        engine.note_read([RUN])  # Run joins the 50 ms group: Level's batch is another one now
        await clock.run_until(lambda: node(rig, LEVEL).Value.Value == 2.5, within_s=1, what="Level looked at")
    finally:
        await engine.stop()


class GatedWinCC(FakeWinCC):
    """A WinCC that takes a read and answers it only once the gate of each of its tags is open."""

    def __init__(self, tags: Sequence[TagInfo]) -> None:
        super().__init__(tags)
        self.gates = {t.name: asyncio.Event() for t in tags}
        self.open(*self.gates)
        self.waiting = 0  # reads taken and not answered

    def open(self, *names: str) -> None:
        for name in names:
            self.gates[name].set()

    def close(self) -> None:
        for gate in self.gates.values():
            gate.clear()

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        self.waiting += 1
        try:
            for name in names:
                await self.gates[name].wait()
        finally:
            self.waiting -= 1
        return await super().read(names)


async def test_a_silent_cycle_is_marked_failed_once(rig, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three reads (one tag each) that WinCC takes and does not answer: their tags are marked once when the read
    timeout has passed, not again at every further timeout, nor after a late answer to one of them; the next
    cycle that goes silent is marked again."""
    wincc = GatedWinCC(TAGS)
    wincc.set(LEVEL, 2.5)
    clock = FakeClock()
    engine = SyncEngine(rig[0], rig[1], wincc, sync_config(batch_size=1), clock=clock, read_timeout_s=0.3)
    marked: list[list[str]] = []
    # engine._values is private: no public hook says how often the engine marked a tag (marking a tag already Bad
    # publishes nothing, so the address space cannot tell)
    mark_failed = engine._values.mark_failed

    async def spy(names: Iterable[str]) -> None:
        names = list(names)
        marked.append(names)
        await mark_failed(names)

    monkeypatch.setattr(engine._values, "mark_failed", spy)
    await engine.start()
    try:
        await clock.run_until(lambda: node(rig, LEVEL).Value.Value == 2.5 and all_status(rig, S.Good))
        wincc.close()
        await clock.run_until(lambda: wincc.waiting == 3, what="a cycle whose three reads wait")
        await clock.run_until(lambda: all_status(rig, S.BadCommunicationError), within_s=1, what="marked")
        assert marked == [[LEVEL], [COUNT], [RUN]]
        assert engine.metrics()["overdue_reads_total"] == 3
        await clock.advance(2.0)  # more than six read timeouts of further silence
        assert marked == [[LEVEL], [COUNT], [RUN]] and engine.metrics()["overdue_reads_total"] == 3
        wincc.open(LEVEL)  # one late answer: applied, and it starts no second watch
        await clock.run_until(lambda: node(rig, LEVEL).StatusCode.is_good(), within_s=1, what="Level's late answer")
        await clock.advance(2.0)
        assert len(marked) == 3 and engine.metrics()["overdue_reads_total"] == 3
        assert all_status(rig, S.BadCommunicationError, (COUNT, RUN))
        wincc.open(COUNT, RUN)
        await clock.run_until(lambda: all_status(rig, S.Good), within_s=1, what="all answered")
        wincc.close()  # the next cycle goes silent: marked again, once
        await clock.run_until(lambda: engine.metrics()["overdue_reads_total"] == 6, within_s=1, what="next cycle")
        await clock.advance(2.0)
        assert engine.metrics()["overdue_reads_total"] == 6 and len(marked) == 6
    finally:
        wincc.open(*NAMES)
        await engine.stop()


class SlowWinCC(FakeWinCC):
    """Answers the read of the i-th tag (one tag per read) `gap_s * (i + 1)` after it was asked: a cycle whose
    reads come back one after another."""

    def __init__(self, tags: Sequence[TagInfo], clock: FakeClock, gap_s: float) -> None:
        super().__init__(tags)
        self.clock = clock
        self.gap_s = gap_s

    async def read(self, names: Sequence[str]) -> dict[str, TagValue | TagError]:
        await self.clock.sleep(self.gap_s * (NAMES.index(names[0]) + 1))
        return await super().read(names)


@pytest.mark.parametrize(("gap_s", "overdue"), [(0.2, False), (0.4, True)])
async def test_a_cycle_that_keeps_answering_is_not_overdue(rig, gap_s: float, overdue: bool) -> None:
    """Read timeout 0.3 s: answers 0.2 s apart make a 0.6 s cycle that is never silent for 0.3 s (not overdue);
    answers 0.4 s apart leave it silent for 0.3 s from the start (overdue)."""
    clock = FakeClock()
    wincc = SlowWinCC(TAGS, clock, gap_s)
    engine = SyncEngine(rig[0], rig[1], wincc, sync_config(batch_size=1), clock=clock, read_timeout_s=0.3)
    await engine.start()
    try:
        await clock.run_until(lambda: engine.metrics()["poll_cycles_total"] >= 3, within_s=10)
        assert (engine.metrics()["overdue_reads_total"] > 0) is overdue
        if not overdue:
            assert engine.metrics()["overdue_reads_total"] == 0 and all_status(rig, S.Good)
    finally:
        await engine.stop()


# -- the engine with the real dp client: its BatchMemo replays byte-identical answers -----------------------------


class DpWinCC:
    """WinCC's dp reads in memory behind the real DpClient (an httpx.MockTransport under its Transport): batch reads
    and reads of one tag, each answer made from `values` and `errors` when the request arrives, byte for byte the
    same while they do not change. `down` refuses connections; a request for a tag in `held` waits until the tag is
    released (WinCC took the request and is silent); `asked` lists every request's tags in order of arrival."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values
        self.errors: dict[str, str] = {}
        self.down = False
        self.held: set[str] = set()
        self.waiting: list[tuple[str, ...]] = []
        self.asked: list[tuple[str, ...]] = []
        self._released = asyncio.Event()

    def release(self, *names: str) -> None:
        self.held.difference_update(names)
        self._released.set()

    def _item(self, name: str, single: bool) -> dict[str, Any]:
        keys = (
            ("name", "value", "quality", "timestamp", "error")
            if single
            else ("Name", "Value", "Quality", "Timestamp", "Error")
        )
        error = self.errors.get(name)
        fields = (name, None, None, None, error) if error else (name, self.values[name], 192, TS, None)
        return dict(zip(keys, fields, strict=True))

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if request.method == "GET":  # the read of one tag
            names: tuple[str, ...] = (unquote(request.url.path.rsplit("/", 1)[1]),)
            body = orjson.dumps(self._item(names[0], single=True))
        else:
            names = tuple(orjson.loads(request.content)["TagNames"])
            body = orjson.dumps({"Tags": [self._item(n, single=False) for n in names]})
        self.asked.append(names)
        if self.held.intersection(names):
            self.waiting.append(names)
            try:
                while self.held.intersection(names):
                    self._released.clear()
                    await self._released.wait()
            finally:
                self.waiting.remove(names)
        return httpx.Response(200, content=body)

    def client(self) -> RecordingDpClient:
        config = WinCCConfig.model_validate({"url": BASE, "retry": {"attempts": 1, "backoff_s": 0}})
        return RecordingDpClient(config, Transport(config, engine=httpx.MockTransport(self.handle)))


class RecordingDpClient(DpClient):
    """The dp client, keeping every answer it hands the engine."""

    def __init__(self, config: WinCCConfig, transport: Transport) -> None:
        super().__init__(config, transport)
        self.answers: list[Any] = []

    async def read(self, names: Sequence[str]) -> Any:
        answer = await super().read(names)
        self.answers.append(answer)
        return answer


def replayed_unchanged(answer: Any, names: Sequence[str] | None = None) -> bool:
    return type(answer) is BatchAnswer and len(answer.news) == 0 and (names is None or answer.names == tuple(names))


async def test_wincc_back_with_the_same_answer_makes_the_tags_good_again(rig) -> None:
    wincc = DpWinCC({LEVEL: 2.5, COUNT: 7, RUN: True})
    client = wincc.client()
    clock = FakeClock()
    engine = SyncEngine(rig[0], rig[1], client, sync_config(), clock=clock)
    await engine.start()
    try:
        await clock.run_until(lambda: node(rig, LEVEL).Value.Value == 2.5 and all_status(rig, S.Good))
        await clock.run_until(lambda: any(map(replayed_unchanged, client.answers)), what="the memo replaying")
        wincc.down = True
        await clock.run_until(lambda: all_status(rig, S.BadCommunicationError), what="marked while down")
        answered = len(client.answers)
        wincc.down = False
        await clock.run_until(lambda: all_status(rig, S.Good), within_s=5, what="Good again")
        assert replayed_unchanged(client.answers[answered])  # the answer that did it: the memo's, with no news
        assert [node(rig, n).Value.Value for n in NAMES] == [2.5, 7, True]
    finally:
        await engine.stop()
        await client.aclose()


async def test_a_late_answer_after_the_overdue_mark_makes_the_tags_good_again(rig) -> None:
    wincc = DpWinCC({LEVEL: 2.5, COUNT: 7, RUN: True})
    client = wincc.client()
    clock = FakeClock()
    engine = SyncEngine(rig[0], rig[1], client, sync_config(), clock=clock, read_timeout_s=0.3)
    await engine.start()
    try:
        await clock.run_until(lambda: all_status(rig, S.Good) and any(map(replayed_unchanged, client.answers)))
        wincc.held = set(NAMES)
        await clock.run_until(lambda: all_status(rig, S.BadCommunicationError), within_s=1, what="overdue")
        assert wincc.waiting == [NAMES]  # WinCC has not answered: the overdue rule marked them, not a failed read
        answered = len(client.answers)
        wincc.release(*NAMES)
        await clock.run_until(lambda: all_status(rig, S.Good), within_s=1, what="the late answer applied")
        assert replayed_unchanged(client.answers[answered])
        assert [node(rig, n).Value.Value for n in NAMES] == [2.5, 7, True]
    finally:
        wincc.release(*NAMES)
        await engine.stop()
        await client.aclose()


class StaleStatus(AssertionError):
    """The address space kept showing what WinCC no longer says."""


async def test_an_answer_of_the_previous_plan_does_not_settle_tags_for_the_new_batches(rig) -> None:
    """Level is in error, a client's Read brings it into the 50 ms group for read_recent_s, it recovers there, and
    when the Read's time runs out the plan goes back to the one before while the reads of the fast plan are still
    out. Level then fails again with the very error item WinCC sent before: byte for byte what BatchMemo still holds
    for the idle group's batch (Level, Count). The engine must show the error."""
    wincc = DpWinCC({LEVEL: 2.5, COUNT: 7, RUN: True})
    wincc.errors[LEVEL] = "driver down"
    client = wincc.client()
    clock = FakeClock()
    config = sync_config(batch_size=2, poll_groups_ms=[50, 200], read_recent_s=1.0)
    engine = SyncEngine(rig[0], rig[1], client, config, clock=clock, read_timeout_s=30)
    await engine.start()
    try:
        # nobody wants anything: the idle group reads (Level, Count) and (Run); the memo learns the first
        await clock.run_until(
            lambda: (
                node(rig, LEVEL).StatusCode.value == S.Bad
                and any(replayed_unchanged(a, (LEVEL, COUNT)) for a in client.answers)
            )
        )
        engine.note_read([LEVEL])  # the fast plan: (Level) at 50 ms, (Count, Run) at 100 ms
        await clock.run_until(lambda: {(LEVEL,), (COUNT, RUN)} <= set(wincc.asked), what="the fast plan's reads")
        del wincc.errors[LEVEL]
        await clock.run_until(lambda: node(rig, LEVEL).StatusCode.is_good(), what="Level recovered")
        wincc.held = set(NAMES)  # the fast plan's next reads go out, WinCC is silent
        await clock.run_until(lambda: len(wincc.waiting) == 2, what="both reads out")
        wincc.errors[LEVEL] = "driver down"  # Level fails again, as before
        await clock.advance(2.5)  # the Read's time runs out: the (empty) 200 ms group replans
        # engine._groups is private: the plan is only visible there (this checks the test's premise)
        assert engine._groups == {100: [LEVEL, COUNT, RUN]}
        asked = len(wincc.asked)
        wincc.release(LEVEL)  # the fast plan's answers come (Level still good in them), one after the other
        await clock.run_until(lambda: wincc.waiting == [(COUNT, RUN)], what="Level's answer")
        wincc.release(COUNT, RUN)
        await clock.run_until(lambda: (LEVEL, COUNT) in wincc.asked[asked:], what="the idle plan's first read")
        await clock.run_until(lambda: any(replayed_unchanged(a, (LEVEL, COUNT)) for a in client.answers[-3:]))
        try:
            await clock.run_until(lambda: node(rig, LEVEL).StatusCode.value == S.Bad, within_s=2)
        except AssertionError as exc:
            shown = node(rig, LEVEL)
            raise StaleStatus(
                f"WinCC answers Level with an item error, the node shows {shown.Value.Value} {shown.StatusCode}"
            ) from exc
    finally:
        wincc.release(*NAMES)
        await engine.stop()
        await client.aclose()
