"""Alarms & Conditions benchmarks (issue 19), each with the simulator, the bridge and one A&C client
(bench/alarm_client.py) in separate processes:

- refresh: 10,000 active conditions; ConditionRefresh from the call to RefreshEndEvent at the client, and how many
  conditions arrived in between (goal: < 2 s, all 10,000).
- changes: about 1,000 alarm state changes per second driven through the simulator's control API (distinct alarms
  each 250 ms, so no alarm changes twice within one poll); condition events received vs changes made (goal: none
  lost).
- polling CPU: a bridge on 10k tags at 1 %/s, with alarm polling off and on (100 active alarms, poll every 1 s);
  the added CPU (goal: under 5 % of a core).

    python -m bench.alarms [--quick]        (also `python -m bench --only alarms`)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.procstat import CpuWindow
from bench.results import Goal, Results
from bench.run import PY, ROOT, _measure, _tags_file, _wait_http, bridge_config, process, scrape, simulator

__all__ = ["scenario_alarms"]


@contextmanager
def alarm_bridge(tmp: Path, sim: str, alarms: dict[str, Any]):
    cfg_path, endpoint, health = bridge_config(tmp, sim, "dp")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["alarms"] = alarms
    cfg_path.write_text(yaml.safe_dump(cfg))
    with process(
        [PY, "-m", "bridge", "--log-level", "warning", "run", "--config", str(cfg_path)], cfg_path.with_suffix(".log")
    ) as p:
        _wait_http(health + "/readyz", p, 300)
        yield p, endpoint, health


def _client(endpoint: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [PY, "-m", "bench.alarm_client", "--endpoint", endpoint, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        text=True,
    )


def _report(client: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = client.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if client.returncode != 0 or not lines:
        raise RuntimeError(f"alarm client failed: {err[-2000:]}")
    return json.loads(lines[-1])


def _wait_metric(health: str, name: str, value: float, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = scrape(health).get(name)
        if got is not None and got >= value:
            return got
        time.sleep(0.25)
    raise RuntimeError(f"{name} did not reach {value} in {timeout} s")


def scenario_refresh(res: Results, tmp: Path, count: int) -> None:
    with simulator(tmp, count, 0.0) as sim:
        ids = [f"G{n}" for n in range(1, count + 1)]
        httpx.post(sim + "/_sim/alarms", json={"generate": count, "raise": ids}, timeout=60).raise_for_status()
        with alarm_bridge(tmp, sim, {"enabled": True, "poll_ms": 1000}) as (p, endpoint, health):
            t0 = time.monotonic()
            _wait_metric(health, "alarm_conditions", count, 120)
            built_s = time.monotonic() - t0
            client = _client(endpoint, "refresh")
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "calling"
            window = CpuWindow(p.pid)
            window.start()
            report = _report(client, 120)
            window.stop()
    name = f"A&C refresh {count // 1000}k"
    res.add(name, "bridge start -> conditions built", built_s, None, "s")
    res.add(name, "ConditionRefresh -> RefreshEnd at client", report["refresh_s"], None, "s", Goal("bridge", "<=", 2.0))
    res.add(name, "bridge CPU during the refresh", window.cores * window.seconds, None, "s", Goal("bridge", "<=", 2.0))
    res.add(name, "conditions replayed", report["conditions"], count, "", Goal("ratio", ">=", 1.0))


def _drive(sim: str, ids: list[str], per_batch: int, period_s: float, seconds: float, done: list[int]) -> None:
    """Toggle `per_batch` distinct alarms every `period_s` (raise if inactive, else clear), for `seconds`."""
    active: set[str] = set()
    cursor, t_next, t_end = 0, time.monotonic(), time.monotonic() + seconds
    with httpx.Client(timeout=10) as http:
        while time.monotonic() < t_end:
            batch = [ids[(cursor + i) % len(ids)] for i in range(per_batch)]
            cursor += per_batch
            up = [a for a in batch if a not in active]
            down = [a for a in batch if a in active]
            http.post(sim + "/_sim/alarms", json={"raise": up, "clear": down}).raise_for_status()
            active.symmetric_difference_update(batch)
            done[0] += len(batch)
            t_next += period_s
            time.sleep(max(0.0, t_next - time.monotonic()))


def scenario_changes(res: Results, tmp: Path, rate: int, seconds: float) -> None:
    period, per_batch = 0.25, rate // 4
    pool = per_batch * 16  # each alarm changes every 4 s: never twice within one poll, even on a loaded machine
    ids = [f"G{n}" for n in range(1, pool + 1)]
    with simulator(tmp, pool, 0.0) as sim:
        httpx.post(sim + "/_sim/alarms", json={"generate": pool, "raise": ids}, timeout=60).raise_for_status()
        with alarm_bridge(tmp, sim, {"enabled": True, "poll_ms": 250}) as (p, endpoint, health):
            # warm-up: every condition built once and left went-unacknowledged (retained), so the run below
            # measures state changes, not node building
            _wait_metric(health, "alarm_conditions", pool, 120)
            httpx.post(sim + "/_sim/alarms", json={"clear": ids}, timeout=60).raise_for_status()
            _wait_until_metric(health, "alarms_active", 0, 120)
            client = _client(endpoint, "count", "--seconds", str(seconds + 5))
            assert client.stdout is not None
            assert client.stdout.readline().strip() == "start"
            done = [0]
            window = CpuWindow(p.pid)
            window.start()
            t0 = time.monotonic()
            _drive(sim, ids, per_batch, period, seconds, done)
            driven_rate = done[0] / (time.monotonic() - t0)
            report = _report(client, seconds + 60)
            cpu = window.stop()
    name = f"A&C {rate}/s changes"
    res.add(name, "state changes made at WinCC", done[0], None, "", f"{driven_rate:.0f}/s")
    res.add(name, "condition events at the client", report["events"], done[0], "", Goal("ratio", ">=", 1.0))
    res.add(name, "bridge CPU", cpu, None, "cores")


def _wait_until_metric(health: str, name: str, value: float, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while scrape(health).get(name) != value:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not become {value} in {timeout} s")
        time.sleep(0.25)


def scenario_polling_cpu(res: Results, tmp: Path, seconds: float) -> None:
    """The sync scenario's load (10k tags at 1 %/s, every tag subscribed by one client) with alarm polling off and
    on (100 active alarms, one REST read a second)."""
    figures = {}
    with simulator(tmp, 10_000, 0.01) as sim:
        tags_file, _ = asyncio.run(_tags_file(tmp, sim))
        ids = [f"G{n}" for n in range(1, 101)]
        httpx.post(sim + "/_sim/alarms", json={"generate": 100, "raise": ids}, timeout=60).raise_for_status()
        for enabled in (False, True):
            with alarm_bridge(tmp, sim, {"enabled": enabled, "poll_ms": 1000}) as (p, endpoint, health):
                if enabled:
                    _wait_metric(health, "alarm_conditions", 100, 60)
                figures[enabled] = _measure("asyncua", endpoint, tags_file, seconds, p.pid)["cpu"]
    name = "A&C polling 10k tags"
    res.add(name, "bridge CPU, alarms on / off", figures[True], figures[False], "cores")
    res.add(
        name, "CPU added by alarm polling", figures[True] - figures[False], None, "cores", Goal("bridge", "<=", 0.05)
    )


def scenario_alarms(res: Results, tmp: Path, quick: bool) -> None:
    scenario_refresh(res, tmp, 10_000)
    scenario_changes(res, tmp, 1000, 5 if quick else 20)
    scenario_polling_cpu(res, tmp, 10 if quick else 30)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m bench.alarms")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", default="refresh,changes,cpu")
    args = ap.parse_args()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="bench-alarms-") as d:
        only = set(args.only.split(","))
        if "refresh" in only:
            scenario_refresh(results, Path(d), 10_000)
        if "changes" in only:
            scenario_changes(results, Path(d), 1000, 5 if args.quick else 20)
        if "cpu" in only:
            scenario_polling_cpu(results, Path(d), 10 if args.quick else 30)
