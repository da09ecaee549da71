"""Benchmarks of the bridge, each next to a bare-asyncua baseline measured in the same run.

    python -m bench [--quick] [--json FILE] [--only sync,startup,...]

Every process under test is separate: the simulator, the server (bridge or baseline) and one subscribed client.
CPU and RSS are read from /proc for the server process only. These machines are noisy, so the ratios (bridge /
baseline, same run) are the figures to compare across runs, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.history_counter import raw_history_params, read_counted
from bench.naming import browse_tags, save_tags
from bench.procstat import CpuWindow, peak_rss_bytes, rss_bytes
from bench.results import Goal, Results, commit
from bridge.opcua.security.passwords import hash_password
from bridge.runtime.loop_lag import LAG_BOUNDS_MS
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
BENCH_PASSWORD = "bench-only-pw"  # a throw-away user of the benchmark's own bridge on 127.0.0.1
PY = sys.executable
TAGS_NS = "urn:wincc-opcua-bridge:tags"
HISTORY_TAG = "System1.Gen.G000.Tag000000"  # archived at 1 value per second by the simulator


# ---- processes -------------------------------------------------------------------------------------------------
def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@contextmanager
def process(cmd: list[str], log: Path, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=log.parent)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


SIMULATOR_PIDS: dict[int, int] = {}  # port -> pid of the running simulators, for their CPU


@contextmanager
def simulator(tmp: Path, tags: int, change_rate: float, dialect: str = "dp") -> Iterator[str]:
    port = free_port()
    cmd = [
        PY,
        "-m",
        "bridge.simulator",
        "--port",
        str(port),
        "--dialect",
        dialect,
        "--tags",
        str(tags),
        "--change-rate",
        str(change_rate),
    ]
    with process(cmd, tmp / f"sim-{port}.log") as proc:
        _wait_http(f"http://127.0.0.1:{port}/_sim/health", proc, 120)
        SIMULATOR_PIDS[port] = proc.pid
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            SIMULATOR_PIDS.pop(port, None)


DIALECT_PATHS = {"dp": "", "restservice": "/WinCCRestService", "unified": "/graphql"}


def dialect_url(sim_base: str, dialect: str) -> str:
    """The simulator's base URL as the dialect's client is given it."""
    return sim_base + DIALECT_PATHS[dialect]


def bridge_config(
    tmp: Path, sim_base: str, dialect: str, interval_ms: int = 1000, sync: dict[str, Any] | None = None
) -> tuple[Path, str, str]:
    ua_port, health_port = free_port(), free_port()
    cfg = {
        "wincc": {
            "url": dialect_url(sim_base, dialect),
            "dialect": dialect,
            "browse_snapshot": None,
            "max_concurrency": 4,
        },
        "opcua": {
            "endpoint": f"opc.tcp://127.0.0.1:{ua_port}/wincc",
            "security_policies": ["None"],
            "anonymous": "read",
            "pki_dir": str(tmp / "pki"),
            "auto_accept_client_certs": True,
            "users": [{"name": "bench", "password_hash": hash_password(BENCH_PASSWORD), "role": "operator"}],
        },
        "sync": {
            "interval_ms": interval_ms,
            "batch_size": 500,
            "poll_groups_ms": [interval_ms, 5000],
            "idle_interval_ms": 10000,
            **(sync or {}),
        },
        "health": {"listen": f"127.0.0.1:{health_port}"},
    }
    path = tmp / f"bridge-{ua_port}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path, cfg["opcua"]["endpoint"], f"http://127.0.0.1:{health_port}"


@dataclass
class BridgeProc:
    proc: subprocess.Popen[bytes]
    endpoint: str
    health: str
    ready_s: float  # process start -> /readyz answers (the address space is browsable)
    log: Path
    started_wall: float  # time.time() at process start, to place the log's timestamps


@contextmanager
def bridge(
    tmp: Path, sim_base: str, dialect: str = "dp", sync: dict[str, Any] | None = None, env: dict[str, str] | None = None
) -> Iterator[BridgeProc]:
    cfg, endpoint, health = bridge_config(tmp, sim_base, dialect, sync=sync)
    log = cfg.with_suffix(".log")
    wall = time.time()
    # info in JSON lines: the start-up scenario reads the browse and build times from the log
    cmd = [PY, "-m", "bridge", "--log-level", "info", "--log-format", "json", "run", "--config", str(cfg)]
    with process(cmd, log, env=env) as p:
        ready_s = _wait_http(health + "/readyz", p, 300)
        yield BridgeProc(p, endpoint, health, ready_s, log, wall)


@contextmanager
def baseline(
    tmp: Path, tags_file: Path, change_rate: float
) -> Iterator[tuple[subprocess.Popen[bytes], str, dict[str, Any]]]:
    port = free_port()
    log = tmp / f"baseline-{port}.log"
    t0 = time.monotonic()
    with process(
        [
            PY,
            "-m",
            "bench.baseline_server",
            "--port",
            str(port),
            "--tags-file",
            str(tags_file),
            "--change-rate",
            str(change_rate),
        ],
        log,
    ) as p:
        deadline = time.monotonic() + 600
        while '"ready"' not in (text := log.read_text()):
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baseline server failed: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        info = json.loads(next(line for line in text.splitlines() if '"ready"' in line))
        info["ready_s"] = time.monotonic() - t0
        yield p, f"opc.tcp://127.0.0.1:{port}/wincc", info


# ---- what a scenario reads from the processes -------------------------------------------------------------------
def scrape(health: str) -> dict[str, float]:
    """The bridge's /metrics as name -> value (wincc_bridge_ prefix dropped)."""
    out: dict[str, float] = {}
    for line in httpx.get(health + "/metrics", timeout=10).text.splitlines():
        if line.startswith("wincc_bridge_"):
            name, value = line.split(" ", 1)
            out[name.removeprefix("wincc_bridge_")] = float(value)
    return out


