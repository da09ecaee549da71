"""The unified dialect end to end over real HTTP and WebSocket: the project's GraphQL client and push against the
simulator's Unified API (graphql-core validates every document the client sends, as the real server would)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.config import WinCCConfig
from bridge.simulator import Simulator, SimulatorOptions
from bridge.simulator.unified_schema import filter_regex
from bridge.wincc.client import AlarmNews, AlarmPushingClient, PushingClient, open_client
from bridge.wincc.errors import WinCCNotFound, WinCCRejected, WinCCUnauthorized, WinCCUnreachable
from bridge.wincc.models import AlarmState, Folder, TagError, TagErrorKind, TagInfo, TagValue, WriteError
from bridge.wincc.unified import UnifiedClient, browse_filters, tag_folder
from bridge.wincc.unified_wire import alarm_from_unified, quality_byte, split_logging_tag
from tests.helpers import wait_until

PW = "uni-Pw-5d21"
LEVEL = "HMI_RT_1::System1.Tank1.Level"
SETPOINT = "HMI_RT_1::System1.Tank1.LevelSetpoint"


@pytest.fixture
async def sim(monkeypatch):
    monkeypatch.setenv("UNI_TEST_PW", PW)
    s = Simulator(
        SimulatorOptions(dialect="unified", port=0, auth="token", password=PW, tags=300, change_rate=2.0, tick_s=0.1)
    )
    await s.start()
    yield s
    await s.stop()


def client_for(sim: Simulator, password_env: str = "UNI_TEST_PW") -> UnifiedClient:
    cfg = WinCCConfig.model_validate(
        {
            "url": sim.url,
            "dialect": "unified",
            "timeouts": {"connect_s": 1, "read_s": 2, "write_s": 2},
            "retry": {"attempts": 1, "backoff_s": 0.05, "max_backoff_s": 0.2},
            "auth": {"mode": "token", "username": "opcua", "password_env": password_env},
        }
    )
    client = open_client(cfg, batch_size=100)
    assert isinstance(client, UnifiedClient)
    return client


def test_browse_wildcards_reach_logging_tags_only_through_a_subelement_filter():
    """Unified's `**` spans the dotted levels but not the `:` of a subelement; logging tags are subelements."""
    tags, logging_tags = filter_regex(["*::**"]), filter_regex(["*::**:*"])
    assert tags is not None and logging_tags is not None
    assert tags.match(LEVEL) and not tags.match(LEVEL + ":LoggingTag_1")
    assert logging_tags.match(LEVEL + ":LoggingTag_1") and not logging_tags.match(LEVEL)
    assert browse_filters("") == ["*::**", "*::**:*"]
    assert browse_filters("HMI_RT_1::System1") == ["HMI_RT_1::System1.**", "HMI_RT_1::System1.**:*"]


async def test_browse_builds_folders_from_names_and_finds_logging_tags(sim):
    async with client_for(sim) as c:
        items = [i async for i in c.browse()]
    folders = {i.path for i in items if isinstance(i, Folder)}
    tags = {i.name: i for i in items if isinstance(i, TagInfo)}
    assert ("HMI_RT_1",) in folders and ("HMI_RT_1", "System1", "Tank1") in folders
    assert len(tags) == sim.plant.tag_count()
    level = tags[LEVEL]
    assert level.folder == ("HMI_RT_1", "System1", "Tank1") and level.display_name == "Level"
    assert level.data_type.value == "float" and level.archived and level.archive_tag == LEVEL + ":LoggingTag_1"
    # parents before children: every tag's folder was yielded before it
    seen: set[tuple[str, ...]] = set()
    for i in items:
        if isinstance(i, Folder):
            seen.add(i.path)
        else:
            assert i.folder in seen


