"""The logging flags end to end: `python -m bridge run` in its own process against a WinCC that is not there
(127.0.0.1, a closed port), so it logs warnings and info lines while it keeps trying; then SIGTERM.

--log-format json: every line of the output is one JSON object with time, level, logger and message.
--log-level warning: no info line, the warnings still there. The flags work before and after the command.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helpers import free_port, wait_until_sync

WINCC_PW = "cli-Pw-6f2b"  # listed in tests/integration/conftest.py TEST_SECRETS
HUMAN_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")


@dataclass
class Run:
    proc: subprocess.Popen[bytes]
    log: Path
    health: str

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"no exit 20 s after SIGTERM:\n{self.text()[-3000:]}") from None


def _closed_port() -> int:
    return free_port()  # bound and released at once: nothing listens there


def _config(tmp: Path) -> tuple[Path, str]:
    health = f"127.0.0.1:{free_port()}"
    cfg: dict[str, Any] = {
        "wincc": {
            "url": f"http://127.0.0.1:{_closed_port()}",
            "auth": {"mode": "basic", "username": "opcua", "password_env": "CLI_TEST_PW"},
            "timeouts": {"connect_s": 1, "read_s": 1, "write_s": 1},
            "retry": {"attempts": 1, "backoff_s": 0.1, "max_backoff_s": 1},
            "browse_snapshot": str(tmp / "last-browse.xml"),
        },
        "opcua": {
            "endpoint": f"opc.tcp://127.0.0.1:{free_port()}/wincc",
            "security_policies": ["None"],
            "anonymous": "read",
            "pki_dir": str(tmp / "pki"),
        },
        "sync": {"max_backoff_s": 1},
        "health": {"listen": health},
    }
    path = tmp / "bridge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path, f"http://{health}"


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Any]:
    runs: list[Run] = []

    def run(*flags_before: str, after: tuple[str, ...] = ()) -> Run:
        cfg, health = _config(tmp_path)
        log = tmp_path / f"bridge-{len(runs)}.log"
        env = {**os.environ, "CLI_TEST_PW": WINCC_PW}
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", *flags_before, "run", "--config", str(cfg), *after],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
        )
        r = Run(proc, log, health)
        runs.append(r)
        return r

    yield run
    for r in runs:
        if r.proc.poll() is None:
            r.proc.kill()
            r.proc.wait(5)


def _up_and_retrying(run: Run) -> bool:
    """Started (health answers) and has failed to reach WinCC at least once since then."""
    assert run.proc.poll() is None, f"bridge exited with {run.proc.returncode}:\n{run.text()[-3000:]}"
    try:
        up = httpx.get(run.health + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
    return up and "WinCC browse failed at start" in run.text()


def test_json_format_one_object_per_line(start: Any) -> None:
    run = start(after=("--log-format", "json"))
    wait_until_sync(lambda: _up_and_retrying(run), timeout=60, what="bridge up, WinCC unreachable")
    assert run.stop() == 0
    lines = [line for line in run.text().splitlines() if line.strip()]
    entries = []
    for line in lines:
        entry = json.loads(line)  # any line that is not one JSON object fails here
        assert isinstance(entry, dict) and {"time", "level", "logger", "message"} <= set(entry), line
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"]), line
        entries.append(entry)
    seen = {(e["level"], e["logger"]) for e in entries}
    assert ("warning", "bridge.app") in seen and ("info", "bridge.runtime.health") in seen
    failed = [e for e in entries if e["message"].startswith("WinCC browse failed at start")]
    assert failed and "/api/dp/browse" in failed[0]["message"]
    assert entries[-1]["message"] == "bridge stopped"  # SIGTERM: an orderly stop, no traceback after it
    assert WINCC_PW not in run.text()


def test_log_level_warning_drops_info_lines_human_format(start: Any) -> None:
    run = start("--log-level", "warning")
    wait_until_sync(lambda: _up_and_retrying(run), timeout=60, what="bridge up, WinCC unreachable")
    assert run.stop() == 0
    lines = [line for line in run.text().splitlines() if line.strip()]
    assert lines and all(HUMAN_LINE.match(line) for line in lines), lines
    levels = {HUMAN_LINE.match(line).group(1) for line in lines}  # type: ignore[union-attr]
    assert levels == {"WARNING"}, lines  # the health and endpoint info lines and "bridge stopped" are filtered
    assert any("bridge.app: WinCC browse failed at start" in line for line in lines)


def test_config_error_in_json_format_is_one_json_object(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("wincc:\n  url: http://127.0.0.1:1\n  acknowledge: {method: POST}\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "check-config", str(bad), "--log-format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and {"time", "logger"} <= set(entry)
    assert "line 3" in entry["message"] and "wincc.acknowledge.path" in entry["message"]


def test_check_config_json_format_keeps_stdout_yaml(tmp_path: Path) -> None:
    cfg, _ = _config(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bridge", "--log-format", "json", "--log-level", "debug", "check-config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CLI_TEST_PW": WINCC_PW},
    )
    assert done.returncode == 0, done.stderr
    assert yaml.safe_load(done.stdout)["wincc"]["auth"]["password_env"] == "CLI_TEST_PW"
    assert all(isinstance(json.loads(line), dict) for line in done.stderr.splitlines() if line.strip())
    assert WINCC_PW not in done.stdout + done.stderr