def lag_p99(before: dict[str, float], after: dict[str, float]) -> float | None:
    """p99 of the event-loop lag between two scrapes, from the cumulative counters of bridge/runtime/loop_lag.py:
    the smallest bound that at most 1 % of the timer's ticks exceeded (seconds; a bound, not interpolated)."""
    ticks = after.get("event_loop_ticks_total", 0) - before.get("event_loop_ticks_total", 0)
    if ticks <= 0:
        return None
    for ms in LAG_BOUNDS_MS:
        key = f"event_loop_lag_over_{ms}ms_total"
        if after.get(key, 0) - before.get(key, 0) <= ticks / 100:
            return ms / 1000
    return math.inf


def connections(port: int) -> set[int]:
    """Peer ports of the established TCP connections to a local listening port (the simulator's): the set
    changing between two looks means connections were opened anew instead of kept alive."""
    peers: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, remote, state = fields[1], fields[2], fields[3]
            if state == "01" and int(local.rsplit(":", 1)[1], 16) == port:
                peers.add(int(remote.rsplit(":", 1)[1], 16))
    return peers


def subscriber_cmd(
    client: str,
    endpoint: str,
    tags_file: Path,
    seconds: float,
    publish_ms: float,
    warmup: float = 3,
    go_file: Path | None = None,
) -> list[str]:
    if client == "node":
        args = {
            "endpoint": endpoint,
            "tagsFile": str(tags_file),
            "seconds": seconds,
            "warmup": warmup,
            "samplingMs": 1000,
            "publishMs": publish_ms,
            "signalWindow": True,
            **({"goFile": str(go_file)} if go_file is not None else {}),
        }
        return ["node", str(ROOT / "bench" / "subscriber.js"), json.dumps(args)]
    return [
        PY,
        "-m",
        "bench.subscriber",
        "--endpoint",
        endpoint,
        "--tags-file",
        str(tags_file),
        "--seconds",
        str(seconds),
        "--warmup",
        str(warmup),
        "--signal-window",
        "--publish-ms",
        str(publish_ms),
        *(["--go-file", str(go_file)] if go_file is not None else []),
    ]


def windowed(
    cmd: list[str],
    pid: int | None,
    on_start: Callable[[], None] = lambda: None,
    on_stop: Callable[[], None] = lambda: None,
    timeout: float = 600,
    on_subscribed: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Run a client that prints "start" when its measuring window opens and one JSON line when it closes; the CPU
    of `pid` (None: the client's own) over that window, in cores, comes back as "cpu" with the client's report.
    A client given a go file prints "subscribed" first and waits for it: `on_subscribed` runs then."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NODE_PATH": str(ROOT / "tests" / "interop" / "node_modules")}
    with tempfile.TemporaryFile() as err:
        client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, cwd=ROOT, text=True, env=env)
        window = CpuWindow(pid if pid is not None else client.pid)
        assert client.stdout is not None
        report: dict[str, Any] = {}
        for line in client.stdout:
            line = line.strip()
            if line == "subscribed":
                on_subscribed()
            elif line == "start":
                window.start()
                on_start()
            elif line.startswith("{"):
                cpu = window.stop()
                on_stop()
                report = json.loads(line)
                report["cpu"] = cpu
        client.wait(timeout)
        if client.returncode != 0 or not report:
            err.seek(0)
            raise RuntimeError(f"{cmd[0]} {cmd[1]} failed: {err.read().decode(errors='replace')[-2000:]}")
    return report


# ---- scenarios -------------------------------------------------------------------------------------------------
async def _tags_file(tmp: Path, sim_base: str, dialect: str = "dp") -> tuple[Path, int]:
    tags = await browse_tags(dialect_url(sim_base, dialect), dialect)
    path = tmp / f"tags-{len(tags)}.json"
    save_tags(tags, path)
    return path, len(tags)


def _measure(
    client: str,
    endpoint: str,
    tags_file: Path,
    seconds: float,
    pid: int,
    publish_ms: float = 500,
    on_start: Callable[[], None] = lambda: None,
    on_stop: Callable[[], None] = lambda: None,
    settled: Callable[[], None] | None = None,
) -> dict[str, float]:
    """One subscriber's window. `settled` (if given) returns once the server is at steady state with the client's
    items (a pushing WinCC has taken them all on); the window opens only then."""
    if settled is None:
        cmd = subscriber_cmd(client, endpoint, tags_file, seconds, publish_ms)
        report = windowed(cmd, pid, on_start, on_stop)
    else:
        with tempfile.TemporaryDirectory() as gate:
            go = Path(gate) / "go"
            cmd = subscriber_cmd(client, endpoint, tags_file, seconds, publish_ms, go_file=go)
            report = windowed(cmd, pid, on_start, on_stop, on_subscribed=lambda: (settled(), go.touch()))
    return _figures(report)


def _figures(report: dict[str, Any]) -> dict[str, float]:
    per_s = report["per_second"] or math.nan
    return {
        "per_second": per_s,
        "cpu": report["cpu"],
        "cpu_per_notif_us": report["cpu"] / per_s * 1e6,
        "p50": report.get("latency_p50_ms"),
        "p99": report.get("latency_p99_ms"),
    }


@dataclass
class Side:
    """One server of a paired measurement and what to do around its window."""

    endpoint: str
    pid: int
    on_start: Callable[[], None] = lambda: None
    on_stop: Callable[[], None] = lambda: None
    settled: Callable[[], None] | None = None


def _measure_paired(
    client: str, tags_file: Path, seconds: float, sides: list[Side], publish_ms: float = 500
) -> list[dict[str, float]]:
    """One subscriber per server, their windows open at the same moment (`--paired`): each client subscribes and
    warms up, each server settles, then both go at once. Both servers' CPU is then measured under the same machine
    conditions, so a slow minute of the machine (on these VMs 30 s windows of the same process differ by up to
    1.5x) moves both sides of the ratio alike. Only for loads far below the cores: the two servers share them."""
    barrier = threading.Barrier(len(sides), timeout=600)
    figures: list[dict[str, float] | None] = [None] * len(sides)
    errors: list[BaseException] = []
    with tempfile.TemporaryDirectory() as gate:

        def measure(i: int, side: Side) -> None:
            go = Path(gate) / f"go-{i}"

            def ready() -> None:
                try:
                    if side.settled is not None:
                        side.settled()
                    barrier.wait()
                except BaseException:
                    barrier.abort()  # the other side must not wait for this one
                    raise
                finally:
                    go.touch()  # the client finishes its window either way and exits

            cmd = subscriber_cmd(client, side.endpoint, tags_file, seconds, publish_ms, go_file=go)
            try:
                figures[i] = _figures(windowed(cmd, side.pid, side.on_start, side.on_stop, on_subscribed=ready))
            except BaseException as exc:
                errors.append(exc)
                barrier.abort()

        threads = [threading.Thread(target=measure, args=(i, side)) for i, side in enumerate(sides)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    if errors:  # the cause, not the other side's broken barrier
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])
    return [f for f in figures if f is not None]


