"""The real stack for integration tests: simulator and bridge as separate processes over real HTTP and TCP.

The asyncua client runs in the pytest process (never in the same event loop as an asyncua server). Each
`bridge_stack(...)` call starts its own simulator and bridge on free ports and stops them at module end.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bridge.opcua.security.passwords import hash_password
from tests.helpers import free_port, wait_until_sync

# demo-strength test passwords; the security tests grep every log for them
TEST_PASSWORDS = {"reader": "rd-Pw-7c1e", "operator": "op-Pw-93af", "admin": "ad-Pw-51d0"}
WINCC_PASSWORD = "wincc-Pw-2b8d"
WRONG_PASSWORD = "Wrong-Pw-123"  # a wrong OPC UA password some tests try
UNIT_PASSWORD = "op-secret-91"  # tests/unit/test_security_units.py
RELOAD_PASSWORD = "nc-Pw-8d3f"  # the user tests/integration/test_reload_tcp.py adds by reloading the config
# Every password, token and other secret the test suite uses, in one place. test_secrets_in_logs.py searches all
# log output of the run for each (and checks no test defines a secret missing here); `SecretScan` repeats the
# search over everything once the run ends. Literals of test files that cannot import from here are copied
# (file named). Not listed: the demo's OPC UA passwords (they equal the user names, which are logged by design)
# and secrets shorter than 6 characters (too likely to occur by chance).
TEST_SECRETS: tuple[str, ...] = (
    *TEST_PASSWORDS.values(),
    WINCC_PASSWORD,
    WRONG_PASSWORD,
    UNIT_PASSWORD,
    RELOAD_PASSWORD,
    "not-the-password",  # tests/integration/test_bridge_dp.py
    "demo-wincc",  # bridge/cli.py DEMO_WINCC_PASSWORD, used by test_demo.py
    "sim-Pw-77",  # tests/integration/test_simulator_http.py
    "tls-Pw-31",  # tests/integration/test_simulator_tls.py
    "rest-Pa55word!",  # tests/unit/test_wincc_restservice.py
    "s3cret-PassW0rd",
    "tok-ABCDEF-123456",  # tests/unit/test_wincc_transport.py
    "s3cr3t-wincc",
    "correct horse",  # tests/unit/test_config_errors.py
    "lg-Pw-4e7a",
    "lg-tok-0c93d1",  # tests/unit/test_logs.py
    "cli-Pw-6f2b",  # tests/integration/test_cli_logging.py
    "uni-Pw-5d21",  # tests/integration/test_unified_client.py
    "uni-Secret-77",  # tests/unit/test_unified_session.py
    "deploy-Pw-5e1c",  # tests/unit/test_deploy.py
)
_HASHES: dict[str, str] = {}


def _hashes() -> dict[str, str]:
    if not _HASHES:
        _HASHES.update({role: hash_password(pw) for role, pw in TEST_PASSWORDS.items()})
    return _HASHES


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@dataclass
class Stack:
    dialect: str
    endpoint: str
    sim_base: str  # http://127.0.0.1:port (control endpoints live under /_sim/)
    sim_url: str  # the dialect's base URL
    health_url: str
    config: dict[str, Any]
    config_path: Path
    log_path: Path
    sim_log_path: Path
    users: dict[str, str] = field(default_factory=lambda: dict(TEST_PASSWORDS))
    bridge: subprocess.Popen[bytes] | None = None
    sim: subprocess.Popen[bytes] | None = None

    def sim_control(self, path: str, json: Any = None, method: str | None = None) -> Any:
        """Call the simulator's control API, e.g. sim_control("/_sim/faults", {"mode": "down"})."""
        verb = method or ("POST" if json is not None else "GET")
        r = httpx.request(verb, self.sim_base + path, json=json, timeout=10)
        r.raise_for_status()
        return r.json() if r.content else None

    def sim_stats(self) -> dict[str, Any]:
        return self.sim_control("/_sim/stats")

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def url_for(self, user: str | None) -> str:
        """Endpoint URL with credentials for asyncua's Client(url=...) (None = anonymous)."""
        if user is None:
            return self.endpoint
        host = self.endpoint.removeprefix("opc.tcp://")
        return f"opc.tcp://{user}:{self.users[user]}@{host}"

    def ready(self) -> bool:
        try:
            return httpx.get(self.health_url + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop_bridge(self, timeout: float = 15) -> int | None:
        if self.bridge is None:
            return None
        if self.bridge.poll() is None:
            self.bridge.send_signal(signal.SIGTERM)
            try:
                self.bridge.wait(timeout)
            except subprocess.TimeoutExpired:
                self.bridge.kill()
                self.bridge.wait(5)
        return self.bridge.returncode

    def stop(self) -> None:
        self.stop_bridge()
        if self.sim is not None and self.sim.poll() is None:
            self.sim.terminate()
            try:
                self.sim.wait(10)
            except subprocess.TimeoutExpired:
                self.sim.kill()


def _wait(check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, timeout: float, what: str) -> None:
    """Wait until `check()` holds; fail at once with the log's tail if the process dies first."""

    def ready_or_dead() -> bool:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode} before it was ready:\n{tail}")
        return check()

    try:
        wait_until_sync(ready_or_dead, timeout=timeout, interval=0.1, what=what)
    except AssertionError:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{what} not ready after {timeout}s:\n{tail}") from None


