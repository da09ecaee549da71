"""Acknowledge's answers for every WinCC outcome (bridge/opcua/alarms/methods.py), with the real REST clients
against respx (only the WinCC error paths are faked; the TCP tests run the good path against the simulator):
409 -> BadConditionBranchAlreadyAcked, 404 -> BadEventIdUnknown, 5xx -> BadCommunicationError, a timeout ->
BadTimeout, restservice without `wincc.acknowledge` -> BadNotSupported; none of them is retried, none changes the
condition, each is one audit log line."""

from __future__ import annotations

import asyncio
import json
import logging
import types
from datetime import UTC, datetime

import httpx
import respx
from asyncua import ua

from bridge.config import AlarmsConfig, Role, WinCCConfig
from bridge.opcua.alarms.methods import ConditionMethods
from bridge.opcua.alarms.service import AlarmService
from bridge.opcua.security.users import BridgeUser
from bridge.wincc import open_client
from bridge.wincc.client import AlarmNews
from bridge.wincc.models import Alarm, AlarmState, DataType, TagInfo
from tests.helpers import wait_until
from tests.unit.ua_rig import server_with_tags

BASE = "http://wincc.test:8700"
S = ua.StatusCodes
O = ua.ObjectIds
TAG = TagInfo("System1.Tank1.Level", DataType.float, ("System1", "Tank1"))


async def rig(dialect: str):
    server, directory = await server_with_tags([TAG])
    client = open_client(
        WinCCConfig.model_validate({"url": BASE, "dialect": dialect, "retry": {"attempts": 3, "backoff_s": 0}})
    )
    await client.__aenter__()
    alarms = AlarmService(
        server,
        directory,
        client,
        AlarmsConfig(),
        await server.register_namespace("urn:t/alarms"),
        ua.NodeId("WinCC", directory.bridge_ns),
    )
    await alarms.reconcile(
        [Alarm("1042", "Tank 1 level high", AlarmState.came, False, datetime.now(UTC), TAG.name, "Alarm", 800)]
    )
    return server, client, alarms, ConditionMethods(alarms, timeout_s=0.5)


def ack(alarms: AlarmService, event_id: bytes | None = None) -> ua.CallMethodRequest:
    cond = alarms.book.get("1042")
    return ua.CallMethodRequest(
        ObjectId=alarms.condition_id("1042"),
        MethodId=ua.NodeId(O.AcknowledgeableConditionType_Acknowledge),
        InputArguments=[
            ua.Variant(event_id or cond.event_id, ua.VariantType.ByteString),
            ua.Variant(ua.LocalizedText("why"), ua.VariantType.LocalizedText),
        ],
    )


SESSION = types.SimpleNamespace(user=BridgeUser.named("op", Role.operator), session_id=ua.NodeId(1))


FAILURES = [
    (httpx.Response(409, json={"error": "already acknowledged"}), S.BadConditionBranchAlreadyAcked),
    (httpx.Response(404, json={"error": "unknown alarm"}), S.BadEventIdUnknown),
    (httpx.Response(503), S.BadCommunicationError),
    (httpx.ReadTimeout("slow"), S.BadTimeout),
]


async def test_acknowledge_answers_dp(caplog) -> None:
    server, client, alarms, methods = await rig("dp")
    try:
        with respx.mock(base_url=BASE) as mock:
            route = mock.post("/api/alert/1042/acknowledge")
            for n, (answer, code) in enumerate(FAILURES, start=1):
                route.mock(side_effect=answer) if isinstance(answer, Exception) else route.mock(return_value=answer)
                with caplog.at_level(logging.INFO, logger="bridge.audit.write"):
                    result = await methods.call(SESSION, ack(alarms))
                name = ua.StatusCode(code).name
                assert result.StatusCode.value == code, (name, result.StatusCode)
                assert route.call_count == n  # never retried
                assert not alarms.book.get("1042").acked
                assert f"acknowledge user=op alarm='1042' comment='why' result={name}" in caplog.text
            assert sum(methods.acknowledges.values()) == len(FAILURES)

            route.mock(return_value=httpx.Response(200, json={"id": "1042", "acknowledged": True}))
            first = await methods.call(SESSION, ack(alarms))
            assert first.StatusCode.is_good() and alarms.book.get("1042").acked
            assert json.loads(route.calls[-1].request.content) == {"comment": "why", "user": "op"}
            again = await methods.call(SESSION, ack(alarms))
            stale = await methods.call(SESSION, ack(alarms, b"\x01" * 16))
            assert (again.StatusCode.value, stale.StatusCode.value) == (
                S.BadConditionBranchAlreadyAcked,
                S.BadEventIdUnknown,
            )
            assert route.call_count == len(FAILURES) + 1
            bad_args = await methods.call(
                SESSION,
                ua.CallMethodRequest(
                    ObjectId=alarms.condition_id("1042"),
                    MethodId=ua.NodeId(O.AcknowledgeableConditionType_Acknowledge),
                    InputArguments=[ua.Variant("text"), ua.Variant(ua.LocalizedText("x"))],
                ),
            )
            assert bad_args.StatusCode.value == S.BadInvalidArgument
            not_condition = await methods.call(
                SESSION,
                ua.CallMethodRequest(
                    ObjectId=ua.NodeId(O.Server),
                    MethodId=ua.NodeId(O.AcknowledgeableConditionType_Acknowledge),
                    InputArguments=ack(alarms).InputArguments,
                ),
            )
            assert not_condition.StatusCode.value == S.BadMethodInvalid

            # an alarm id with "#" in it (Unified names alarms <name>#<instance>), through its own method node
            await alarms.reconcile([Alarm("Tank:High#7", "high", AlarmState.came, False, datetime.now(UTC), TAG.name)])
            cond = alarms.book.get("Tank:High#7")
            own = mock.post("/api/alert/Tank%3AHigh%237/acknowledge").mock(
                return_value=httpx.Response(200, json={"id": "Tank:High#7", "acknowledged": True})
            )
            result = await methods.call(
                SESSION,
                ua.CallMethodRequest(
                    ObjectId=alarms.condition_id("Tank:High#7"),
                    MethodId=ua.NodeId("Tank:High#7#Acknowledge", alarms.ns),
                    InputArguments=[
                        ua.Variant(cond.event_id, ua.VariantType.ByteString),
                        ua.Variant(ua.LocalizedText("hash"), ua.VariantType.LocalizedText),
                    ],
                ),
            )
            assert result.StatusCode.is_good() and own.call_count == 1 and cond.acked
    finally:
        await client.aclose()
        await server.stop()


