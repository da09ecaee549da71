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
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bridge import __version__
from bridge.config import BridgeConfig, ConfigError, ConfigWarning, WinCCConfig, load_config, parse_config
from bridge.runtime.logs import RedactingFilter, configure_logging
from bridge.runtime.ports import PortInUse

__all__ = ["main"]

log = logging.getLogger(__name__)

# demo-only credentials: printed on the console for the person trying the demo, their hashes are in demo.yaml
DEMO_USERS = {"operator": "operator", "reader": "reader", "admin": "admin"}
DEMO_WINCC_PASSWORD = "demo-wincc"
DEMO_WINCC_ENV = "WINCC_DEMO_PASSWORD"
# the demo's ports come from these flags, so a taken port names the flag rather than the config key
DEMO_PORT_FLAGS = {
    "opcua.endpoint": "--opcua-port N",
    "health.listen": "--health-port N",
    "wincc.url": "--wincc-port N",
}


def _add_config(parser: argparse.ArgumentParser) -> None:
    """`COMMAND FILE` and `COMMAND --config FILE` both, for every command that reads a config."""
    parser.add_argument("file", nargs="?", type=Path, metavar="FILE", help="YAML config file")
    parser.add_argument("--config", type=Path, metavar="FILE", help="the same, as an option")


def _config_path(parser: argparse.ArgumentParser, ns: argparse.Namespace) -> Path:
    given = [p for p in (getattr(ns, "file", None), getattr(ns, "config", None)) if p is not None]
    if not given:
        parser.error(f"{ns.command}: give the config file: {ns.command} FILE (or --config FILE)")
    if len(given) == 2 and given[0] != given[1]:
        parser.error(f"{ns.command}: two config files given ({given[0]} and {given[1]}); give one")
    return given[0]


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
    _add_config(run)

    demo = sub.add_parser(
        "demo", help="simulator + bridge in one process with the bundled demo config (no file needed)"
    )
    # for a laptop where 4840 already belongs to another OPC UA server, or 8081/8700 are taken
    demo.add_argument("--opcua-port", type=int, help="OPC UA port (default 4840)")
    demo.add_argument("--health-port", type=int, help="health/metrics port (default 8081)")
    demo.add_argument("--wincc-port", type=int, help="port of the demo's WinCC simulator (default 8700)")
    demo.add_argument(
        "--dialect",
        choices=["dp", "restservice", "unified"],
        default="dp",
        help="the WinCC API the demo's simulator speaks and the bridge uses (default dp)",
    )

    # the simulator parses its own options (main() hands it whatever follows `simulate`), so `simulate --help`
    # lists them while the simulator's heavy imports stay out of every other command
    sub.add_parser(
        "simulate",
        help="run the WinCC REST simulator alone: --port N [--dialect dp|restservice|unified] "
        "[--tags N] ... (see `simulate --help`)",
        add_help=False,
    )

    chk = sub.add_parser(
        "check-config",
        help="validate a config and print it with secrets masked (the secrets "
        "themselves need not be set: a missing one is a warning)",
    )
    _add_config(chk)

    hp = sub.add_parser("hash-password", help="print the scrypt$... hash for opcua.users[].password_hash")
    hp.add_argument("--password", help="the password (default: read from stdin, or prompt on a terminal)")

    br = sub.add_parser("browse", help="print WinCC's folders and tags as the bridge sees them, as a tree")
    _add_config(br)

    ex = sub.add_parser("export-nodeset", help="browse WinCC and write the model as NodeSet2 XML")
    _add_config(ex)
    ex.add_argument(
        "--out",
        type=Path,
        default=Path("nodesets/wincc.xml"),
        help="where to write it (default: %(default)s, relative to the current directory)",
    )
    return p


def _warn(warnings: tuple[ConfigWarning, ...] | list[ConfigWarning]) -> None:
    for warning in warnings:
        log.warning("config: %s", warning)


def _load(path: Path, *, serving: bool = False) -> BridgeConfig:
    """Load a config for a command that talks to WinCC; `serving`: refuse what would make the server useless
    (placeholder password hashes); other warnings are logged."""
    config = load_config(path)
    refused = [w for w in config.warnings if serving and w.refuse_serving]
    if refused:
        errors = [ConfigError(w.message, key=w.key, line=w.line) for w in refused]
        raise ConfigError(errors[0].message, key=errors[0].key, line=errors[0].line, more=errors[1:])
    _warn(config.warnings)
    return config


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
    config = _load(config_path, serving=True)
    _register_secrets(redact, config)
    from bridge.app import serve

    # SIGHUP re-reads users, write rules, trust list and log level from this file (see README, Reload)
    _serve_measured(_until_signal(lambda stop: serve(config, stop, on_secret=redact.add, config_path=config_path)))
    return 0


def _serve_measured(main: Coroutine[Any, Any, None]) -> None:
    """asyncio.run on a loop whose lag is measured without a timer waking it (bridge/runtime/loop_lag.py)."""
    from bridge.runtime.loop_lag import MeasuredLoop

    with asyncio.Runner(loop_factory=MeasuredLoop) as runner:
        runner.run(main)