def scenario_sync(
    res: Results,
    tmp: Path,
    n: int,
    rate: float,
    seconds: float,
    client: str = "asyncua",
    sync: dict[str, Any] | None = None,
    label: str = "",
    http: str = "aiohttp",
    dialect: str = "dp",
    paired: bool = False,
) -> None:
    name = f"sync {n // 1000}k @{rate:.0%}/s{label}"
    batch = int((sync or {}).get("batch_size", 500))
    pushed = dialect == "unified"  # WinCC pushes the subscribed tags: there is no poll to compare with
    with simulator(tmp, n, rate, dialect=dialect) as sim:
        sim_port = int(sim.rsplit(":", 1)[1])
        tags_file, total = asyncio.run(_tags_file(tmp, sim, dialect))
        if not paired:
            with baseline(tmp, tags_file, rate) as (p, endpoint, _):
                base = _measure(client, endpoint, tags_file, seconds, p.pid)
        poller = (
            {"cpu": math.nan}
            if pushed
            else windowed(
                [
                    PY,
                    "-m",
                    "bench.rest_poller",
                    "--url",
                    sim,
                    "--tags-file",
                    str(tags_file),
                    "--seconds",
                    str(seconds),
                    "--warmup",
                    "1",
                    "--batch-size",
                    str(batch),
                    "--transport",
                    http,
                ],
                None,
            )
        )
        httpx.post(sim + "/_sim/stats/reset")
        with bridge(tmp, sim, dialect=dialect, sync=sync, env={"WINCC_BRIDGE_HTTP": http}) as br:
            seen: dict[str, Any] = {}

            def opened() -> None:
                seen["m0"], seen["c0"] = scrape(br.health), connections(sim_port)

            def closed() -> None:
                seen["m1"], seen["c1"] = scrape(br.health), connections(sim_port)

            def all_pushed() -> None:
                # the push takes the client's items on batch by batch (100k: ~15 s); until then the rest is polled,
                # which is the ramp, not the steady state the window measures. Settled: every tag pushed, and no
                # REST read for 2.5 s (a poll cycle that started before the last tag was pushed has ended)
                t0 = time.monotonic()
                while scrape(br.health).get("pushed_tags", 0) < total:
                    if time.monotonic() - t0 > 300:
                        raise RuntimeError(f"the push did not take on {total} tags within 300 s")
                    time.sleep(0.2)
                seen["settle_s"] = time.monotonic() - t0
                while True:
                    reads = scrape(br.health).get("rest_reads_total", 0)
                    time.sleep(2.5)
                    if scrape(br.health).get("rest_reads_total", 0) == reads:
                        break
                    if time.monotonic() - t0 > 300:
                        raise RuntimeError("the bridge still polls 300 s after every tag is pushed")
                seen["quiet_s"] = time.monotonic() - t0

            settled = all_pushed if pushed else None
            if paired:
                with baseline(tmp, tags_file, rate) as (p, endpoint, _):
                    b, base = _measure_paired(
                        client,
                        tags_file,
                        seconds,
                        [Side(br.endpoint, br.proc.pid, opened, closed, settled), Side(endpoint, p.pid)],
                    )
            else:
                b = _measure(
                    client,
                    br.endpoint,
                    tags_file,
                    seconds,
                    br.proc.pid,
                    on_start=opened,
                    on_stop=closed,
                    settled=settled,
                )
            stats = httpx.get(sim + "/_sim/stats").json()
    m0, m1 = seen["m0"], seen["m1"]
    low = rate <= 0.01
    # saturated (every tag changing every second), issue 24 asks for twice bare asyncua's deliveries on one core
    saturated = rate >= 1.0 and n >= 50_000
    res.add(
        name,
        "notifications/s delivered",
        b["per_second"],
        base["per_second"],
        "1/s",
        Goal("ratio", ">=", 2.0) if saturated else None,
    )
    res.add(
        name, "server CPU", b["cpu"], base["cpu"], "cores", Goal("bridge", "<=", 0.25) if n == 100_000 and low else None
    )
    res.add(
        name,
        "CPU per notification",
        b["cpu_per_notif_us"],
        base["cpu_per_notif_us"],
        "us",
        Goal("ratio", "<=", 1.2 if pushed else 2.0) if low else None,
    )
    if not pushed:
        res.add(
            name,
            "CPU: bridge / (asyncua + bare REST poller)",
            b["cpu"],
            base["cpu"] + poller["cpu"],
            "cores",
            Goal("ratio", "<=", 1.0) if low else None,
        )
        res.add(name, "bare REST poller CPU", poller["cpu"], None, "cores")
    res.add(name, "latency p50 (publishing 500 ms)", b.get("p50"), base.get("p50"), "ms")
    res.add(name, "latency p99 (publishing 500 ms)", b.get("p99"), base.get("p99"), "ms")
    res.add(
        name,
        "late poll cycles in the window",
        m1.get("late_cycles_total", 0) - m0.get("late_cycles_total", 0),
        None,
        "",
        Goal("bridge", "<=", 0),
    )
    res.add(name, "event-loop lag p99 in the window", lag_p99(m0, m1), None, "s (bound)")
    res.add(
        name,
        "worst event-loop lag since start",
        m1.get("event_loop_lag_max_seconds"),
        None,
        "s",
        Goal("bridge", "<=", 0.25),
    )
    res.add(name, "longest GC pause since start", m1.get("gc_pause_max_seconds"), None, "s")
    res.add(
        name,
        "GC pauses in the window, in all",
        m1.get("gc_pause_seconds_total", 0) - m0.get("gc_pause_seconds_total", 0),
        None,
        "s",
    )
    cycles = m1.get("poll_cycles_total", 0) - m0.get("poll_cycles_total", 0)
    reads = m1.get("rest_reads_total", 0) - m0.get("rest_reads_total", 0)
    res.add(
        name,
        "REST reads per poll cycle",
        reads / cycles if cycles else None,
        math.ceil(total / batch),
        "",
        "ratio 1: one read per batch",
    )
    res.add(
        name,
        "TCP connections opened in the window",
        float(len(seen["c1"] - seen["c0"])),
        None,
        "",
        Goal("bridge", "<=", 0),
    )
    res.add(name, "TCP connections to WinCC at the end", float(len(seen["c1"])), None, "", "<= max_concurrency 4")
    sim_reads = sum(v for k, v in stats.get("requests", {}).items() if "ReadMultiple" in k or "tagValues" in k)
    res.add(name, "REST reads at the simulator (whole run)", float(sim_reads), None, "")
    if pushed:
        res.add(name, "every tag pushed, after subscribe + 3 s warmup", seen["settle_s"], None, "s")
        res.add(name, "no poll any more (2.5 s without a REST read), same origin", seen["quiet_s"], None, "s")
        res.add(
            name,
            "values pushed in the window",
            m1.get("pushed_values_total", 0) - m0.get("pushed_values_total", 0),
            None,
            "",
        )