async def test_restservice_without_acknowledge_is_not_supported() -> None:
    server, client, alarms, methods = await rig("restservice")
    try:
        with respx.mock(base_url=BASE, assert_all_called=False) as mock:
            result = await methods.call(SESSION, ack(alarms))
            assert result.StatusCode.value == S.BadNotSupported and not mock.calls
        assert not alarms.book.get("1042").acked
    finally:
        await client.aclose()
        await server.stop()


async def test_condition_follows_its_tag_through_a_re_browse() -> None:
    """A re-browse rebuilds or removes the source tag: the condition's HasCondition is restored, or the condition
    moves under the WinCC root, and its events name the new source."""
    from bridge.opcua.model.address_space import AddressSpace

    server, directory = await server_with_tags([])
    aspace = AddressSpace(server, directory)
    await aspace.build([TAG])
    alarms = AlarmService(
        server,
        directory,
        None,
        AlarmsConfig(),  # type: ignore[arg-type]
        await server.register_namespace("urn:t/alarms"),
        aspace.root_node_id,
    )
    try:
        await alarms.reconcile(
            [Alarm("1042", "Tank 1 level high", AlarmState.came, False, datetime.now(UTC), TAG.name, "Alarm", 800)]
        )
        tag_node = server.iserver.aspace[directory.node_id(TAG.name)]

        def has_condition(node: object) -> bool:
            return any(r.ReferenceTypeId == ua.NodeId(O.HasCondition) and r.IsForward for r in node.references)

        assert has_condition(tag_node)
        changed = TagInfo(TAG.name, DataType.float, TAG.folder, unit="m", low=0, high=10)
        await aspace.update([changed])
        assert aspace.last_changed == [TAG.name]
        alarms.model_changed()
        assert has_condition(server.iserver.aspace[directory.node_id(TAG.name)])
        await aspace.update([])  # the tag is gone
        directory.remove([TAG.name])
        alarms.model_changed()
        root = server.iserver.aspace[aspace.root_node_id]
        assert has_condition(root)
        assert alarms.records["1042"].value("SourceNode") == aspace.root_node_id
    finally:
        await server.stop()


class _PushingWinCC:
    """A WinCC that pushes alarm changes and whose notification of an acknowledge overtakes its answer to it."""

    dialect = "unified"

    def __init__(self) -> None:
        self.alarms: AlarmService | None = None
        self.notified = asyncio.Event()

    def open_alarm_push(self, on_alarms, on_live_changed):  # noqa: ANN001, ANN201 - the protocol's signature
        raise AssertionError("not started in this test")

    async def acknowledge(self, alarm_id: str, comment: str, user: str) -> None:
        assert self.alarms is not None
        acked = Alarm(alarm_id, "Tank 1 level high", AlarmState.came, True, datetime.now(UTC), TAG.name, "Alarm", 800)
        news = AlarmNews([acked], [], complete=False)
        alarms, before = self.alarms, self.alarms.pushes
        task = asyncio.create_task(alarms._pushed("", news))
        task.add_done_callback(lambda _: self.notified.set())
        # the notification arrives (and waits behind our acknowledge) before the answer does
        await wait_until(lambda: alarms.pushes > before, timeout=5, interval=0.005, what="the pushed acknowledge")


async def test_a_pushed_acknowledge_overtaking_ours_keeps_the_user_and_comment() -> None:
    server, directory = await server_with_tags([TAG])
    wincc = _PushingWinCC()
    alarms = AlarmService(
        server,
        directory,
        wincc,  # type: ignore[arg-type]
        AlarmsConfig(),
        await server.register_namespace("urn:t/alarms"),
        ua.NodeId("WinCC", directory.bridge_ns),
    )
    wincc.alarms = alarms
    await alarms.reconcile(
        [Alarm("1042", "Tank 1 level high", AlarmState.came, False, datetime.now(UTC), TAG.name, "Alarm", 800)]
    )
    methods = ConditionMethods(alarms, timeout_s=0.5)
    result = await methods.call(SESSION, ack(alarms))
    assert result.StatusCode.is_good()
    await asyncio.wait_for(wincc.notified.wait(), 2)
    cond = alarms.book.get("1042")
    assert cond is not None and cond.acked
    assert (cond.comment, cond.user) == ("why", "op")  # ours applied first; the pushed one then changes nothing
