"""No password, token or other secret of the test suite in any log output of the run.

Where the search looks: every bridge and simulator subprocess log (and the demo's output) under pytest's
basetemp, and the captured log/stdout/stderr of every in-process test (through the `SecretScan` plugin of
tests/integration/conftest.py, which repeats the whole search when the run ends and fails the run on a hit).
What it looks for: `TEST_SECRETS`, checked here to list every secret literal the test files define, plus the
session tokens the simulator handed to a bridge running at --log-level debug through a login, a failed login, a
token login (and a forced re-login) to WinCC and a write. A negative control proves the search can fail.
"""

from __future__ import annotations

import ast
import asyncio
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import wait_until
from tests.integration.conftest import (
    TEST_PASSWORDS,
    TEST_SECRETS,
    WRONG_PASSWORD,
    SecretScan,
    find_secrets,
    log_files,
    secrets_in_logs,
    start_simulator,
)

TESTS = Path(__file__).resolve().parents[1]
_SECRET_NAME = re.compile(r"(?i)(password|passwd|secret|token|(^|_)pw$)")
_URL_PASSWORD = re.compile(r"opc\.tcp://[^:/@\s]+:([^@\s{}]+)@")
_MIN_LEN = 6  # shorter literals (e.g. "x", "nope") are too likely to occur in a log by chance


def _secret_literals(root: Path) -> list[tuple[str, int, str]]:
    """String literals the test files bind to a secret-like name: `PASSWORD = "..."`, `password="..."`,
    `{"token": "..."}`, `monkeypatch.setenv("X_PW", "...")`, and passwords inside `opc.tcp://user:pw@host` URLs.
    Names of env vars/files (`*_env`, `*_file`) are not secrets."""
    found: list[tuple[str, int, str]] = []
    for path in sorted(root.rglob("*.py")):
        if "node_modules" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found += [
                    (str(path.relative_to(root)), getattr(node, "lineno", 0), pw)
                    for pw in _URL_PASSWORD.findall(node.value)
                    if len(pw) >= _MIN_LEN
                ]
            pairs: list[tuple[str, ast.AST]] = []
            if isinstance(node, ast.Assign):
                pairs = [(getattr(t, "id", getattr(t, "attr", "")), node.value) for t in node.targets]
            elif isinstance(node, ast.AnnAssign) and node.value is not None:
                pairs = [(getattr(node.target, "id", getattr(node.target, "attr", "")), node.value)]
            elif isinstance(node, ast.Call):
                pairs = [(k.arg or "", k.value) for k in node.keywords]
                if (
                    isinstance(node.func, ast.Attribute)
                    and node.func.attr == "setenv"
                    and len(node.args) == 2
                    and isinstance(node.args[0], ast.Constant)
                ):
                    pairs.append((str(node.args[0].value), node.args[1]))
            elif isinstance(node, ast.Dict):
                pairs = [
                    (k.value if isinstance(k, ast.Constant) and isinstance(k.value, str) else "", v)
                    for k, v in zip(node.keys, node.values, strict=True)
                ]
            for name, value in pairs:
                if (
                    _SECRET_NAME.search(name)
                    and not name.lower().endswith(("_env", "_file"))
                    and isinstance(value, ast.Constant)
                    and isinstance(value.value, str)
                    and len(value.value) >= _MIN_LEN
                ):
                    found.append((str(path.relative_to(root)), node.lineno, value.value))
    return found


def test_every_secret_of_the_suite_is_listed() -> None:
    literals = _secret_literals(TESTS)
    assert len(literals) >= 5  # the scan does see the suite's secrets
    missing = [(f, line) for f, line, value in literals if value not in TEST_SECRETS]
    assert missing == [], f"add these secrets to TEST_SECRETS in tests/integration/conftest.py: {missing}"


def test_the_search_finds_a_planted_password(tmp_path: Path) -> None:
    """Negative control: a password in a nested log file, and in a test's captured log, is found and fails the
    run. The planted file is removed again, so the real end-of-run search stays clean."""
    planted = tmp_path / "stack-dp7" / "bridge.log"
    planted.parent.mkdir()
    planted.write_text(f"2026-01-01 INFO    bridge: connected\nuser=operator pw={TEST_PASSWORDS['operator']}\n")
    try:
        assert secrets_in_logs(tmp_path) == [(planted, TEST_PASSWORDS["operator"])]
        config = SimpleNamespace(_tmp_path_factory=SimpleNamespace(getbasetemp=lambda: tmp_path))
        scan = SecretScan(config)  # type: ignore[arg-type]
        scan.pytest_runtest_logreport(
            SimpleNamespace(  # type: ignore[arg-type]
                nodeid="tests/x.py::t", when="call", caplog=f"login with {WRONG_PASSWORD}", capstdout="", capstderr=""
            )
        )
        session = SimpleNamespace(exitstatus=pytest.ExitCode.OK)
        scan.pytest_sessionfinish(session)  # type: ignore[arg-type]
        assert session.exitstatus == pytest.ExitCode.TESTS_FAILED
        assert len(scan.hits) == 2 and str(planted) in scan.hits[1]
        assert all(TEST_PASSWORDS["operator"] not in h and WRONG_PASSWORD not in h for h in scan.hits)
    finally:
        planted.unlink()
    assert secrets_in_logs(tmp_path) == []