async def test_read_batches_values_quality_and_item_errors(sim):
    sim.plant.set("System1.Tank1.LevelSetpoint", 4.25, quality=0x48 | 0x02)  # uncertain, substitute, high limit
    async with client_for(sim) as c:
        names = [SETPOINT, "HMI_RT_1::System1.Pump1.Speed", "HMI_RT_1::No.Such.Tag"]
        names += [f"HMI_RT_1::{sim.plant.gen_name(i, 'dp')}" for i in range(250)]
        out = await c.read(names)
    assert out[SETPOINT] == TagValue(SETPOINT, 4.25, 0x4A, out[SETPOINT].timestamp)
    missing = out["HMI_RT_1::No.Such.Tag"]
    assert isinstance(missing, TagError) and missing.kind is TagErrorKind.not_found
    assert all(isinstance(out[n], TagValue) for n in names if "Gen" in n)
    assert max(sim.stats.read_batches) <= 100  # batch_size honoured


async def test_write_maps_every_unified_code_per_tag(sim):
    sim.faults.set({"mode": "write_errors", "tags": {"HMI_RT_1::System1.Pump1.SpeedSetpoint": {"errorCode": 205}}})
    async with client_for(sim) as c:
        out = await c.write(
            {
                SETPOINT: 6.5,
                LEVEL: 1.0,
                "HMI_RT_1::Nope": 1,
                "HMI_RT_1::System1.Pump1.SpeedSetpoint": 5,
                "HMI_RT_1::System1.Tank1.InletValve": "text",
            }
        )
    assert out[SETPOINT].ok and sim.plant.tags["System1.Tank1.LevelSetpoint"].value == 6.5
    assert out[LEVEL].error is WriteError.not_writable
    assert out["HMI_RT_1::Nope"].error is WriteError.not_found
    assert out["HMI_RT_1::System1.Pump1.SpeedSetpoint"].error is WriteError.forbidden
    assert out["HMI_RT_1::System1.Tank1.InletValve"].error is WriteError.type_mismatch


async def test_archive_pages_past_the_cap_without_repeats(sim):
    async with client_for(sim) as c:
        tags = [i async for i in c.browse() if isinstance(i, TagInfo) and i.name.endswith("Tag000010")]
        tag = tags[0]
        end = datetime.now(UTC).replace(microsecond=0)
        start = end - timedelta(seconds=2500)
        values = [v async for page in c.archive(tag, start, end, page_size=700) for v in page]
    stamps = [v.timestamp for v in values]
    assert len(values) == 2501 and stamps == sorted(set(stamps))
    assert stamps[0] == start and stamps[-1] == end


async def test_alarms_acknowledge_and_history(sim):
    async with client_for(sim) as c:
        assert await c.active_alarms() == []
        sim.plant.forced_alarms["1001"] = True  # as POST /_sim/alarms {"raise": "1001"} does
        sim.plant.set_alarm("1001", True)
        (alarm,) = await c.active_alarms()
        assert alarm.id == LEVEL + ":Alarm_1001#1" and alarm.tag == LEVEL and alarm.priority == 800
        assert alarm.state is AlarmState.came and not alarm.acknowledged and alarm.text == "Tank 1 level high"
        await c.acknowledge(alarm.id, "seen", "operator")
        with pytest.raises(WinCCRejected) as again:
            await c.acknowledge(alarm.id, "seen", "operator")
        assert again.value.status == 409
        with pytest.raises(WinCCNotFound):
            await c.acknowledge(LEVEL + ":Alarm_9999#1", "", "operator")
        history = await c.alarm_history(datetime.now(UTC) - timedelta(minutes=1), datetime.now(UTC))
    assert [(a.state, a.acknowledged) for a in history][-2:] == [(AlarmState.came, False), (AlarmState.came, True)]


async def test_expired_session_logs_in_again_once_and_bad_credentials_are_clear(sim, monkeypatch):
    async with client_for(sim) as c:
        await c.read([LEVEL])
        sim.faults.expire_sessions()
        assert isinstance((await c.read([LEVEL]))[LEVEL], TagValue)
    assert sim.stats.requests["POST /graphql login"] == 2
    monkeypatch.setenv("UNI_WRONG_PW", "Wrong-Pw-123")
    async with client_for(sim, "UNI_WRONG_PW") as c:
        with pytest.raises(WinCCUnauthorized) as refused:
            await c.read([LEVEL])
    assert "Wrong-Pw-123" not in str(refused.value)


