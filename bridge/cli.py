"""`wincc-opcua-bridge` (also `python -m bridge`): run | demo | simulate | check-config | hash-password | browse |
export-nodeset.

Exit codes: 0 ok (also after SIGINT/SIGTERM), 2 bad config or usage (one line naming the key), 1 unexpected error
(one line; the traceback only with --log-level debug). Heavy modules are imported inside the commands, so
`--help`, `check-config` and `hash-password` work fast and without a server.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bridge import __version__
from bridge.config import BridgeConfig, ConfigError, load_config, parse_config
from bridge.runtime.logs import RedactingFilter, configure_logging

__all__ = ["main"]

log = logging.getLogger(__name__)

# demo-only credentials: printed on the console for the person trying the demo, their hashes are in demo.yaml
DEMO_USERS = {"operator": "operator", "reader": "reader", "admin": "admin"}
DEMO_WINCC_PASSWORD = "demo-wincc"
DEMO_WINCC_ENV = "WINCC_DEMO_PASSWORD"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wincc-opcua-bridge", description="OPC UA server in front of the WinCC REST API")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--log-format", default="human", choices=["human", "json"])
    # the same flags after the command name (`run --config x --log-level debug`) override the ones before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--log-level", default=argparse.SUPPRESS, choices=["debug", "info", "warning", "error"])
    common.add_argument("--log-format", default=argparse.SUPPRESS, choices=["human", "json"])
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_parser = sub.add_parser
    sub.add_parser = lambda *a, **kw: _add_parser(*a, parents=[common], **kw)  # type: ignore[method-assign]

    run = sub.add_parser("run", help="serve OPC UA until SIGINT/SIGTERM")
    run.add_argument("--config", required=True, type=Path, help="YAML config file")

    demo = sub.add_parser("demo", help="simulator + bridge in one process with the bundled demo config (no file needed)")
    # for a laptop where 4840 already belongs to another OPC UA server, or 8081/8700 are taken
    demo.add_argument("--opcua-port", type=int, help="OPC UA port (default 4840)")
    demo.add_argument("--health-port", type=int, help="health/metrics port (default 8081)")
    demo.add_argument("--wincc-port", type=int, help="port of the demo's WinCC simulator (default 8700)")
    demo.add_argument("--dialect", choices=["dp", "restservice", "unified"], default="dp",
                      help="the WinCC API the demo's simulator speaks and the bridge uses (default dp)")

    # the simulator parses its own options (main() hands it whatever follows `simulate`), so `simulate --help`
    # lists them while the simulator's heavy imports stay out of every other command
    sub.add_parser("simulate", help="run the WinCC REST simulator alone: --port N [--dialect dp|restservice|unified] "
                                    "[--tags N] ... (see `simulate --help`)", add_help=False)

    chk = sub.add_parser("check-config", help="validate a config and print it with secrets masked")
    chk.add_argument("file", type=Path)

    hp = sub.add_parser("hash-password", help="print the scrypt$... hash for opcua.users[].password_hash")
    hp.add_argument("--password", help="the password (default: read from stdin, or prompt on a terminal)")

    br = sub.add_parser("browse", help="print WinCC's folders and tags as the bridge sees them")
    br.add_argument("--config", required=True, type=Path)

    ex = sub.add_parser("export-nodeset", help="browse WinCC and write the model as NodeSet2 XML")
    ex.add_argument("--config", required=True, type=Path)
    ex.add_argument("--out", type=Path, default=Path("nodesets/wincc.xml"))
    return p


def _register_secrets(redact: RedactingFilter, config: BridgeConfig) -> None:
    for station in (config.wincc, *config.sources):
        pw = station.auth.password
        if pw is not None:
            redact.add(pw.get_secret_value())


async def _until_signal(work: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await work(stop)


def _cmd_run(config_path: Path, redact: RedactingFilter) -> int:
    config = load_config(config_path)
    _register_secrets(redact, config)
    from bridge.app import serve

    # SIGHUP re-reads users, write rules, trust list and log level from this file (see README, Reload)
    asyncio.run(_until_signal(lambda stop: serve(config, stop, on_secret=redact.add, config_path=config_path)))
    return 0


_DEMO_PATHS = {"dp": "", "restservice": "/WinCCRestService", "unified": "/graphql"}


def _demo_config(opcua_port: int | None = None, health_port: int | None = None,
                 wincc_port: int | None = None, dialect: str = "dp") -> BridgeConfig:
    text = resources.files("bridge").joinpath("demo.yaml").read_text(encoding="utf-8")
    if opcua_port or health_port or wincc_port or dialect != "dp":
        data = yaml.safe_load(text)
        if opcua_port:
            data["opcua"]["endpoint"] = f"opc.tcp://0.0.0.0:{opcua_port}/wincc"
        if health_port:
            data["health"]["listen"] = f"127.0.0.1:{health_port}"
        if wincc_port or dialect != "dp":
            data["wincc"]["url"] = f"http://127.0.0.1:{wincc_port or 8700}{_DEMO_PATHS[dialect]}"
            data["wincc"]["dialect"] = dialect
        text = yaml.safe_dump(data, sort_keys=False)
    return parse_config(text, source="bridge/demo.yaml")


def _cmd_demo(redact: RedactingFilter, ns: argparse.Namespace) -> int:
    os.environ.setdefault(DEMO_WINCC_ENV, DEMO_WINCC_PASSWORD)
    config = _demo_config(ns.opcua_port, ns.health_port, ns.wincc_port, ns.dialect)
    _register_secrets(redact, config)
    from bridge.opcua.security.policies import endpoint_urls
    from bridge.app import serve
    from bridge.simulator import Simulator, SimulatorOptions

    port = urlsplit(config.wincc.url).port or 8700
    options = SimulatorOptions(
        dialect=config.wincc.dialect, port=port, auth="basic", username=config.wincc.auth.username or "opcua",
        password=os.environ[DEMO_WINCC_ENV],
    )

    async def work(stop: asyncio.Event) -> None:
        sim = Simulator(options)
        await sim.start()
        try:
            _, public = endpoint_urls(config.opcua)
            local = public.replace(f"//{urlsplit(public).hostname}:", "//localhost:", 1)
            users = ", ".join(f"{u}/{p}" for u, p in DEMO_USERS.items())
            print(
                f"\nWinCC simulator: {sim.url} ({options.dialect} dialect)\n"
                f"OPC UA endpoint: {local}  (from another machine: {public})\n"
                f"  security None or Basic256Sha256/Aes* (any client certificate is trusted), anonymous may read\n"
                f"Users (demo only): {users}\n"
                f"Health: http://{config.health.listen}/healthz  /readyz  /metrics\n"
                f"Tags: Objects > WinCC > System1 (Tank1, Pump1, Reactor, ...). Ctrl+C stops.\n",
                flush=True,
            )
            await serve(config, stop, on_secret=redact.add)
        finally:
            await sim.stop()

    asyncio.run(_until_signal(work))
    return 0


def _cmd_simulate(args: list[str]) -> int:
    # the simulator parses its own options, so `simulate --help` lists them and --help stays fast
    from bridge.simulator import add_arguments, options_from_args, serve

    parser = argparse.ArgumentParser(prog="wincc-opcua-bridge simulate", description="WinCC REST simulator")
    add_arguments(parser)
    options = options_from_args(parser.parse_args(args))
    asyncio.run(_until_signal(lambda stop: serve(options, stop)))
    return 0


def _cmd_check_config(path: Path) -> int:
    config = load_config(path)
    print(yaml.safe_dump(config.masked(), sort_keys=False, allow_unicode=True), end="")
    return 0


def _cmd_hash_password(password: str | None) -> int:
    from bridge.opcua.security.passwords import hash_password

    if password is None:
        if sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if getpass.getpass("Again: ") != password:
                print("passwords differ", file=sys.stderr)
                return 2
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("an empty password is not allowed", file=sys.stderr)
        return 2
    print(hash_password(password))
    return 0


async def _browse(config: BridgeConfig, redact: RedactingFilter) -> list[Any]:
    from bridge.wincc.client import open_client

    async with open_client(config.wincc, batch_size=config.sync.batch_size, on_secret=redact.add) as client:
        return [item async for item in client.browse()]


def _cmd_browse(path: Path, redact: RedactingFilter) -> int:
    config = load_config(path)
    _register_secrets(redact, config)
    from bridge.wincc.models import Folder

    for item in asyncio.run(_browse(config, redact)):
        if isinstance(item, Folder):
            print(f"{'  ' * (len(item.path) - 1)}{item.name}/")
        else:
            extra = {k: v for k, v in (("unit", item.unit), ("min", item.low), ("max", item.high)) if v is not None}
            flags = "".join(f for f, on in ((" writable", item.writable), (" archived", item.archived)) if on)
            print(f"{'  ' * len(item.folder)}{item.display_name}  [{item.data_type}]{flags}"
                  f"{' ' + json.dumps(extra, ensure_ascii=False) if extra else ''}  = {item.name}")
    return 0


def _cmd_export(path: Path, out: Path, redact: RedactingFilter) -> int:
    config = load_config(path)
    _register_secrets(redact, config)
    from bridge.opcua.model.nodeset import write_nodeset

    items = asyncio.run(_browse(config, redact))
    out.parent.mkdir(parents=True, exist_ok=True)
    write_nodeset(items, out, config.opcua.namespace_uri)
    print(f"wrote {len(items)} nodes to {out}")
    return 0


def _fail(redact: RedactingFilter, log_format: str, line: str) -> None:
    """The one line an operator sees when a command fails: a JSON object when the log is JSON lines (a log
    shipper parses every line), else plain text; known secrets masked in both."""
    if log_format == "json":
        log.error("%s", line)
    else:
        print(redact.redact(line), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    ns, rest = parser.parse_known_args(argv)
    if ns.command == "simulate":
        ns.simulator_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    redact = configure_logging(ns.log_level, ns.log_format)
    try:
        match ns.command:
            case "run":
                return _cmd_run(ns.config, redact)
            case "demo":
                return _cmd_demo(redact, ns)
            case "simulate":
                return _cmd_simulate(ns.simulator_args)
            case "check-config":
                return _cmd_check_config(ns.file)
            case "hash-password":
                return _cmd_hash_password(ns.password)
            case "browse":
                return _cmd_browse(ns.config, redact)
            case "export-nodeset":
                return _cmd_export(ns.config, ns.out, redact)
    except ConfigError as exc:
        _fail(redact, ns.log_format, f"config error: {exc}")
        return 2
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # one line for the operator; the traceback only when debugging
        log.debug("unexpected error", exc_info=True)
        _fail(redact, ns.log_format, f"error: {type(exc).__name__}: {exc}")
        return 1
    return 2