def start_simulator(
    tmp: Path, dialect: str, sim_args: tuple[str, ...] = (), port: int | None = None
) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = port or free_port()
    log = tmp / f"simulator-{port}.log"
    env = {**os.environ, "SIM_PASSWORD": WINCC_PASSWORD}
    cmd = [
        sys.executable,
        "-m",
        "bridge.simulator",
        "--port",
        str(port),
        "--dialect",
        dialect,
        "--auth",
        "basic",
        "--username",
        "opcua",
        "--password-env",
        "SIM_PASSWORD",
        *sim_args,
    ]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/_sim/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(up, proc, log, 60, "simulator")
    return proc, port, log


@pytest.fixture(scope="module")
def bridge_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def start(
        dialect: str = "dp",
        config: dict[str, Any] | None = None,
        sim_args: tuple[str, ...] = (),
        start_sim: bool = True,
        wait_ready: bool = True,
        log_level: str = "info",
        sim_setup: Callable[[str], None] | None = None,
    ) -> Stack:
        """`sim_setup(sim_base)` runs once the simulator is up and before the bridge starts (e.g. to add tags
        through /_sim/tags so the bridge's first browse sees them)."""
        tmp = tmp_path_factory.mktemp(f"stack-{dialect}")
        sim_port = free_port()
        sim = None
        sim_log = tmp / "simulator.log"
        if start_sim:
            sim, sim_port, sim_log = start_simulator(tmp, dialect, sim_args, sim_port)
            if sim_setup is not None:
                sim_setup(f"http://127.0.0.1:{sim_port}")
        ua_port, health_port = free_port(), free_port()
        sim_base = f"http://127.0.0.1:{sim_port}"
        sim_url = sim_base + {"dp": "", "restservice": "/WinCCRestService", "unified": "/graphql"}[dialect]
        hashes = _hashes()
        base: dict[str, Any] = {
            "wincc": {
                "url": sim_url,
                "dialect": dialect,
                "auth": {"mode": "basic", "username": "opcua", "password_env": "WINCC_PASSWORD"},
                "timeouts": {"connect_s": 2, "read_s": 5, "write_s": 5},
                "retry": {"attempts": 2, "backoff_s": 0.1, "max_backoff_s": 1},
                "browse_snapshot": str(tmp / "last-browse.xml"),
            },
            "opcua": {
                "endpoint": f"opc.tcp://127.0.0.1:{ua_port}/wincc",
                "security_policies": ["None"],
                "users": [{"name": r, "password_hash": hashes[r], "role": r} for r in ("reader", "operator", "admin")],
                "anonymous": "read",
                "pki_dir": str(tmp / "pki"),
                "auto_accept_client_certs": True,
            },
            "sync": {
                "interval_ms": 200,
                "poll_groups_ms": [200, 1000, 5000],
                "idle_interval_ms": 1000,
                "max_backoff_s": 1,
            },
            "alarms": {"poll_ms": 500},
            "health": {"listen": f"127.0.0.1:{health_port}"},
        }
        cfg = _merge(base, config or {})
        cfg_path = tmp / "bridge.yaml"
        cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        log = tmp / "bridge.log"
        env = {**os.environ, "WINCC_PASSWORD": WINCC_PASSWORD}
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "--config", str(cfg_path), "--log-level", log_level],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
        )
        stack = Stack(
            dialect=dialect,
            endpoint=cfg["opcua"]["endpoint"],
            sim_base=sim_base,
            sim_url=sim_url,
            health_url=f"http://127.0.0.1:{health_port}",
            config=cfg,
            config_path=cfg_path,
            log_path=log,
            sim_log_path=sim_log,
            bridge=proc,
            sim=sim,
        )
        stacks.append(stack)
        _wait(stack.ready if wait_ready else lambda: _healthz(stack), proc, log, 90, "bridge")
        return stack

    yield start
    for s in stacks:
        s.stop()


