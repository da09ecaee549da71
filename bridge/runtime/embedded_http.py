"""uvicorn inside our own event loop (health endpoint, simulator, demo), without uvicorn owning the signals and
without its ten wake-ups a second.

uvicorn's Server.serve() installs its own SIGINT/SIGTERM handlers and re-raises the signal when it returns;
in the bridge those signals belong to the CLI, which shuts everything down in order.

uvicorn's main loop sleeps 0.1 s between ticks. A tick refreshes the Date header once a second and otherwise only
looks at `should_exit`, so nine wake-ups in ten are spent on noticing a stop nobody asked for. In an idle bridge
that was ~0.33 ms of CPU a second, a tenth of the gap to bare asyncua at 10k tags and 1 % change/s
(bench/README.md, "Where the 10k unified gap is"). Here the loop ticks once a second and `request_exit()` wakes it at
once, so a stop is as fast as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Generator

import uvicorn

from bridge.runtime.clock import seconds_to_tick

__all__ = ["TICK_S", "EmbeddedServer"]

TICK_S = 1.0  # uvicorn's Date header has a resolution of one second: one tick a second keeps it exact


class EmbeddedServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._exit_requested = asyncio.Event()  # binds to the serving loop when first awaited (Python >= 3.10)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield

    def request_exit(self) -> None:
        """Stop serving: the main loop sees it now, not at its next tick."""
        self.should_exit = True
        self._exit_requested.set()

    async def main_loop(self) -> None:
        ticks = 0
        # uvicorn's own on_tick does the per-second work when its counter is a multiple of 10 (its 0.1 s ticks)
        while not await self.on_tick(ticks * 10):
            ticks = (ticks + 1) % 86_400
            with contextlib.suppress(TimeoutError):
                # on the grid of the bridge's other periodic work (bridge/runtime/clock.py): no wake-up of its own
                await asyncio.wait_for(self._exit_requested.wait(), seconds_to_tick(TICK_S, time.monotonic()))
