"""Call rights over real TCP (issue 10: "reader cannot acknowledge, operator can"), with the bridge in its own
process and an asyncua client here. Alarms & Conditions are not modelled yet, so the calls go to the standard
method nodes of asyncua's address space: what is proven is the permission layer (bridge/opcua/services/calls.py), which
answers before asyncua looks for a condition.

- Acknowledge (AcknowledgeableConditionType_Acknowledge, i=9111) on the Server object: a reader (and an
  anonymous session, which reads like a reader) gets BadUserAccessDenied; an operator gets past the check (asyncua
  then answers another Bad code, as there is no condition), and so does an admin.
- ConditionRefresh (i=3875) with a real subscription: allowed for a reader.
- RequestServerStateChange (Server_RequestServerStateChange, i=12886): admin-only; refused for an operator.
- One Call with a refused and an allowed method: each gets its own result.
- UserExecutable of each method node, per session, says exactly what Call lets that session do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from asyncua import Client, ua

S = ua.StatusCodes
O = ua.ObjectIds
SERVER = ua.NodeId(O.Server)
CONDITION_TYPE = ua.NodeId(O.ConditionType)  # the object ConditionRefresh is called on (Part 9, 5.5.7)
ACKNOWLEDGE = ua.NodeId(O.AcknowledgeableConditionType_Acknowledge)
CONDITION_REFRESH = ua.NodeId(O.ConditionType_ConditionRefresh)
STATE_CHANGE = ua.NodeId(O.Server_RequestServerStateChange)

# what each session may call: None = anonymous (anonymous: read in the stack's config)
MAY_CALL = {
    None: {ACKNOWLEDGE: False, CONDITION_REFRESH: True, STATE_CHANGE: False},
    "reader": {ACKNOWLEDGE: False, CONDITION_REFRESH: True, STATE_CHANGE: False},
    "operator": {ACKNOWLEDGE: True, CONDITION_REFRESH: True, STATE_CHANGE: False},
    "admin": {ACKNOWLEDGE: True, CONDITION_REFRESH: True, STATE_CHANGE: True},
}


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("dp")


@asynccontextmanager
async def session(stack, user: str | None) -> AsyncIterator[Client]:
    client = Client(stack.url_for(user), timeout=10)
    await client.connect()
    try:
        yield client
    finally:
        await client.disconnect()


def acknowledge() -> ua.CallMethodRequest:
    return ua.CallMethodRequest(
        ObjectId=SERVER,
        MethodId=ACKNOWLEDGE,
        InputArguments=[
            ua.Variant(b"\x01" * 16, ua.VariantType.ByteString),  # EventId of a condition that does not exist
            ua.Variant(ua.LocalizedText("checked"), ua.VariantType.LocalizedText),
        ],
    )


def state_change() -> ua.CallMethodRequest:
    # asks for the state the server is in (Running, no restart): harmless even if a server honoured it
    return ua.CallMethodRequest(
        ObjectId=SERVER,
        MethodId=STATE_CHANGE,
        InputArguments=[
            ua.Variant(ua.ServerState.Running, ua.VariantType.Int32),
            ua.Variant(datetime.now(UTC), ua.VariantType.DateTime),
            ua.Variant(0, ua.VariantType.UInt32),
            ua.Variant(ua.LocalizedText("test"), ua.VariantType.LocalizedText),
            ua.Variant(False, ua.VariantType.Boolean),
        ],
    )


async def call(client: Client, *requests: ua.CallMethodRequest) -> list[ua.StatusCode]:
    results = await client.uaclient.call(list(requests))
    assert len(results) == len(requests)
    return [r.StatusCode for r in results]


async def condition_refresh(client: Client) -> ua.CallMethodRequest:
    sub = await client.create_subscription(1000, None)
    return ua.CallMethodRequest(
        ObjectId=CONDITION_TYPE,
        MethodId=CONDITION_REFRESH,
        InputArguments=[ua.Variant(sub.subscription_id, ua.VariantType.UInt32)],
    )


@pytest.mark.parametrize("user", [None, "reader"])
async def test_reader_cannot_acknowledge(stack, user: str | None) -> None:
    async with session(stack, user) as client:
        (status,) = await call(client, acknowledge())
    assert status.value == S.BadUserAccessDenied


@pytest.mark.parametrize("user", ["operator", "admin"])
async def test_operator_gets_past_the_permission_check_for_acknowledge(stack, user: str) -> None:
    async with session(stack, user) as client:
        (status,) = await call(client, acknowledge())
    # no condition behind the method node yet: some Bad code from asyncua, but not the permission layer's
    assert status.is_bad() and status.value != S.BadUserAccessDenied, status


@pytest.mark.parametrize("user", [None, "reader", "operator"])
async def test_condition_refresh_is_allowed_for_every_role(stack, user: str | None) -> None:
    async with session(stack, user) as client:
        (status,) = await call(client, await condition_refresh(client))
    assert status.is_good(), status


async def test_one_call_answers_each_method_for_itself(stack) -> None:
    async with session(stack, "reader") as client:
        refresh = await condition_refresh(client)
        statuses = await call(client, acknowledge(), refresh, state_change(), refresh)
    assert [s.value for s in statuses] == [S.BadUserAccessDenied, S.Good, S.BadUserAccessDenied, S.Good]


@pytest.mark.parametrize("user", ["reader", "operator"])
async def test_admin_only_method_refused_below_admin(stack, user: str) -> None:
    async with session(stack, user) as client:
        (status,) = await call(client, state_change())
    assert status.value == S.BadUserAccessDenied


async def test_admin_may_call_the_admin_only_method(stack) -> None:
    async with session(stack, "admin") as client:
        (status,) = await call(client, state_change())
        state = await client.get_node(ua.NodeId(O.Server_ServerStatus_State)).read_value()
    assert status.value != S.BadUserAccessDenied, status
    assert state == ua.ServerState.Running


@pytest.mark.parametrize("user", list(MAY_CALL), ids=lambda u: u or "anonymous")
async def test_user_executable_matches_what_call_allows(stack, user: str | None) -> None:
    methods = list(MAY_CALL[user])
    async with session(stack, user) as client:
        nodes = [client.get_node(m) for m in methods]
        executable = await client.read_attributes(nodes, ua.AttributeIds.Executable)
        user_executable = await client.read_attributes(nodes, ua.AttributeIds.UserExecutable)
    assert all(dv.Value.Value is True for dv in executable)  # the node itself is executable for someone
    shown = {m: dv.Value.Value for m, dv in zip(methods, user_executable, strict=True)}
    assert shown == MAY_CALL[user]