async def test_unreachable_and_server_errors_raise_for_the_whole_request(sim):
    async with client_for(sim) as c:
        await c.read([LEVEL])
        sim.faults.set({"mode": "error500"})
        with pytest.raises(WinCCUnreachable):
            await c.read([LEVEL, SETPOINT])
        sim.faults.set({"mode": "none"})
        sim.faults.set({"mode": "unauthorized"})
        with pytest.raises(WinCCUnauthorized):
            await c.read([LEVEL, SETPOINT])


class Collector:
    def __init__(self) -> None:
        self.values: list[TagValue | TagError] = []
        self.changes = 0

    async def on_values(self, results: dict[str, Any]) -> None:
        self.values.extend(results.values())

    def on_covered(self) -> None:
        self.changes += 1


async def test_push_delivers_current_values_then_changes_and_survives_a_dropped_socket(sim):
    names = [f"HMI_RT_1::{sim.plant.gen_name(i, 'dp')}" for i in range(200)] + [SETPOINT]
    got = Collector()
    async with client_for(sim) as c:
        assert isinstance(c, PushingClient)
        push = c.open_push(got.on_values, got.on_covered)
        push.start()
        try:
            push.want(names)
            await wait_until(lambda: push.covered == frozenset(names), timeout=10, what="every tag pushed")
            first = {v.name for v in got.values}
            assert first == set(names)  # ADDED: the current value of each
            assert push.covered_count == len(names) and all(push.covers(n) for n in names)
            assert not push.covers("HMI_RT_1::NoSuchTag")
            sim.plant.set("System1.Tank1.LevelSetpoint", 7.75)
            await wait_until(
                lambda: any(getattr(v, "value", None) == 7.75 for v in got.values),
                timeout=5,
                what="a changed demo tag pushed",
            )
            before = len(got.values)
            await wait_until(lambda: len(got.values) > before + 50, timeout=10, what="generated changes pushed")
            polls = sim.stats.requests["POST /graphql tagValues"]
            # the socket drops: nothing is covered, so the engine would poll; it comes back by itself
            sim.faults.set({"mode": "ws_down"})
            await wait_until(lambda: not push.covered, timeout=5, what="coverage dropped with the socket")
            sim.faults.set({"mode": "none"})
            await wait_until(lambda: push.covered == frozenset(names), timeout=15, what="pushed again after reconnect")
            assert push.reconnects >= 1
            # fewer tags wanted: the rest is still pushed, the dropped ones are not
            push.want(names[:10])
            await wait_until(lambda: push.covered == frozenset(names[:10]), timeout=5, what="coverage shrinks")
            assert push.covered_count == 10 and not push.covers(names[10])
            assert sim.stats.requests["POST /graphql tagValues"] == polls  # push never polls
        finally:
            await push.aclose()


def test_names_qualities_and_alarm_states_decode_as_the_contract_says():
    assert tag_folder("HMI_RT_1::Plant.Area1.Tank1.Level") == (("HMI_RT_1", "Plant", "Area1", "Tank1"), "Level")
    assert split_logging_tag("HMI_RT_1::A.B:LoggingTag_1") == ("HMI_RT_1::A.B", "LoggingTag_1")
    assert split_logging_tag("HMI_RT_1::A.B") == (None, None)
    assert quality_byte(None) == 0xC0
    assert quality_byte({"quality": "GOOD_CASCADE"}) == 0xC0
    assert quality_byte({"quality": "BAD", "subStatus": "NOT_CONNECTED"}) == 0x08
    assert quality_byte({"quality": "BAD", "subStatus": "OUT_OF_SERVICE"}) == 0x1C
    assert quality_byte({"quality": "UNCERTAIN", "subStatus": "LAST_USABLE_VALUE"}) == 0x44
    assert (
        quality_byte({"quality": "UNCERTAIN", "subStatus": "SENSOR_CONVERSION", "limit": "HIGH_LIMIT_VIOLATION"})
        == 0x52
    )
    base = {
        "name": "HMI_RT_1::A.B:Alarm_1",
        "instanceID": 3,
        "priority": 5,
        "raiseTime": "2026-12-01T10:00:00Z",
        "clearTime": "1970-01-01T00:00:00.000Z",
        "eventText": ["Level high"],
    }
    for state, expected in [
        (1, (AlarmState.came, False)),
        ("RAISED_CLEARED", (AlarmState.went, False)),
        ("5", (AlarmState.came, True)),
        (7, (AlarmState.went, True)),
    ]:
        alarm = alarm_from_unified({**base, "state": state})
        assert alarm is not None and (alarm.state, alarm.acknowledged) == expected
        assert alarm.id == "HMI_RT_1::A.B:Alarm_1#3" and alarm.tag == "HMI_RT_1::A.B" and alarm.text == "Level high"
        assert alarm.timestamp == datetime(2026, 12, 1, 10, tzinfo=UTC)  # 1970 means "not set"
    with pytest.raises(ValueError):
        alarm_from_unified({**base, "state": 42})
    # eventText and stateText are [String] (one per language): without an event text the first state text shows
    untitled = alarm_from_unified({**base, "state": 1, "eventText": [""], "stateText": ["", "Raised"]})
    assert untitled is not None and untitled.text == "Raised"


