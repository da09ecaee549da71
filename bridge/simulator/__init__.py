"""A real HTTP WinCC REST server (one dialect per instance) with plant dynamics, alarms, an archive, auth and
fault injection: what `demo` runs against, what integration tests hit, what benchmarks load.

Measured on the 2-core machine kind (2026-11-25, one sequential httpx client): ~430 ReadMultiple requests/s of 500
tags each, ~210k tag values/s, so the simulator is not the bottleneck of a bridge benchmark (the bridge reads 10k
tags/s at 10k tags and 1 s polling). Start-up with 100k generated tags is well under a second: they are computed
on read, not stored.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import uvicorn

from bridge.embedded_http import EmbeddedServer
from bridge.simulator.app import Faults, Stats, build_app
from bridge.simulator.plant import Plant

__all__ = ["Simulator", "SimulatorOptions", "add_arguments", "options_from_args", "serve"]

log = logging.getLogger(__name__)


@dataclass
class SimulatorOptions:
    dialect: Literal["dp", "restservice"] = "dp"
    host: str = "127.0.0.1"
    port: int = 8700
    tags: int = 0
    change_rate: float = 0.1
    auth: Literal["none", "basic", "token"] = "none"
    username: str = "opcua"
    password: str | None = None
    token_ttl_s: float = 900
    seed: int = 1
    backfill_days: float = 2
    tick_s: float = 0.5
    archive_epoch: datetime | None = None

    def __repr__(self) -> str:  # never show the password
        return f"SimulatorOptions(dialect={self.dialect!r}, port={self.port}, tags={self.tags}, auth={self.auth!r})"


class Simulator:
    def __init__(self, options: SimulatorOptions) -> None:
        self.options = options
        self.plant = Plant(generated=options.tags, change_rate=options.change_rate, seed=options.seed,
                           backfill_days=options.backfill_days, archive_epoch=options.archive_epoch)
        self.faults = Faults()
        self.stats = Stats()
        app = build_app(self.plant, options.dialect, auth=options.auth, username=options.username,
                        password=options.password, token_ttl_s=options.token_ttl_s, faults=self.faults,
                        stats=self.stats)
        self._server = EmbeddedServer(uvicorn.Config(app, host=options.host, port=options.port, log_config=None,
                                                     access_log=False, lifespan="off"))
        self._tasks: list[asyncio.Task[None]] = []
        self.port = options.port

    @property
    def url(self) -> str:
        base = f"http://{self.options.host}:{self.port}"
        return base if self.options.dialect == "dp" else base + "/WinCCRestService"

    async def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._server.serve(), name="simulator-http"))
        while not self._server.started:
            if self._tasks[0].done():
                raise OSError(f"simulator cannot listen on {self.options.host}:{self.options.port}")
            await asyncio.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        self._tasks.append(asyncio.create_task(self._ticks(), name="simulator-plant"))
        log.info("WinCC simulator (%s) on %s with %d tags", self.options.dialect, self.url,
                 len(self.plant.tags) + self.plant.generated)

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_s)
            self.plant.tick(self.options.tick_s)

    async def stop(self) -> None:
        self._server.should_exit = True
        for task in self._tasks[1:]:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def serve_forever(self) -> None:
        await asyncio.Event().wait()


async def serve(options: SimulatorOptions, stop: asyncio.Event) -> None:
    sim = Simulator(options)
    await sim.start()
    try:
        await stop.wait()
    finally:
        await sim.stop()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8700, help="0 = any free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--dialect", choices=["dp", "restservice"], default="dp")
    parser.add_argument("--tags", type=int, default=0, help="generated tags on top of the demo plant (up to 200k)")
    parser.add_argument("--change-rate", type=float, default=0.1, help="changes per second of each generated tag")
    parser.add_argument("--auth", choices=["none", "basic", "token"], default="none")
    parser.add_argument("--username", default="opcua")
    parser.add_argument("--password-env", help="environment variable holding the password")
    parser.add_argument("--token-ttl", type=float, default=900)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--backfill-days", type=float, default=2)


def options_from_args(ns: argparse.Namespace) -> SimulatorOptions:
    password = os.environ.get(ns.password_env) if ns.password_env else None
    if ns.auth != "none" and password is None:
        raise SystemExit(f"--auth {ns.auth} needs --password-env naming a set environment variable")
    return SimulatorOptions(dialect=ns.dialect, host=ns.host, port=ns.port, tags=ns.tags, change_rate=ns.change_rate,
                            auth=ns.auth, username=ns.username, password=password, token_ttl_s=ns.token_ttl,
                            seed=ns.seed, backfill_days=ns.backfill_days)