_DEMO_PATHS = {"dp": "", "restservice": "/WinCCRestService", "unified": "/graphql"}


def _demo_state_dir() -> Path:
    """Where the demo keeps its PKI (server certificate, trusted and rejected clients): the user's cache
    directory, so the working directory stays clean and a client trusts the demo server once; a temporary
    directory if there is no writable cache."""
    try:
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        state = cache / "wincc-opcua-bridge" / "demo"
        state.mkdir(parents=True, exist_ok=True)
        return state
    except (OSError, RuntimeError):  # RuntimeError: no home directory
        return Path(tempfile.mkdtemp(prefix="wincc-opcua-bridge-demo-"))


def _demo_config(
    opcua_port: int | None = None,
    health_port: int | None = None,
    wincc_port: int | None = None,
    dialect: str = "dp",
    pki_dir: Path | None = None,
) -> BridgeConfig:
    text = resources.files("bridge").joinpath("demo.yaml").read_text(encoding="utf-8")
    if opcua_port or health_port or wincc_port or dialect != "dp" or pki_dir:
        data = yaml.safe_load(text)
        if pki_dir:
            data["opcua"]["pki_dir"] = str(pki_dir)
        if opcua_port:
            data["opcua"]["endpoint"] = f"opc.tcp://0.0.0.0:{opcua_port}/wincc"
        if health_port:
            data["health"]["listen"] = f"127.0.0.1:{health_port}"
        if wincc_port or dialect != "dp":
            data["wincc"]["url"] = f"http://127.0.0.1:{wincc_port or 8700}{_DEMO_PATHS[dialect]}"
            data["wincc"]["dialect"] = dialect
        text = yaml.safe_dump(data, sort_keys=False)
    return parse_config(text, source="bridge/demo.yaml")


def _demo_banner(config: BridgeConfig, sim_url: str, dialect: str) -> str:
    from bridge.opcua.security.policies import endpoint_urls

    _, public = endpoint_urls(config.opcua)
    local = public.replace(f"//{urlsplit(public).hostname}:", "//localhost:", 1)
    users = ", ".join(f"{u}/{p}" for u, p in DEMO_USERS.items())
    return (
        f"\nWinCC simulator: {sim_url} ({dialect} dialect, user opcua, password from {DEMO_WINCC_ENV}; "
        f"the README says how to browse it)\n"
        f"OPC UA endpoint: {local}  (from another machine: {public})\n"
        f"  security None or Basic256Sha256/Aes* (any client certificate is trusted), anonymous may read\n"
        f"Users (demo only): {users}\n"
        f"Health: http://{config.health.listen}/healthz  /readyz  /metrics\n"
        f"Demo PKI (server certificate, client certificates): {config.opcua.pki_dir}\n"
        f"Tags: Objects > WinCC > System1 (Tank1, Pump1, Reactor, ...). Ctrl+C stops.\n"
    )


def _demo_ports_free(config: BridgeConfig) -> None:
    """All three ports before anything starts, so a taken one is reported at once and nothing is half up."""
    from bridge.opcua.security.policies import endpoint_urls
    from bridge.runtime.ports import ensure_free

    wincc = urlsplit(config.wincc.url)
    ensure_free(wincc.hostname or "127.0.0.1", wincc.port or 8700, "WinCC simulator", "wincc.url")
    bind = urlsplit(endpoint_urls(config.opcua)[0])
    ensure_free(bind.hostname or "0.0.0.0", bind.port or 4840, "OPC UA", "opcua.endpoint")
    if config.health.listen:
        host, _, port = config.health.listen.rpartition(":")
        ensure_free(host.strip("[]") or "0.0.0.0", int(port), "health", "health.listen")


def _cmd_demo(redact: RedactingFilter, ns: argparse.Namespace) -> int:
    os.environ.setdefault(DEMO_WINCC_ENV, DEMO_WINCC_PASSWORD)
    config = _demo_config(ns.opcua_port, ns.health_port, ns.wincc_port, ns.dialect, pki_dir=_demo_state_dir() / "pki")
    _register_secrets(redact, config)
    from bridge.app import serve
    from bridge.simulator import Simulator, SimulatorOptions

    _demo_ports_free(config)
    port = urlsplit(config.wincc.url).port or 8700
    options = SimulatorOptions(
        dialect=config.wincc.dialect,
        port=port,
        auth="basic",
        username=config.wincc.auth.username or "opcua",
        password=os.environ[DEMO_WINCC_ENV],
        alarms_per_minute=4,  # a live Event View: limit alarms come and go by themselves
    )

    async def work(stop: asyncio.Event) -> None:
        sim = Simulator(options)
        await sim.start()
        try:
            # printed only once the endpoint is bound and the address space built: what it says works now
            await serve(
                config,
                stop,
                on_secret=redact.add,
                on_started=lambda _: print(_demo_banner(config, sim.url, options.dialect), flush=True),
            )
        finally:
            await sim.stop()

    _serve_measured(_until_signal(work))
    return 0


