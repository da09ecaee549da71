"""The Unified value push and the event loop: a burst of WebSocket messages already received (the first values of
many subscribed batches arrive together) is handled in runs of at most ~20 ms, with a turn of the loop between
them, so OPC UA sessions and polls are not held up; messages that come one by one cost no extra turn."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.config import WinCCConfig
from bridge.wincc import open_client
from bridge.wincc.unified_push import TagPush
from tests.helpers import OtherTask


class BufferedSocket:
    """What TagPush._serve needs of a websockets connection, with every message already there."""

    def __init__(self, messages: int) -> None:
        self.messages = messages
        self.sent: list[str] = []

    async def send(self, message: str) -> None:
        self.sent.append(message)

    async def __aiter__(self) -> AsyncIterator[str]:
        for i in range(self.messages):
            yield '{"type":"next","id":"%d","payload":{}}' % i  # noqa: UP031 - a literal JSON text


def push(monkeypatch: pytest.MonkeyPatch, handle_s: float) -> TagPush:
    config = WinCCConfig.model_validate({"url": "http://unified.test:8443/graphql", "dialect": "unified"})
    client = open_client(config)

    async def nothing(*_: Any) -> None:
        pass

    tags = client.open_push(nothing, lambda: None)  # type: ignore[attr-defined]
    assert isinstance(tags, TagPush)

    async def busy(ws: Any, message: dict[str, Any]) -> None:  # the work of one message, holding the loop
        end = time.perf_counter() + handle_s
        while time.perf_counter() < end:
            pass

    monkeypatch.setattr(tags, "_handle", busy)
    return tags


async def test_a_burst_of_received_messages_gives_the_loop_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    tags = push(monkeypatch, handle_s=0.002)
    async with OtherTask() as other:
        await tags._serve(BufferedSocket(100))  # ~0.2 s of work in one burst
    assert other.turns >= 5  # a turn about every 20 ms, not one at the end


async def test_cheap_messages_cost_no_turn_each(monkeypatch: pytest.MonkeyPatch) -> None:
    tags = push(monkeypatch, handle_s=0.0)
    async with OtherTask() as other:
        await tags._serve(BufferedSocket(2_000))
    assert other.turns < 200  # not one per message
