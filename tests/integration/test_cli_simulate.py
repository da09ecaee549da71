"""`wincc-opcua-bridge simulate --port N [--dialect ...]`, the fixed CLI (README, "Commands"), as a user runs it: the
simulator answers over HTTP in the dialect asked for, `--help` lists its own options, and Ctrl+C stops it (exit 0)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_until_sync

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, **kw: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", *args],
        cwd=ROOT,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        **kw,
    )  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("dialect", "path"), [("dp", "/api/dp/browse?path="), ("restservice", "/WinCCRestService/tagManagement/Variables")]
)
def test_simulate_serves_the_dialect_and_stops_on_ctrl_c(dialect: str, path: str) -> None:
    port = free_port()
    proc = cli("simulate", "--port", str(port), "--dialect", dialect, "--tags", "50")
    try:

        def up() -> httpx.Response | None:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2)
            except httpx.HTTPError:
                return None

        answer = wait_until_sync(up, timeout=30, what="the simulator to answer")
        assert answer.status_code == 200
        body = answer.json()
        assert ("items" in body) if dialect == "dp" else ("variables" in body or isinstance(body, list))
        assert httpx.get(f"http://127.0.0.1:{port}/_sim/health").json()["dialect"] == dialect
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_simulate_help_lists_the_simulator_options_and_bad_flags_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "simulate", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and "--dialect" in done.stdout and "--tags" in done.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "bridge", "simulate", "--port", "1", "--no-such-flag"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "--no-such-flag" in bad.stderr
