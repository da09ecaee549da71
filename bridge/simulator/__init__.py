"""A real HTTP WinCC REST server (one dialect per instance) with plant dynamics, alarms, an archive, auth, HTTPS and
fault injection: what `demo` runs against, what integration tests hit, what benchmarks load.

Its ceiling, measured 2026-12-01 on the 2-core machine kind with `python -m bridge.simulator.ceiling --tags 100000`
(sequential and 4-concurrent 500-tag ReadMultiple of generated tags from a lean keep-alive client in another
process; other sessions shared the machine, so the best of three 10 s runs): one request at a time ~490
requests/s = ~245k tag values/s, 4 in flight ~690 requests/s = ~345k tag values/s; restservice POST
/tagManagement/Values ~340 / ~480 requests/s in a busier minute. The simulator answers ~600-800 such requests per
CPU-second (the code before, measured by the same module: ~250; the audit's 165 requests/s was with an httpx
client, which costs more than the simulator now does). A bridge polling 10k tags every second needs 20 requests/s,
so the simulator is not the bottleneck of a bridge benchmark; `ceiling` prints the figures for the machine at hand.

Browse pages are slices of a listing built once per tag list, so browsing 100k tags takes ~1.6 s (restservice; it
was ~31 s) or ~2.7 s (dp), client in the same process. Start-up with 100k generated tags is well under a second:
their values are computed on read, not stored.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import uvicorn

from bridge.runtime.embedded_http import EmbeddedServer
from bridge.simulator.app import Faults, Stats, build_app, change_tags
from bridge.simulator.plant import MAX_GENERATED, Plant

__all__ = ["Simulator", "SimulatorOptions", "add_arguments", "options_from_args", "serve"]

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 10.0
_REBIND_TIMEOUT_S = 10.0  # after a restart, how long to keep trying to get the port back


@dataclass
class SimulatorOptions:
    dialect: Literal["dp", "restservice", "unified"] = "dp"
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
    alarms_per_minute: float = 0.0  # the plant disturbs itself (limit alarms come and go); 0 = only when forced
    archive_epoch: datetime | None = None
    tls_cert: str | Path | None = None  # PEM certificate (chain) and its key: serve HTTPS
    tls_key: str | Path | None = None

    def __repr__(self) -> str:  # never show the password
        return f"SimulatorOptions(dialect={self.dialect!r}, port={self.port}, tags={self.tags}, auth={self.auth!r})"


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket (uvicorn listens on it): binding here gives a clear error and lets a restart take the same
    port again, which uvicorn's own bind would answer with sys.exit."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except OSError as exc:
        raise OSError(f"simulator cannot listen on {host}:{port}: {exc}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise OSError(f"simulator cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    return sock


class Simulator:
    def __init__(self, options: SimulatorOptions) -> None:
        if (options.tls_cert is None) != (options.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        self.options = options
        self.plant = Plant(
            generated=options.tags,
            change_rate=options.change_rate,
            seed=options.seed,
            backfill_days=options.backfill_days,
            archive_epoch=options.archive_epoch,
            alarms_per_minute=options.alarms_per_minute,
        )
        self.faults = Faults()
        self.stats = Stats()
        app = build_app(
            self.plant,
            options.dialect,
            auth=options.auth,
            username=options.username,
            password=options.password,
            token_ttl_s=options.token_ttl_s,
            faults=self.faults,
            stats=self.stats,
            restart=self._restart_from_http,
        )
        tls: dict[str, Any] = {}
        if options.tls_cert is not None:
            tls = {"ssl_certfile": str(options.tls_cert), "ssl_keyfile": str(options.tls_key)}
        self._config = uvicorn.Config(
            app, host=options.host, port=options.port, log_config=None, access_log=False, lifespan="off", **tls
        )
        # One uvicorn server per listening period: a restart closes one and, after the outage, starts the next.
        self._servers: list[tuple[EmbeddedServer, asyncio.Task[None]]] = []
        self._ticker: asyncio.Task[None] | None = None
        self._comeback: asyncio.Task[None] | None = None
        self.port = options.port

    @property
    def url(self) -> str:
        scheme = "https" if self.options.tls_cert is not None else "http"
        base = f"{scheme}://{self.options.host}:{self.port}"
        if self.options.dialect == "unified":
            return base + "/graphql"
        return base if self.options.dialect == "dp" else base + "/WinCCRestService"

    @property
    def restarting(self) -> bool:
        """True from `restart` until the simulator listens again."""
        return self._comeback is not None and not self._comeback.done()

    async def start(self) -> None:
        if not self._config.loaded:
            try:
                self._config.load()  # reads the TLS certificate and key now, so a bad file is a clear error
            except OSError as exc:
                raise OSError(f"simulator TLS certificate or key cannot be used: {exc}") from None
        sock = _listen(self.options.host, self.options.port)
        self.port = sock.getsockname()[1]
        await self._serve(sock)
        self._ticker = asyncio.create_task(self._ticks(), name="simulator-plant")
        log.info("WinCC simulator (%s) on %s with %d tags", self.options.dialect, self.url, self.plant.tag_count())

    async def _serve(self, sock: socket.socket) -> None:
        server = EmbeddedServer(self._config)
        task = asyncio.create_task(server.serve(sockets=[sock]), name="simulator-http")
        self._servers.append((server, task))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT_S
        while not server.started:
            if task.done() or loop.time() > deadline:
                raise OSError(f"simulator HTTP server did not start on {self.options.host}:{self.port}")
            await asyncio.sleep(0.02)

    async def restart(
        self, *, add: list[Any] | tuple[Any, ...] = (), remove: list[Any] | tuple[Any, ...] = (), down_s: float = 0.5
    ) -> None:
        """Restart WinCC: drop every session, refuse connections for `down_s`, then serve the changed tag list
        (items as for POST /_sim/tags "add"/"remove"). Returns once down. ValueError for a bad tag change (nothing
        changes then), RuntimeError while a restart is under way."""
        if self.restarting:
            raise RuntimeError("a restart is under way")
        if not self._servers:
            raise RuntimeError("the simulator is not running")
        change_tags(self.plant, list(add), list(remove))
        self.faults.expire_sessions()
        server = self._servers[-1][0]
        for listener in server.servers:
            listener.close()  # closes the listening socket: new connections are refused from here on
        for connection in list(server.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now, busy ones after their answer
        server.request_exit()
        self._comeback = asyncio.create_task(self._come_back(down_s), name="simulator-restart")
        log.info("WinCC simulator restarting: down for %.1f s, then %d tags", down_s, self.plant.tag_count())

    async def _restart_from_http(self, add: list[Any], remove: list[Any], down_s: float) -> None:
        await self.restart(add=add, remove=remove, down_s=down_s)

    async def _come_back(self, down_s: float) -> None:
        await asyncio.sleep(down_s)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _REBIND_TIMEOUT_S
        while True:
            try:
                sock = _listen(self.options.host, self.port)
                break
            except OSError as exc:
                if loop.time() > deadline:
                    log.error("WinCC simulator stays down after its restart: %s", exc)
                    return
                await asyncio.sleep(0.1)
        await self._serve(sock)
        log.info("WinCC simulator serving again on %s", self.url)

    async def _ticks(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_s)
            self.plant.tick(self.options.tick_s)

    async def stop(self) -> None:
        for task in (self._comeback, self._ticker):
            if task is not None:
                task.cancel()
        for server, _ in self._servers:
            server.request_exit()
        tasks = [t for t in (self._comeback, self._ticker) if t is not None] + [t for _, t in self._servers]
        await asyncio.gather(*tasks, return_exceptions=True)
        self._servers.clear()
        self._ticker = self._comeback = None

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
    """Every option with its help and default (`simulate --help` is the simulator's manual)."""
    parser.add_argument(
        "--port", type=int, default=8700, help="TCP port to listen on; 0 = any free port (default: %(default)s)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on; 0.0.0.0 = every interface (default: %(default)s)"
    )
    parser.add_argument(
        "--dialect",
        choices=["dp", "restservice", "unified"],
        default="dp",
        help="API to serve: dp (/api/dp/...), restservice (/WinCCRestService/...) or unified "
        "(GraphQL on /graphql) (default: %(default)s)",
    )
    parser.add_argument(
        "--tags",
        type=_generated_count,
        default=0,
        help=f"generated tags on top of the demo plant, 0..{MAX_GENERATED} (default: %(default)s)",
    )
    parser.add_argument(
        "--change-rate", type=float, default=0.1, help="changes per second of each generated tag (default: %(default)s)"
    )
    parser.add_argument(
        "--auth",
        choices=["none", "basic", "token"],
        default="none",
        help="authentication clients must use: none, basic (HTTP Basic) or token (POST "
        "/api/auth/login, then a bearer token); basic and token need --password-env "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--username", default="opcua", help="the one user name accepted with --auth basic|token (default: %(default)s)"
    )
    parser.add_argument(
        "--password-env",
        metavar="VAR",
        help="environment variable holding that user's password (default: none; needed by --auth basic|token)",
    )
    parser.add_argument(
        "--token-ttl",
        type=float,
        default=900,
        metavar="SECONDS",
        help="lifetime of a login token with --auth token (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed of the plant's noise and generated values: the same seed gives the "
        "same values (default: %(default)s)",
    )
    parser.add_argument(
        "--backfill-days",
        type=float,
        default=2,
        metavar="DAYS",
        help="archive history generated for archived tags at start, in days (default: %(default)s)",
    )
    parser.add_argument(
        "--alarms-per-minute",
        type=float,
        default=0.0,
        help="the plant raises limit alarms by itself at about this rate (default: %(default)s = only "
        "when forced through /_sim/alarms)",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate (chain): serve HTTPS, with --tls-key (default: none, plain HTTP)",
    )
    parser.add_argument("--tls-key", metavar="FILE", help="PEM private key of --tls-cert (default: none)")


def _generated_count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 0 <= n <= MAX_GENERATED:
        raise argparse.ArgumentTypeError(f"must be 0..{MAX_GENERATED} (the simulator's limit), not {n}")
    return n


def options_from_args(ns: argparse.Namespace) -> SimulatorOptions:
    password = os.environ.get(ns.password_env) if ns.password_env else None
    if ns.auth != "none" and password is None:
        raise SystemExit(f"--auth {ns.auth} needs --password-env naming a set environment variable")
    if (ns.tls_cert is None) != (ns.tls_key is None):
        raise SystemExit("--tls-cert and --tls-key go together")
    return SimulatorOptions(
        dialect=ns.dialect,
        host=ns.host,
        port=ns.port,
        tags=ns.tags,
        change_rate=ns.change_rate,
        auth=ns.auth,
        username=ns.username,
        password=password,
        token_ttl_s=ns.token_ttl,
        seed=ns.seed,
        backfill_days=ns.backfill_days,
        tls_cert=ns.tls_cert,
        tls_key=ns.tls_key,
        alarms_per_minute=ns.alarms_per_minute,
    )