def _healthz(stack: Stack) -> bool:
    try:
        return httpx.get(stack.health_url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


# ---- the search for secrets in every log of the run -------------------------------------------------------------
def find_secrets(text: str, secrets: Iterable[str] = TEST_SECRETS) -> list[str]:
    return [secret for secret in secrets if secret in text]


def log_files(root: Path) -> list[Path]:
    """Every log a test run leaves under `root`: subprocess logs and outputs (*.log, *.out), at any depth. Symlinks
    are not followed (pytest links `<name>current` to the last directory of each name)."""
    return sorted(
        Path(d) / f
        for d, _, files in os.walk(root)
        for f in files
        if f.endswith((".log", ".out")) and not (Path(d) / f).is_symlink()
    )


def secrets_in_logs(root: Path, secrets: Iterable[str] = TEST_SECRETS) -> list[tuple[Path, str]]:
    secrets = list(secrets)
    return [
        (path, secret)
        for path in log_files(root)
        for secret in find_secrets(path.read_text(encoding="utf-8", errors="replace"), secrets)
    ]


def masked(secret: str) -> str:
    """How a hit is reported: enough to find the secret in TEST_SECRETS, without printing it whole."""
    return f"{secret[:2]}...({len(secret)} chars)"


class SecretScan:
    """Registered for the whole run (not only this folder): searches the captured log, stdout and stderr of every
    test as it finishes, and at the end every log file under pytest's basetemp, for TEST_SECRETS. A hit fails the
    run (exit status 1) and is listed in the terminal summary."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.hits: list[str] = []
        self.reports = 0

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.reports += 1
        for what, text in (("log", report.caplog), ("stdout", report.capstdout), ("stderr", report.capstderr)):
            for secret in find_secrets(text):
                self.hits.append(f"{report.nodeid} ({report.when}): captured {what} contains {masked(secret)}")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        factory = getattr(self.config, "_tmp_path_factory", None)  # what the tmp_path fixtures use
        basetemp = factory.getbasetemp() if factory is not None else None
        if basetemp is not None:
            self.hits += [f"{path} contains {masked(secret)}" for path, secret in secrets_in_logs(basetemp)]
        if self.hits:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.hits:
            terminalreporter.section("secrets found in log output", red=True)
            for hit in self.hits:
                terminalreporter.line(hit)


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("wincc-secret-scan"):
        config.pluginmanager.register(SecretScan(config), "wincc-secret-scan")
