"""Small test utilities shared by every suite: wait on a condition, find a free port, yield a turn."""

from __future__ import annotations

import asyncio
import inspect
import socket
import time
import types
from collections.abc import Awaitable, Callable, Generator
from typing import Any


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_until(
    condition: Callable[[], Any | Awaitable[Any]], timeout: float = 10.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll `condition` (sync or async) until it returns something truthy; return it. Fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last_exc: BaseException | None = None
    while True:
        try:
            result = condition()
            if inspect.isawaitable(result):
                result = await result
            if result:
                return result
        except AssertionError as exc:  # let conditions use assert to say why they are not met yet
            last_exc = exc
        if time.monotonic() > deadline:
            detail = f": {last_exc}" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}{detail}")
        await asyncio.sleep(interval)


def wait_until_sync(condition: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


@types.coroutine
def _bare_yield() -> Generator[None, None, None]:
    yield


async def next_turn() -> None:
    """Let every other ready task run once, then go on: one turn of the event loop, exactly what a zero-length
    sleep does inside asyncio, said plainly (tests wait on conditions, never on fixed times)."""
    await _bare_yield()


class OtherTask:
    """Another task that counts its turns of the event loop while a block runs: `turns` says how often the
    code under test let the loop serve someone else (0 = it held the loop for the whole block)."""

    def __init__(self) -> None:
        self.turns = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            await next_turn()
            self.turns += 1

    async def __aenter__(self) -> OtherTask:
        self._task = asyncio.create_task(self._run())
        await next_turn()  # started, and waiting for its next turn
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