def scenario_latency(res: Results, tmp: Path, n: int, rate: float, seconds: float, client: str = "asyncua") -> None:
    """End-to-end latency (change at WinCC -> notification at the client) with a 50 ms publishing interval, so the
    client's own publishing wait hardly counts: what is left is the poll interval (1 s) plus the bridge."""
    name = f"latency {n // 1000}k @{rate:.0%}/s"
    with simulator(tmp, n, rate) as sim:
        tags_file, _ = asyncio.run(_tags_file(tmp, sim))
        with baseline(tmp, tags_file, rate) as (p, endpoint, _):
            base = _measure(client, endpoint, tags_file, seconds, p.pid, publish_ms=50)
        with bridge(tmp, sim) as br:
            b = _measure(client, br.endpoint, tags_file, seconds, br.proc.pid, publish_ms=50)
    res.add(name, "latency p50 (publishing 50 ms)", b.get("p50"), base.get("p50"), "ms")
    res.add(name, "latency p99 (publishing 50 ms)", b.get("p99"), base.get("p99"), "ms", Goal("bridge", "<=", 1100))


def _log_event(log: Path, prefix: str) -> tuple[float, float] | None:
    """(wall-clock time, the "in X s" figure) of the first JSON log line whose message starts with `prefix`."""
    for line in log.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        entry = json.loads(line)
        if entry.get("message", "").startswith(prefix):
            at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00")).timestamp()
            took = re.search(r" in ([0-9.]+) s", entry["message"])
            return at, float(took.group(1)) if took else math.nan
    return None