def _cmd_simulate(args: list[str]) -> int:
    # the simulator parses its own options, so `simulate --help` lists them and --help stays fast
    from bridge.simulator import add_arguments, options_from_args, serve

    parser = argparse.ArgumentParser(prog="wincc-opcua-bridge simulate", description="WinCC REST simulator")
    add_arguments(parser)
    options = options_from_args(parser.parse_args(args))
    from bridge.runtime.ports import ensure_free

    ensure_free(options.host, options.port, "WinCC simulator", "--port N")  # one line, exit 2, as run and demo
    asyncio.run(_until_signal(lambda stop: serve(options, stop)))
    return 0


def _cmd_check_config(path: Path) -> int:
    config = load_config(path, require_secrets=False)
    _warn(config.warnings)
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
    from bridge.wincc.client import WinCCClient, open_client

    def one(station: WinCCConfig) -> WinCCClient:
        return open_client(station, batch_size=config.sync.batch_size, on_secret=redact.add)

    if config.sources:  # every station, named as the bridge serves them (<source>/<tag>)
        from bridge.sources import SourceRouter, qualify

        client: WinCCClient = SourceRouter(qualify(s.name or "", one(s)) for s in config.sources)
    else:
        client = one(config.wincc)
    async with client:
        return [item async for item in client.browse()]


def _tag_line(item: Any) -> str:
    extra = {k: v for k, v in (("unit", item.unit), ("min", item.low), ("max", item.high)) if v is not None}
    flags = "".join(f for f, on in ((" writable", item.writable), (" archived", item.archived)) if on)
    return (
        f"{item.display_name}  [{item.data_type}]{flags}"
        f"{' ' + json.dumps(extra, ensure_ascii=False) if extra else ''}  = {item.name}"
    )


def browse_tree(items: list[Any]) -> list[str]:
    """The browse result as an indented tree: each folder, then its tags, then its subfolders, in WinCC's order
    (WinCC lists all folders first, so printing in its order would put every tag under the last folder)."""
    from bridge.wincc.models import Folder

    children: dict[tuple[str, ...], list[tuple[str, ...]]] = {}
    tags: dict[tuple[str, ...], list[Any]] = {}

    def add_folder(path: tuple[str, ...]) -> None:
        for i in range(1, len(path) + 1):
            siblings = children.setdefault(path[: i - 1], [])
            if path[:i] not in siblings:
                siblings.append(path[:i])

    for item in items:
        if isinstance(item, Folder):
            add_folder(tuple(item.path))
        else:
            add_folder(tuple(item.folder))
            tags.setdefault(tuple(item.folder), []).append(item)
    lines: list[str] = []

    def walk(path: tuple[str, ...]) -> None:
        indent = "  " * len(path)
        lines.extend(indent + _tag_line(tag) for tag in tags.get(path, []))
        for child in children.get(path, []):
            lines.append(f"{indent}{child[-1]}/")
            walk(child)

    walk(())
    return lines


def _cmd_browse(path: Path, redact: RedactingFilter) -> int:
    config = _load(path)
    _register_secrets(redact, config)
    for line in browse_tree(asyncio.run(_browse(config, redact))):
        print(line)
    return 0


def _cmd_export(path: Path, out: Path, redact: RedactingFilter) -> int:
    config = _load(path)
    _register_secrets(redact, config)
    from bridge.opcua.model.nodeset import write_nodeset

    items = asyncio.run(_browse(config, redact))
    counts = write_nodeset(items, out, config.opcua.namespace_uri)
    print(f"wrote {counts} to {out.resolve()}")
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
    if ns.command in ("run", "check-config", "browse", "export-nodeset"):
        ns.config = _config_path(parser, ns)
    try:
        match ns.command:
            case "run":
                return _cmd_run(ns.config, redact)
            case "demo":
                return _cmd_demo(redact, ns)
            case "simulate":
                return _cmd_simulate(ns.simulator_args)
            case "check-config":
                return _cmd_check_config(ns.config)
            case "hash-password":
                return _cmd_hash_password(ns.password)
            case "browse":
                return _cmd_browse(ns.config, redact)
            case "export-nodeset":
                return _cmd_export(ns.config, ns.out, redact)
    except ConfigError as exc:
        for problem in exc.all:  # every problem of the file, one line each
            _fail(redact, ns.log_format, f"config error: {problem.one_line}")
        return 2
    except PortInUse as exc:  # one line naming what to change; no banner was printed, nothing is left running
        _fail(redact, ns.log_format, exc.advice(DEMO_PORT_FLAGS.get(exc.setting) if ns.command == "demo" else None))
        return 2
    except KeyboardInterrupt:
        return 0
    except Exception as exc:  # one line for the operator; the traceback only when debugging
        log.debug("unexpected error", exc_info=True)
        _fail(redact, ns.log_format, f"error: {type(exc).__name__}: {exc}")
        return 1
    return 2