async def test_pushed_and_polled_share_one_item_parser(sim):
    """A tag WinCC cannot resolve comes back as the same typed error from a query and from a subscription."""
    got = Collector()
    async with client_for(sim) as c:
        polled = (await c.read(["HMI_RT_1::Nope"]))["HMI_RT_1::Nope"]
        push = c.open_push(got.on_values, got.on_covered)
        push.start()
        try:
            push.want(["HMI_RT_1::Nope"])
            await wait_until(lambda: got.values, timeout=5, what="the ADDED notification")
        finally:
            await push.aclose()
    assert got.values[0] == polled and isinstance(polled, TagError) and polled.kind is TagErrorKind.not_found


async def test_browse_roots_and_include_exclude_select_unified_names(sim, monkeypatch):
    monkeypatch.setenv("UNI_TEST_PW", PW)
    cfg = WinCCConfig.model_validate(
        {
            "url": sim.url,
            "dialect": "unified",
            "auth": {"mode": "token", "username": "opcua", "password_env": "UNI_TEST_PW"},
            "browse_roots": ["HMI_RT_1::System1.Tank1", "HMI_RT_1::System1.Pump1"],
            "exclude": ["*Setpoint"],
        }
    )
    async with open_client(cfg) as c:
        items = [i async for i in c.browse()]
    names = sorted(i.name for i in items if isinstance(i, TagInfo))
    assert names and all(n.startswith(("HMI_RT_1::System1.Tank1.", "HMI_RT_1::System1.Pump1.")) for n in names)
    assert LEVEL in names and SETPOINT not in names
    assert {i.path for i in items if isinstance(i, Folder)} == {
        ("HMI_RT_1",),
        ("HMI_RT_1", "System1"),
        ("HMI_RT_1", "System1", "Tank1"),
        ("HMI_RT_1", "System1", "Pump1"),
    }


async def test_session_is_extended_before_it_expires(monkeypatch):
    monkeypatch.setenv("UNI_TEST_PW", PW)
    short = Simulator(SimulatorOptions(dialect="unified", port=0, auth="token", password=PW, token_ttl_s=2))
    await short.start()
    try:
        async with client_for(short) as c:
            await c.read([LEVEL])
            await wait_until(
                lambda: short.stats.requests["POST /graphql extendSession"] >= 2, timeout=10, what="two extensions"
            )
            assert isinstance((await c.read([LEVEL]))[LEVEL], TagValue)
        assert short.stats.requests["POST /graphql login"] == 1  # never expired, never logged in again
    finally:
        await short.stop()