class Relay:
    """A TCP relay between the bridge and the simulator that keeps what the simulator answered, so the test
    learns the session tokens the bridge got (the simulator makes random ones)."""

    _MAX_KEPT = 8 << 20

    def __init__(self, target_port: int) -> None:
        self._target = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._answers = bytearray()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(("127.0.0.1", self._target), timeout=10)
            threading.Thread(target=self._pump, args=(conn, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, conn, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, keep: bool) -> None:
        try:
            while data := src.recv(65536):
                if keep:
                    with self._lock:
                        if len(self._answers) < self._MAX_KEPT:
                            self._answers += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def tokens(self) -> set[str]:
        with self._lock:
            return {t.decode() for t in re.findall(rb'"token"\s*:\s*"([^"]+)"', bytes(self._answers))}

    def close(self) -> None:
        self._listener.close()


@dataclass
class DebugRun:
    bridge_log: str
    sim_log: str
    tokens: set[str]


@pytest.fixture(scope="module")
def debug_run(bridge_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> DebugRun:
    """A bridge at --log-level debug through a login, a write, a failed login and a forced WinCC re-login, run once
    for the module: the tests below check its logs whatever order they run in."""
    return asyncio.run(_debug_run(bridge_stack, tmp_path_factory))


async def _debug_run(bridge_stack: Any, tmp_path_factory: pytest.TempPathFactory) -> DebugRun:
    sim_dir = tmp_path_factory.mktemp("debug-run-sim")
    sim, sim_port, sim_log = start_simulator(sim_dir, "dp", ("--auth", "token"))
    relay = Relay(sim_port)
    sim_base = f"http://127.0.0.1:{sim_port}"

    def logins() -> int:
        return httpx.get(sim_base + "/_sim/stats", timeout=5).json()["requests"].get("POST /api/auth/login", 0)

    try:
        stack = bridge_stack(
            "dp",
            start_sim=False,
            log_level="debug",
            config={
                "wincc": {
                    "url": f"http://127.0.0.1:{relay.port}",
                    "auth": {"mode": "token", "username": "opcua", "password_env": "WINCC_PASSWORD"},
                }
            },
        )
        # a login and a write
        async with Client(stack.url_for("operator"), timeout=10) as client:
            ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
            (code,) = await client.uaclient.write(
                ua.WriteParameters(
                    NodesToWrite=[
                        ua.WriteValue(
                            NodeId=ua.NodeId("System1.Tank1.LevelSetpoint", ns),
                            AttributeId=ua.AttributeIds.Value,
                            Value=ua.DataValue(ua.Variant(6.5, ua.VariantType.Float)),
                        )
                    ]
                )
            )
            assert code.is_good()
        # a failed login
        host = stack.endpoint.removeprefix("opc.tcp://")
        with pytest.raises(ua.UaStatusCodeError):
            await Client(f"opc.tcp://operator:{WRONG_PASSWORD}@{host}", timeout=10).connect()
        # every WinCC token becomes invalid: the bridge logs in to WinCC again (the 401 path at debug level)
        first = logins()
        assert first >= 1
        httpx.post(sim_base + "/_sim/faults", json={"mode": "expire_sessions"}, timeout=5).raise_for_status()
        await wait_until(lambda: logins() > first, timeout=20, what="a second WinCC login")
        await wait_until(stack.ready, timeout=20, what="the bridge connected again")
        assert stack.stop_bridge() == 0
    finally:
        relay.close()
        sim.terminate()
        sim.wait(10)

    return DebugRun(stack.log_text(), sim_log.read_text(errors="replace"), relay.tokens())


def test_debug_run_logs_no_secret(debug_run: DebugRun) -> None:
    assert len(debug_run.tokens) >= 2  # the relay saw both logins' tokens
    bridge_log = debug_run.bridge_log
    # it really was a debug run through every step
    assert " DEBUG " in bridge_log and "failed login for user 'operator'" in bridge_log
    assert "bridge.audit.write: write user=operator tag='System1.Tank1.LevelSetpoint'" in bridge_log
    assert "user 'operator' logged in as operator" in bridge_log
    for name, text in (("bridge log", bridge_log), ("simulator log", debug_run.sim_log)):
        assert find_secrets(text, [*TEST_SECRETS, *debug_run.tokens]) == [], name


def test_no_secret_in_any_log_of_the_run(
    debug_run: DebugRun, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> None:
    """Everything the run produced so far: all subprocess logs under basetemp, and the captured output of every
    test that has finished (the plugin repeats this at the end of the run for what comes later)."""
    basetemp = tmp_path_factory.getbasetemp()
    files = log_files(basetemp)
    assert any(p.name == "bridge.log" for p in files)  # the debug run's log at least
    assert secrets_in_logs(basetemp) == []
    scan = request.config.pluginmanager.get_plugin("wincc-secret-scan")
    assert isinstance(scan, SecretScan) and scan.reports > 0 and scan.hits == []