def _all_readable(br: BridgeProc, timeout: float = 300) -> float:
    """Wait until every tag has had its first value written (values_updated_total reaches the tag count at
    change rate 0: each tag is written once, from BadWaitingForInitialData); time.time() of that moment."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = scrape(br.health)
        if m.get("tags", 0) > 0 and m.get("values_updated_total", 0) >= m["tags"]:
            return time.time()
        time.sleep(0.05)
    raise RuntimeError("not every tag got a value")


def scenario_startup_memory(res: Results, tmp: Path, n: int, client: str = "asyncua") -> None:
    """Start-up, named for what it is: /readyz answers ("browsable": the address space is built, values may still
    be BadWaitingForInitialData) and every tag readable (its first value polled). Memory is sampled when every tag
    holds a value, and again with one client subscribed to every tag, for the bridge and the baseline alike."""
    name, mem = f"start-up {n // 1000}k", f"memory {n // 1000}k"
    with simulator(tmp, n, 0.0) as sim:
        tags_file, _ = asyncio.run(_tags_file(tmp, sim))
        with baseline(tmp, tags_file, 0.0) as (p, endpoint, info):
            base_rss = rss_bytes(p.pid)
            base_sub = _rss_subscribed(client, endpoint, tags_file, p.pid)
        with bridge(tmp, sim) as br:
            readable_wall = _all_readable(br)
            bridge_rss = rss_bytes(br.proc.pid)
            bridge_sub = _rss_subscribed(client, br.endpoint, tags_file, br.proc.pid)
            browsed, built = _log_event(br.log, "browsed WinCC"), _log_event(br.log, "address space built")
    with simulator(tmp, 0, 0.0) as sim:  # the same processes with no generated tags: the base to subtract
        with bridge(tmp, sim) as br0:
            _all_readable(br0)
            empty_rss = rss_bytes(br0.proc.pid)
            empty_sub = _rss_subscribed(client, br0.endpoint, None, br0.proc.pid)
    res.add(name, "process start -> browsable (/readyz)", br.ready_s, info["ready_s"], "s")
    res.add(name, "process start -> every tag readable", readable_wall - br.started_wall, info["ready_s"], "s")
    if browsed and built:
        res.add(name, "browse over REST", browsed[1], None, "s")
        res.add(
            name,
            "address-space build (bridge bulk vs baseline add_variable)",
            built[1],
            info["build_s"],
            "s",
            "not like for like: see bench.address_space_build",
        )
        res.add(
            name,
            "browse answered -> every tag readable",
            readable_wall - browsed[0],
            None,
            "s",
            Goal("bridge", "<=", 3.0) if n == 100_000 else None,
        )
    res.add(
        mem,
        "RSS per tag over base, every tag valued",
        (bridge_rss - empty_rss) / n / 1024,
        None,
        "KB",
        Goal("bridge", "<=", 3.0),
    )
    res.add(mem, "RSS per tag over base, one subscriber on all", (bridge_sub - empty_sub) / n / 1024, None, "KB")
    res.add(mem, "RSS total, every tag valued", bridge_rss / 2**20, base_rss / 2**20, "MB")
    res.add(mem, "RSS total, one subscriber on all", bridge_sub / 2**20, base_sub / 2**20, "MB")


def _rss_subscribed(client: str, endpoint: str, tags_file: Path | None, pid: int) -> int:
    """RSS of `pid` while one client is subscribed to every tag of `tags_file` (None: no tag, the empty base)."""
    if tags_file is None:
        tags_file = Path(tempfile.mkstemp(suffix=".json")[1])
        tags_file.write_text("[]")
    seen: list[int] = []
    # sampled 1 s after the last item was created: every item exists and has sent its first value
    windowed(
        subscriber_cmd(client, endpoint, tags_file, 0.2, 500, warmup=1),
        pid,
        on_start=lambda: seen.append(rss_bytes(pid)),
    )
    return seen[0]


_FAST_POLLING = {"interval_ms": 200, "poll_groups_ms": [200, 1000, 5000], "idle_interval_ms": 2000, "read_recent_s": 0}


class _Arrivals:
    def __init__(self) -> None:
        self.items: list[tuple[datetime, Any]] = []  # (wall clock at arrival, DataValue)

    def datachange_notification(self, node: object, val: object, data: Any) -> None:
        self.items.append((datetime.now(UTC), data.monitored_item.Value))


async def _single_tag_latency(endpoint: str, sim: str, changes: int) -> list[float]:
    """Each change the simulator makes to one tag polled at 200 ms, published at 50 ms: arrival - its WinCC
    timestamp (the simulator stamps a set with its clock; same host, same clock), seconds."""
    from asyncua import Client, ua

    async with Client(endpoint, timeout=30) as client:
        ns = await client.get_namespace_index(TAGS_NS)
        handler = _Arrivals()
        sub = await client.create_subscription(50, handler)
        await sub.subscribe_data_change(client.get_node(ua.NodeId("System1.Counters.Batch", ns)), sampling_interval=200)
        await _until(lambda: handler.items, 10)
        out = []
        for value in range(5001, 5001 + changes):
            httpx.post(sim + "/_sim/tags", json={"set": {"System1.Counters.Batch": value}}, timeout=10)
            await _until(lambda v=value: any(dv.Value.Value == v for _, dv in handler.items), 10)
            arrived, dv = next((at, dv) for at, dv in handler.items if dv.Value.Value == value)
            out.append((arrived - dv.SourceTimestamp.replace(tzinfo=UTC)).total_seconds())
            await asyncio.sleep(0.05 + 0.2 * (value % 5) / 5)  # changes at different phases of the poll cycle
        await sub.delete()
    return out


async def _until(condition: Callable[[], Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for a notification")
        await asyncio.sleep(0.01)


def scenario_poll_latency(res: Results, tmp: Path, changes: int = 20) -> None:
    """Moved from tests/integration/test_bridge_dp.py (a timed assertion there): a change reaches the subscriber
    within poll interval (200) + publishing interval (50) + 200 ms for everything else = 450 ms."""
    with simulator(tmp, 0, 0.0) as sim, bridge(tmp, sim, sync=_FAST_POLLING) as br:
        lat = sorted(asyncio.run(_single_tag_latency(br.endpoint, sim, changes)))
    name = "latency 1 tag, 200 ms polling"
    res.add(name, "change -> client, p50 (publishing 50 ms)", lat[len(lat) // 2] * 1000, None, "ms")
    res.add(name, "change -> client, worst of 20", lat[-1] * 1000, None, "ms", Goal("bridge", "<=", 450))


async def _subscribe_groups(endpoint: str) -> Any:
    from asyncua import Client, ua

    client = Client(endpoint, timeout=30)
    await client.connect()
    ns = await client.get_namespace_index(TAGS_NS)
    sub = await client.create_subscription(500, _Arrivals())
    await sub.subscribe_data_change(client.get_node(ua.NodeId("System1.Counters.Int8Value", ns)), sampling_interval=200)
    await sub.subscribe_data_change(
        [client.get_node(ua.NodeId(f"System1.Counters.{n}", ns)) for n in ("UInt8Value", "UInt16Value")],
        sampling_interval=1000,
    )
    return client


def scenario_poll_rates(res: Results, tmp: Path, seconds: float = 6.0) -> None:
    """Moved from tests/integration/test_subscriptions_tcp.py (rate bounds there): how often each poll group
    really reads, told apart by batch size at the simulator (1 tag at 200 ms, 2 at 1000 ms, the rest idle at 2 s)."""
    with simulator(tmp, 0, 0.0) as sim, bridge(tmp, sim, sync=_FAST_POLLING) as br:
        loop = asyncio.new_event_loop()
        try:
            client = loop.run_until_complete(_subscribe_groups(br.endpoint))
            loop.run_until_complete(asyncio.sleep(2.5))  # the plan changes once the items exist
            httpx.post(sim + "/_sim/stats/reset")
            t0 = time.monotonic()
            loop.run_until_complete(asyncio.sleep(seconds))
            stats = httpx.get(sim + "/_sim/stats").json()
            elapsed = time.monotonic() - t0
            loop.run_until_complete(client.disconnect())
        finally:
            loop.close()
        total = httpx.get(sim + "/_sim/health").json()["tags"]
    sizes = Counter(stats["read_batches"])
    sizes[1] += stats["requests"].get("GET /api/dp/{name}", 0)
    for label, size, asked in (("200 ms", 1, 5.0), ("1000 ms", 2, 1.0), ("idle 2000 ms", total - 3, 0.5)):
        res.add(
            "poll rates",
            f"{label} group: reads/s (base: asked)",
            sizes[size] / elapsed,
            asked,
            "1/s",
            Goal("ratio", ">=", 0.9),
        )


async def _history_figures(endpoint: str, sim_base: str, day_end: datetime, bridge_pid: int) -> dict[str, float]:
    """Wall-clock values/s (disturbed by any other load) and CPU per value of each process involved (hardly
    disturbed): the REST read alone in this process, then the UA read (bridge; this process decoding as the
    client; the simulator answering both)."""
    from asyncua import Client, ua

    from bridge.config import WinCCConfig
    from bridge.wincc.client import open_client

    start = day_end - timedelta(days=1)
    name = HISTORY_TAG
    out: dict[str, float] = {}
    cfg = WinCCConfig.model_validate({"url": sim_base, "dialect": "dp"})
    sim = CpuWindow(SIMULATOR_PIDS[int(sim_base.rsplit(":", 1)[1])])
    async with open_client(cfg) as rest:
        t0, c0 = time.perf_counter(), time.process_time()
        sim.start()
        n = sum([len(page) async for page in rest.archive(name, start, day_end, 1000)])
        sim.stop()
        out["rest_values_per_s"] = n / (time.perf_counter() - t0)
        out["rest_values_per_cpu_s"] = n / (time.process_time() - c0)
        out["sim_cpu_s_rest"] = sim.cores * sim.seconds
    async with Client(endpoint, timeout=60) as client:
        ns = await client.get_namespace_index(TAGS_NS)
        node = ua.NodeId(name, ns)
        window = CpuWindow(bridge_pid)
        window.start()
        sim.start()
        t0, c0 = time.perf_counter(), time.process_time()
        got, cp = 0, None
        while True:
            (res,) = await client.uaclient.history_read(raw_history_params({node: cp}, start, day_end, 1000))
            got += len(res.HistoryData.DataValues)
            cp = res.ContinuationPoint
            if not cp:
                break
        out["ua_values_per_s"] = got / (time.perf_counter() - t0)
        out["client_cpu_s"] = time.process_time() - c0
        window.stop()
        sim.stop()
        out["bridge_values_per_cpu_s"] = got / max(1e-9, window.cores * window.seconds)
        out["sim_cpu_s_ua"] = sim.cores * sim.seconds
        out["values"] = float(got)
        details = ua.ReadProcessedDetails(
            StartTime=start,
            EndTime=day_end,
            ProcessingInterval=3_600_000,
            AggregateType=[ua.NodeId(ua.ObjectIds.AggregateFunction_Average)],
        )
        params = ua.HistoryReadParameters(
            HistoryReadDetails=details,
            ReleaseContinuationPoints=False,
            TimestampsToReturn=ua.TimestampsToReturn.Source,
            NodesToRead=[ua.HistoryReadValueId(NodeId=node)],
        )
        t0 = time.perf_counter()
        await client.uaclient.history_read(params)
        out["average_day_s"] = time.perf_counter() - t0
    return out


async def _history_many(endpoint: str, day_end: datetime, nodes: int = 100) -> dict[str, float]:
    """One HistoryRead of `nodes` archived tags x 1 hour of 1 s data (continuation points followed if the server
    pages anyway): values/s over the whole exchange."""
    from asyncua import Client, ua

    start = day_end - timedelta(hours=1)
    names = [f"System1.Gen.G{i // 1000:03d}.Tag{i:06d}" for i in range(0, nodes * 10, 10)]  # i % 10 == 0: archived
    async with Client(endpoint, timeout=120) as client:
        ns = await client.get_namespace_index(TAGS_NS)
        todo: dict[ua.NodeId, bytes | None] = {ua.NodeId(n, ns): None for n in names}
        got = requests = 0
        t0 = time.perf_counter()
        while todo:
            results = await client.uaclient.history_read(raw_history_params(todo, start, day_end, 0))
            requests += 1
            nxt = {}
            for (node, _), r in zip(todo.items(), results, strict=True):
                if not r.StatusCode.is_good():
                    raise RuntimeError(f"{node}: {r.StatusCode}")
                got += len(r.HistoryData.DataValues) if r.HistoryData else 0
                if r.ContinuationPoint:
                    nxt[node] = r.ContinuationPoint
            todo = nxt
        took = time.perf_counter() - t0
    return {"values": float(got), "values_per_s": got / took, "requests": float(requests)}


def _history_node(endpoint: str, day_end: datetime, per_request: int) -> dict[str, float] | None:
    """The same day read by a node-opcua client (bench/history_reader.js), or None without node / node_modules:
    asyncua's decoding caps its own reader near 85,000 values/s, so this shows what another stack gets."""
    modules = ROOT / "tests" / "interop" / "node_modules"
    if shutil.which("node") is None or not (modules / "node-opcua-client").is_dir():
        return None
    args = {
        "endpoint": endpoint,
        "name": HISTORY_TAG,
        "start": (day_end - timedelta(days=1)).isoformat(),
        "end": day_end.isoformat(),
        "perRequest": per_request,
    }
    env = {**os.environ, "NODE_PATH": str(modules)}
    cmd = ["node", str(ROOT / "bench" / "history_reader.js"), json.dumps(args)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=True)
    # node-opcua may log its own lines to stdout too: the report is the line that is a JSON object
    report = json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))
    return {k: float(v) for k, v in report.items()}