async def test_alarm_push_reads_the_active_list_then_applies_changes_and_reconciles_after_a_dropped_socket(sim):
    """Unified notifies one alarm per message and never marks the end of the alarms already active: the push reads
    the active list once after each subscribe (complete news), then delivers each change as it comes."""
    news: list[AlarmNews] = []
    lives: list[bool] = []
    plant = sim.plant

    def force(alarm_id: str, active: bool) -> None:  # as POST /_sim/alarms {"raise"/"clear": id} does
        plant.forced_alarms[alarm_id] = active
        plant.set_alarm(alarm_id, active)

    def ids(item: AlarmNews) -> dict[str, tuple[AlarmState, bool]]:
        return {a.id.split(":Alarm_")[1]: (a.state, a.acknowledged) for a in item.alarms}

    def told(alarm_id: str, state: tuple[AlarmState, bool], since: int = 0) -> bool:
        return any(not n.complete and ids(n).get(alarm_id) == state for n in news[since:])

    force("1001", True)
    force("1003", True)
    async with client_for(sim) as c:
        assert isinstance(c, AlarmPushingClient)

        async def on_alarms(item: AlarmNews) -> None:
            news.append(item)

        push = c.open_alarm_push(on_alarms, lambda: lives.append(push.live))
        push.start()
        try:
            await wait_until(lambda: push.live, timeout=10, what="the alarm push live")
            assert news[0].complete  # the list read over HTTP after subscribing, whatever the socket sent meanwhile
            assert ids(news[0]) == {"1001#1": (AlarmState.came, False), "1003#1": (AlarmState.came, False)}
            assert sim.stats.requests["POST /graphql activeAlarms"] == 1 and push.list_reads == 1
            # the ADDED of the alarms already active come too (held while the list was read): they change nothing
            await wait_until(
                lambda: told("1001#1", (AlarmState.came, False)) and told("1003#1", (AlarmState.came, False)),
                timeout=5,
                what="the ADDED of the active alarms",
            )
            assert push.notifications >= 2
            count = len(news)
            force("1002", True)
            await wait_until(lambda: told("1002#1", (AlarmState.came, False), count), timeout=5, what="a raise")
            await c.acknowledge(LEVEL + ":Alarm_1001#1", "", "operator")
            await wait_until(lambda: told("1001#1", (AlarmState.came, True), count), timeout=5, what="an ack")
            force("1001", False)  # went while acknowledged: it leaves the active list
            await wait_until(
                lambda: any(n.gone == [LEVEL + ":Alarm_1001#1"] for n in news[count:]), timeout=5, what="a REMOVED"
            )

            sim.faults.set({"mode": "ws_down"})
            await wait_until(lambda: not push.live, timeout=5, what="the push down with its socket")
            force("1002", False)  # went (unacknowledged) and 1001 came again while nobody was told
            force("1001", True)
            force("1003", False)
            plant.acknowledge("1003")  # went and acknowledged: no longer active
            count = len(news)
            sim.faults.set({"mode": "none"})
            await wait_until(lambda: push.live and len(news) > count, timeout=15, what="pushed again")
            again = next(n for n in news[count:] if n.complete)
            # the whole list: the consumer reconciles (1003 is gone), nothing is announced twice
            assert ids(again) == {"1001#1": (AlarmState.came, False), "1002#1": (AlarmState.went, False)}
            assert lives[:2] == [True, False] and lives[-1] is True and push.reconnects >= 1
            assert sim.stats.requests["POST /graphql activeAlarms"] == 2  # one read per subscribe, no polling
            assert sim.stats.requests["WS subscribe activeAlarms"] == 2
        finally:
            await push.aclose()


async def test_alarm_push_is_not_live_while_the_active_list_cannot_be_read(sim):
    """The list read after subscribing fails (HTTP 500): the socket is closed and opened again with backoff, the
    push stays down (the alarm service keeps polling) until a read succeeds."""
    news: list[AlarmNews] = []
    sim.plant.forced_alarms["1001"] = True
    sim.plant.set_alarm("1001", True)
    async with client_for(sim) as c:
        await c.read([LEVEL])  # logged in: the socket can open, only the queries fail
        sim.faults.set({"mode": "error500"})

        async def on_alarms(item: AlarmNews) -> None:
            news.append(item)

        push = c.open_alarm_push(on_alarms, lambda: None)
        push.start()
        try:
            await wait_until(
                lambda: sim.stats.requests["WS subscribe activeAlarms"] >= 2, timeout=10, what="subscribed again"
            )
            assert not push.live and push.list_reads == 0 and not any(n.complete for n in news)
            sim.faults.set({"mode": "none"})
            await wait_until(lambda: push.live, timeout=15, what="live once the list can be read")
            assert (
                push.list_reads == 1
                and news[0].complete
                and [a.id for a in news[0].alarms] == [LEVEL + ":Alarm_1001#1"]
            )
        finally:
            await push.aclose()
