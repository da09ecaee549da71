"""What the WinCC fault tests share: the stack they run against, a subscription that records every notification
with its arrival time, and the bridge process's resources (tasks, memory, sockets) measured from outside."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from asyncua import Client, ua

from tests.helpers import wait_until
from tests.integration.conftest import Stack

NS_URI = "urn:wincc-opcua-bridge:tags"
S = ua.StatusCodes

# Timing of the fault stacks: what "one poll cycle plus the timeout" is here
POLL_S = 0.2
READ_TIMEOUT_S = 1.5
# CPU contention allowance on a shared 2-core machine (publishing interval, scheduling, the client's own work)
SLACK_S = 1.5
BAD_WITHIN_S = POLL_S + READ_TIMEOUT_S + SLACK_S
RECOVER_WITHIN_S = 8.0

# Tags the fault tests add to the plant: constant unless written, so every change seen is a status change
REL_TAGS = ["System1.Rel.A", "System1.Rel.B", "System1.Rel.Gone"] + [f"System1.Rel.W{i}" for i in range(10)]


def rs_name(dp_name: str) -> str:
    """The simulator's restservice name of a dp name (System1.Rel.A -> Rel_A)."""
    return "_".join(dp_name.split(".")[1:])


def tag_name(stack: Stack, dp_name: str) -> str:
    return dp_name if stack.dialect == "dp" else rs_name(dp_name)


def fault_config(dialect: str, **sync: Any) -> dict[str, Any]:
    wincc: dict[str, Any] = {
        "timeouts": {"connect_s": 1, "read_s": READ_TIMEOUT_S, "write_s": READ_TIMEOUT_S},
        "retry": {"attempts": 2, "backoff_s": 0.05, "max_backoff_s": 0.5},
        "rebrowse_s": 1,
    }
    if dialect == "dp":  # the dp dialect logs in for a token: token expiry and re-login are part of the matrix
        wincc["auth"] = {"mode": "token", "username": "opcua", "password_env": "WINCC_PASSWORD"}
    return {
        "wincc": wincc,
        "sync": {
            "interval_ms": 200,
            "poll_groups_ms": [200, 1000],
            "idle_interval_ms": 1000,
            "max_backoff_s": 0.1,
            **sync,
        },
    }


def sim_args(dialect: str) -> tuple[str, ...]:
    return ("--auth", "token") if dialect == "dp" else ()


def add_rel_tags(sim_base: str) -> None:
    items = [{"name": n, "type": "int32", "value": 7, "writable": True} for n in REL_TAGS]
    httpx.post(sim_base + "/_sim/tags", json={"add": items}, timeout=10).raise_for_status()


def start_fault_stack(bridge_stack: Callable[..., Stack], dialect: str, **kwargs: Any) -> Stack:
    return bridge_stack(
        dialect, config=fault_config(dialect), sim_args=sim_args(dialect), sim_setup=add_rel_tags, **kwargs
    )


def stack_per_dialect(bridge_stack: Callable[..., Stack]) -> Callable[[str], Stack]:
    """For a module fixture: the fault stack of a dialect, started on first use and shared by the module's tests."""
    made: dict[str, Stack] = {}

    def get(dialect: str) -> Stack:
        if dialect not in made:
            made[dialect] = start_fault_stack(bridge_stack, dialect)
        return made[dialect]

    return get


def set_fault(stack: Stack, spec: dict[str, Any]) -> None:
    stack.sim_control("/_sim/faults", spec)


def clear_faults(stack: Stack) -> None:
    stack.sim_control("/_sim/faults", method="DELETE")


def requests_served(stack: Stack, key: str) -> int:
    return int(stack.sim_stats()["requests"].get(key, 0))


def read_key(stack: Stack) -> str:
    return "POST /WinCC/REST/Tags/ReadMultiple" if stack.dialect == "dp" else "POST /tagManagement/Values"


async def connect(stack: Stack, user: str = "operator", timeout: float = 10) -> Client:
    client = Client(stack.url_for(user), timeout=timeout)
    await client.connect()
    return client


async def node_id(client: Client, stack: Stack, dp_name: str) -> ua.NodeId:
    return ua.NodeId(tag_name(stack, dp_name), await client.get_namespace_index(NS_URI))


def code_of(dv: ua.DataValue) -> int:
    """The StatusCode without its info bits (limit bits and the like)."""
    return dv.StatusCode.value & 0xFFFF0000


@dataclass
class Note:
    at: float  # time.monotonic() at arrival
    code: int
    value: Any


@dataclass
class Watch:
    """Every data change notification of a subscription, per node, with its arrival time."""

    notes: dict[str, list[Note]] = field(default_factory=dict)

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        dv = data.monitored_item.Value
        self.notes.setdefault(node.nodeid.Identifier, []).append(Note(time.monotonic(), code_of(dv), val))

    def last(self, name: str) -> Note | None:
        found = self.notes.get(name)
        return found[-1] if found else None

    def since(self, name: str, t0: float) -> list[Note]:
        return [n for n in self.notes.get(name, []) if n.at >= t0]

    async def status(self, name: str, code: int, t0: float, timeout: float) -> Note:
        """The first notification since t0 with this status, waited for."""

        def seen() -> Note | None:
            return next((n for n in self.since(name, t0) if n.code == code), None)

        return await wait_until(seen, timeout=timeout, what=f"{name} {ua.StatusCode(code).name}")

    async def good(self, name: str, timeout: float = RECOVER_WITHIN_S) -> Note:
        async def now_good() -> Note | None:
            last = self.last(name)
            return last if last is not None and last.code == S.Good else None

        return await wait_until(now_good, timeout=timeout, what=f"{name} Good again")


async def subscribe(client: Client, stack: Stack, names: list[str]) -> tuple[Watch, Any]:
    watch = Watch()
    sub = await client.create_subscription(50, watch)
    nodes = [client.get_node(await node_id(client, stack, n)) for n in names]
    await sub.subscribe_data_change(nodes, sampling_interval=POLL_S * 1000)
    for n in names:
        await watch.good(tag_name(stack, n), timeout=15)
    return watch, sub


# ---- the bridge process seen from outside -----------------------------------------------------------------------
def metric(stack: Stack, name: str) -> float:
    text = httpx.get(stack.health_url + "/metrics", timeout=5).text
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def open_sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # closed meanwhile
    return n


@dataclass
class Resources:
    tasks: int
    rss: int
    sockets: int

    @classmethod
    def of(cls, stack: Stack) -> Resources:
        assert stack.bridge is not None
        pid = stack.bridge.pid
        return cls(int(metric(stack, "wincc_bridge_event_loop_tasks")), rss_bytes(pid), open_sockets(pid))

    def __str__(self) -> str:
        return f"tasks={self.tasks} rss={self.rss / 2**20:.1f} MiB sockets={self.sockets}"