def _history_counted(endpoint: str, day_end: datetime, per_request: int, bridge_pid: int) -> dict[str, float]:
    """The same day read by bench/history_counter.py, which counts the values without decoding each: the bridge's
    serving rate apart from a client's decoding cost."""
    window = CpuWindow(bridge_pid)
    window.start()
    got = asyncio.run(read_counted(endpoint, HISTORY_TAG, TAGS_NS, day_end - timedelta(days=1), day_end, per_request))
    window.stop()
    return {
        "values": float(got.values),
        "seconds": got.seconds,
        "client_cpu_s": got.client_cpu_s,
        "bridge_cpu_s": window.cores * window.seconds,
    }


def _reset_peak(pid: int) -> None:
    """Reset the process's peak RSS (VmHWM) so the next peak is this scenario's own (Linux clear_refs 5)."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def scenario_history(res: Results, tmp: Path) -> None:
    day_end = datetime.now(UTC).replace(microsecond=0)
    with simulator(tmp, 1000, 0.0) as sim, bridge(tmp, sim) as br:
        f = asyncio.run(_history_figures(br.endpoint, sim, day_end, br.proc.pid))
        node = {n: _history_node(br.endpoint, day_end, n) for n in (1000, 10_000)}
        counted = {n: _history_counted(br.endpoint, day_end, n, br.proc.pid) for n in (1000, 10_000)}
        before = rss_bytes(br.proc.pid)
        _reset_peak(br.proc.pid)
        many = asyncio.run(_history_many(br.endpoint, day_end))
        peak = peak_rss_bytes(br.proc.pid)
    res.add(
        "history raw 1 day @1 s",
        "values/s served (REST side as base)",
        f["ua_values_per_s"],
        f["rest_values_per_s"],
        "1/s",
        Goal("bridge", ">=", 100_000),
    )
    res.add(
        "history raw 1 day @1 s",
        "values per CPU-second: bridge (UA) / REST client alone",
        f["bridge_values_per_cpu_s"],
        f["rest_values_per_cpu_s"],
        "1/s",
    )
    res.add(
        "history raw 1 day @1 s",
        "client CPU decoding the UA answers, per value",
        f["client_cpu_s"] / f["values"] * 1e6,
        None,
        "us",
    )
    res.add(
        "history raw 1 day @1 s",
        "simulator CPU: UA read / REST read alone",
        f["sim_cpu_s_ua"],
        f["sim_cpu_s_rest"],
        "s",
        "ratio ~1: each archive page asked once",
    )
    res.add("history raw 1 day @1 s", "values returned", f["values"], 86_400.0, "", "every value once")
    for per_request, got in node.items():
        if got is None:
            continue
        scenario = f"history raw 1 day @1 s, node-opcua reader, {per_request:,} per request"
        res.add(scenario, "values/s served", got["values"] / got["seconds"], None, "1/s", Goal("bridge", ">=", 100_000))
        res.add(scenario, "client CPU per value", got["client_cpu_s"] / got["values"] * 1e6, None, "us")
    for per_request, got in counted.items():
        scenario = f"history raw 1 day @1 s, counting reader, {per_request:,} per request"
        res.add(scenario, "values/s served", got["values"] / got["seconds"], None, "1/s", Goal("bridge", ">=", 100_000))
        res.add(scenario, "values returned", got["values"], 86_400.0, "", "every value once")
        res.add(scenario, "bridge values per CPU-second", got["values"] / max(1e-9, got["bridge_cpu_s"]), None, "1/s")
        res.add(scenario, "client CPU per value", got["client_cpu_s"] / got["values"] * 1e6, None, "us")
    res.add("history Average 1 day", "24 x 1 h Average over 86,400 values", f["average_day_s"], None, "s")
    res.add("history raw 100 nodes x 1 h", "values/s, one request", many["values_per_s"], None, "1/s")
    res.add("history raw 100 nodes x 1 h", "values returned", many["values"], 360_000.0, "", "every value once")
    res.add("history raw 100 nodes x 1 h", "HistoryRead requests (continuation points)", many["requests"], None, "")
    res.add("history raw 100 nodes x 1 h", "peak RSS growth during the read", (peak - before) / 2**20, None, "MB")


async def _write_figures(endpoint: str) -> dict[str, float]:
    from asyncua import Client, ua

    host = endpoint.removeprefix("opc.tcp://")
    async with Client(f"opc.tcp://bench:{BENCH_PASSWORD}@{host}", timeout=60) as client:
        ns = await client.get_namespace_index(TAGS_NS)
        out = {}
        for count in (1, 100):
            names = [f"Extra_W{i:03d}" for i in range(count)]
            nodes = [
                ua.WriteValue(
                    NodeId=ua.NodeId(n, ns),
                    AttributeId=ua.AttributeIds.Value,
                    Value=ua.DataValue(ua.Variant(i, ua.VariantType.Int32)),
                )
                for i, n in enumerate(names)
            ]
            samples = []
            for _ in range(20):
                t0 = time.perf_counter()
                results = await client.uaclient.write(ua.WriteParameters(NodesToWrite=nodes))
                samples.append(time.perf_counter() - t0)
                assert all(r.is_good() for r in results), results[:3]
            samples.sort()
            out[f"p50_{count}"] = samples[len(samples) // 2] * 1000
        return out


def scenario_writes(res: Results, tmp: Path) -> None:
    with simulator(tmp, 0, 0.0, dialect="restservice") as sim:
        httpx.post(
            sim + "/_sim/tags",
            json={"add": [{"name": f"System1.Extra.W{i:03d}", "type": "int32", "writable": True} for i in range(100)]},
        )
        with bridge(tmp, sim, "restservice") as br:
            httpx.post(sim + "/_sim/stats/reset")
            f = asyncio.run(_write_figures(br.endpoint))
            requests = httpx.get(sim + "/_sim/stats").json()["requests"]
    batch, single = requests.get("PUT /tagManagement/Values", 0), requests.get("PUT /tagManagement/Value/{name}", 0)
    res.add("writes restservice", "1-node Write p50", f["p50_1"], None, "ms")
    res.add("writes restservice", "100-node Write p50", f["p50_100"], None, "ms")
    res.add("writes restservice", "REST calls per 1-node Write", single / 20, None, "", "1")
    res.add("writes restservice", "REST calls per 100-node Write", batch / 20, None, "", "1")


def scenario_simulator_startup(res: Results, tmp: Path, sizes: tuple[int, ...] = (0, 100_000)) -> None:
    """Process start -> the simulator answers, with the demo plant only and with 100k generated tags."""
    for tags, goal in ((n, "< 2 s" if n == 0 else "< 10 s") for n in sizes):
        port = free_port()
        cmd = [PY, "-m", "bridge.simulator", "--port", str(port), "--tags", str(tags)]
        with process(cmd, tmp / f"sim-start-{port}.log") as proc:
            ready = _wait_http(f"http://127.0.0.1:{port}/_sim/health", proc, 60)
        res.add("simulator start-up", f"demo plant + {tags // 1000}k tags", ready, None, "s", goal)


def scenario_simulator(res: Results, tmp: Path, tags: int) -> None:
    """The simulator's own ceiling on this machine, so a bridge figure is never a simulator limit in disguise."""
    done = subprocess.run(
        [PY, "-m", "bridge.simulator.ceiling", "--tags", str(tags), "--seconds", "5"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"simulator ceiling failed: {done.stderr[-2000:]}")
    # node-opcua may log its own lines to stdout too: the report is the line that is a JSON object
    report = json.loads(next(line for line in reversed(done.stdout.splitlines()) if line.startswith("{")))
    name = f"simulator {tags // 1000}k"
    for phase, label in (("sequential", "1 in flight"), ("concurrent_4", "4 in flight")):
        figures = report.get(phase) or {}
        res.add(name, f"ReadMultiple/s of 500 ({label})", figures.get("requests_per_s"), None, "1/s")
        res.add(
            name,
            f"tag values/s ({label})",
            figures.get("tag_values_per_s"),
            None,
            "1/s",
            "> what the bridge polls" if phase == "concurrent_4" else "",
        )


SCENARIOS = ("simulator", "sync", "latency", "polling", "startup", "history", "writes", "alarms")
SHARED_NOTE = (
    "Measured on a shared machine (other work was running): absolute figures and wall-clock times are "
    "unreliable; only same-run ratios of CPU time mean anything, and only roughly."
)


def plan(args: argparse.Namespace, res: Results, tmp: Path) -> list[tuple[str, Callable[..., None], tuple[Any, ...]]]:
    only = set(args.only.split(","))
    default_only = ",".join(SCENARIOS)
    sizes = [10_000] if args.quick else [10_000, 50_000, 100_000]
    rates = [0.01, 0.1] if args.quick else [0.01, 0.1, 1.0]
    if args.sizes:
        sizes = [int(n) for n in args.sizes.split(",")]
    if args.rates:
        rates = [float(r) for r in args.rates.split(",")]
    seconds = args.seconds or (5 if args.quick else 20)
    sync = {"batch_size": args.batch_size} if args.batch_size else None
    label = f" batch {args.batch_size}" if args.batch_size else ""
    if args.client == "node":
        label += " (node-opcua)"
    if args.http != "aiohttp":
        label += f" ({args.http})"
    if args.dialect != "dp":
        label += f" ({args.dialect})"
    if args.paired:
        label += " paired"
    runs: list[tuple[str, Callable[..., None], tuple[Any, ...]]] = []
    if "simulator" in only:
        runs.append(
            ("simulator start-up", scenario_simulator_startup, (res, tmp, (0,) if args.quick else (0, 100_000)))
        )
        runs.append(("simulator 10k", scenario_simulator, (res, tmp, 10_000)))
    if "sync" in only:
        runs += [
            (
                f"sync {n // 1000}k @{rate:.0%}/s",
                scenario_sync,
                (res, tmp, n, rate, seconds, args.client, sync, label, args.http, args.dialect, args.paired),
            )
            for n in sizes
            for rate in rates
        ]
    if "latency" in only:
        runs.append(("latency 10k @10%/s", scenario_latency, (res, tmp, 10_000, 0.1, seconds, args.client)))
    if "polling" in only and (not args.quick or args.only != default_only):  # --quick: only when asked
        runs.append(("latency 1 tag", scenario_poll_latency, (res, tmp)))
        runs.append(("poll rates", scenario_poll_rates, (res, tmp)))
    if "startup" in only:
        runs += [
            (f"start-up {n // 1000}k", scenario_startup_memory, (res, tmp, n, args.client))
            for n in ([10_000] if args.quick else [10_000, 100_000])
        ]
    if "history" in only and (not args.quick or args.only != default_only):
        runs.append(("history", scenario_history, (res, tmp)))
    if "writes" in only:
        runs.append(("writes", scenario_writes, (res, tmp)))
    if "alarms" in only and (not args.quick or args.only != default_only):
        from bench.alarms import scenario_alarms  # it imports this module: here, not at the top

        runs.append(("alarms", scenario_alarms, (res, tmp, args.quick)))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="about 2 minutes: 10k tags only, shorter windows, one run; history only with --only history",
    )
    ap.add_argument("--repeat", type=int, help="runs of every scenario (default 3, --quick 1): median and spread")
    ap.add_argument("--json", type=Path, help="write the results here")
    ap.add_argument("--markdown", type=Path, help="write the results table here (bench/README.md points at it)")
    ap.add_argument("--note", help="a line printed above the table (the default says whether the machine was shared)")
    ap.add_argument("--shared", action="store_true", help="the machine was shared: say so above the table")
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--sizes", help="tag counts of the sync scenarios, e.g. 50000,100000")
    ap.add_argument("--rates", help="change rates of the sync scenarios, e.g. 0.01,1.0")
    ap.add_argument("--seconds", type=float, help="length of each sync measuring window")
    ap.add_argument("--batch-size", type=int, help="sync.batch_size of the bridge and the bare poller (default 500)")
    ap.add_argument(
        "--http",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="the bridge's HTTP engine (WINCC_BRIDGE_HTTP) and the bare poller's client: aiohttp (default) or httpx",
    )
    ap.add_argument(
        "--dialect",
        choices=["dp", "restservice", "unified"],
        default="dp",
        help="the WinCC API of the sync scenarios (unified: monitored tags pushed over a WebSocket)",
    )
    ap.add_argument(
        "--client",
        choices=["asyncua", "node"],
        default="asyncua",
        help="the subscribed client's stack (node: node-opcua from tests/interop, npm ci there first)",
    )
    ap.add_argument(
        "--paired",
        action="store_true",
        help="sync: measure the bridge and bare asyncua in the same window, side by side (low loads only: the two "
        "servers share the cores); the default measures one after the other",
    )
    args = ap.parse_args(argv)
    repeat = args.repeat or (1 if args.quick else 3)
    res = Results()
    head, dirty = commit()
    header = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": head,
        "dirty": dirty,
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}, asyncua "
        f"{importlib.metadata.version('asyncua')}, client {args.client}",
        "repeat": repeat,
        "argv": sys.argv[1:] if argv is None else argv,
        "note": args.note or (SHARED_NOTE if args.shared else ""),
    }
    print(
        f"bench of commit {head}{' (dirty)' if dirty else ''} on {platform.node()}, {header['machine']}, "
        f"{repeat} run(s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as d:
        runs = plan(args, res, Path(d))
        for i in range(repeat):  # interleaved: a slow minute of the machine hits one run of each, not all of one
            for name, scenario, scenario_args in runs:
                print(f"[run {i + 1}/{repeat}] {name}", flush=True)
                try:
                    scenario(*scenario_args)
                except Exception as exc:  # one scenario's failure is a result too; the others still run
                    res.failed(name, f"{type(exc).__name__}: {str(exc)[-300:]}")
    table = res.markdown(header)
    print("\n" + table, flush=True)
    if args.markdown:
        args.markdown.write_text(table, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps({**header, "rows": res.summary(), "failures": res.failures}, indent=2))
    return 1 if res.failures else 0
