"""Benchmarks of the bridge, each next to a bare-asyncua baseline measured in the same run.

    python -m bench [--quick] [--json FILE] [--only sync,startup,...]

Every process under test is separate: the simulator, the server (bridge or baseline) and one subscribed client.
CPU and RSS are read from /proc for the server process only. These machines are noisy, so the ratios (bridge /
baseline, same run) are the figures to compare across runs, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench.naming import browse_tags, save_tags
from bench.procstat import CpuWindow, rss_bytes
from bridge.opcua.security.passwords import hash_password
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
BENCH_PASSWORD = "bench-only-pw"  # a throw-away user of the benchmark's own bridge on 127.0.0.1
PY = sys.executable


@dataclass
class Results:
    rows: list[dict[str, Any]] = field(default_factory=list)

    def add(self, scenario: str, metric: str, bridge: float | None, baseline: float | None = None,
            unit: str = "", goal: str = "") -> None:
        ratio = bridge / baseline if bridge is not None and baseline not in (None, 0) else None
        row = {"scenario": scenario, "metric": metric, "bridge": bridge, "baseline": baseline, "ratio": ratio,
               "unit": unit, "goal": goal}
        self.rows.append(row)
        fmt = lambda v: "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
        print(f"  {scenario:<22} {metric:<34} bridge {fmt(bridge):>10} {unit:<8} baseline {fmt(baseline):>10}"
              f"  ratio {fmt(ratio):>6}  {goal}", flush=True)


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


@contextmanager
def simulator(tmp: Path, tags: int, change_rate: float, dialect: str = "dp") -> Iterator[str]:
    port = free_port()
    cmd = [PY, "-m", "bridge.simulator", "--port", str(port), "--dialect", dialect, "--tags", str(tags),
           "--change-rate", str(change_rate)]
    with process(cmd, tmp / f"sim-{port}.log") as proc:
        _wait_http(f"http://127.0.0.1:{port}/_sim/health", proc, 120)
        yield f"http://127.0.0.1:{port}"


def bridge_config(tmp: Path, sim_base: str, dialect: str, interval_ms: int = 1000) -> tuple[Path, str, str]:
    ua_port, health_port = free_port(), free_port()
    cfg = {
        "wincc": {"url": sim_base if dialect == "dp" else sim_base + "/WinCCRestService", "dialect": dialect,
                  "browse_snapshot": None, "max_concurrency": 4},
        "opcua": {"endpoint": f"opc.tcp://127.0.0.1:{ua_port}/wincc", "security_policies": ["None"],
                  "anonymous": "read", "pki_dir": str(tmp / "pki"), "auto_accept_client_certs": True,
                  "users": [{"name": "bench", "password_hash": hash_password(BENCH_PASSWORD), "role": "operator"}]},
        "sync": {"interval_ms": interval_ms, "batch_size": 500, "poll_groups_ms": [interval_ms, 5000],
                 "idle_interval_ms": 10000},
        "health": {"listen": f"127.0.0.1:{health_port}"},
    }
    path = tmp / f"bridge-{ua_port}.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path, cfg["opcua"]["endpoint"], f"http://127.0.0.1:{health_port}"


@contextmanager
def bridge(tmp: Path, sim_base: str, dialect: str = "dp") -> Iterator[tuple[subprocess.Popen[bytes], str, str, float]]:
    cfg, endpoint, health = bridge_config(tmp, sim_base, dialect)
    with process([PY, "-m", "bridge", "--log-level", "warning", "run", "--config", str(cfg)], cfg.with_suffix(".log")) as p:
        ready_s = _wait_http(health + "/readyz", p, 300)
        yield p, endpoint, health, ready_s


@contextmanager
def baseline(tmp: Path, tags_file: Path, change_rate: float) -> Iterator[tuple[subprocess.Popen[bytes], str, float]]:
    port = free_port()
    log = tmp / f"baseline-{port}.log"
    t0 = time.monotonic()
    with process([PY, "-m", "bench.baseline_server", "--port", str(port), "--tags-file", str(tags_file),
                  "--change-rate", str(change_rate)], log) as p:
        deadline = time.monotonic() + 600
        while '"ready"' not in log.read_text():
            if p.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baseline server failed: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield p, f"opc.tcp://127.0.0.1:{port}/wincc", time.monotonic() - t0


# ---- scenarios -------------------------------------------------------------------------------------------------
async def _tags_file(tmp: Path, sim_base: str, dialect: str = "dp") -> tuple[Path, int]:
    tags = await browse_tags(sim_base if dialect == "dp" else sim_base + "/WinCCRestService", dialect)
    path = tmp / f"tags-{len(tags)}.json"
    save_tags(tags, path)
    return path, len(tags)


def scenario_sync(res: Results, tmp: Path, n: int, rate: float, seconds: float) -> None:
    name = f"sync {n // 1000}k @{rate:.0%}/s"
    with simulator(tmp, n, rate) as sim:
        tags_file, total = asyncio.run(_tags_file(tmp, sim))
        figures: dict[str, dict[str, float]] = {}
        with baseline(tmp, tags_file, rate) as (p, endpoint, _):
            figures["baseline"] = _measure(endpoint, tags_file, seconds, p.pid)
        httpx.post(sim + "/_sim/stats/reset")
        with bridge(tmp, sim) as (p, endpoint, health, _):
            figures["bridge"] = _measure(endpoint, tags_file, seconds, p.pid)
            stats = httpx.get(sim + "/_sim/stats").json()
            metrics = httpx.get(health + "/metrics").text
    b, base = figures["bridge"], figures["baseline"]
    res.add(name, "notifications/s delivered", b["per_second"], base["per_second"], "1/s")
    res.add(name, "server CPU", b["cpu"], base["cpu"], "cores", "<=0.5 at 100k@1%" if n == 100_000 and rate == 0.01 else "")
    res.add(name, "CPU per notification", b["cpu_per_notif_us"], base["cpu_per_notif_us"], "us", "ratio<=1.2")
    res.add(name, "latency p50 (publishing 500 ms)", b.get("p50"), base.get("p50"), "ms")
    res.add(name, "latency p99 (publishing 500 ms)", b.get("p99"), base.get("p99"), "ms")
    late = _metric(metrics, "late_cycles")
    res.add(name, "late poll cycles", late, None, "", "0")
    res.add(name, "worst event-loop lag", _metric(metrics, "event_loop_lag_max_seconds"), None, "s",
            "< 1 s (asyncua clients drop the server at 1 s)")
    res.add(name, "longest GC pause", _metric(metrics, "gc_pause_max_seconds"), None, "s")
    reads = sum(v for k, v in stats.get("requests", {}).items() if "ReadMultiple" in k)
    res.add(name, "REST reads (whole run)", float(reads), None, "", f"ceil(N/500)={math.ceil(total / 500)} per cycle")


def scenario_latency(res: Results, tmp: Path, n: int, rate: float, seconds: float) -> None:
    """End-to-end latency (change at WinCC -> notification at the client) with a 50 ms publishing interval, so the
    client's own publishing wait hardly counts: what is left is the poll interval (1 s) plus the bridge."""
    name = f"latency {n // 1000}k @{rate:.0%}/s"
    with simulator(tmp, n, rate) as sim:
        tags_file, _ = asyncio.run(_tags_file(tmp, sim))
        with baseline(tmp, tags_file, rate) as (p, endpoint, _):
            base = _measure(endpoint, tags_file, seconds, p.pid, publish_ms=50)
        with bridge(tmp, sim) as (p, endpoint, _, _):
            b = _measure(endpoint, tags_file, seconds, p.pid, publish_ms=50)
    res.add(name, "latency p50 (publishing 50 ms)", b.get("p50"), base.get("p50"), "ms")
    res.add(name, "latency p99 (publishing 50 ms)", b.get("p99"), base.get("p99"), "ms", "<= 1100 ms (1 s polling)")


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("wincc_bridge_") and name in line.split(" ")[0]:
            return float(line.rsplit(" ", 1)[1])
    return None


def _measure(endpoint: str, tags_file: Path, seconds: float, pid: int, publish_ms: float = 500) -> dict[str, float]:
    cmd = [PY, "-m", "bench.subscriber", "--endpoint", endpoint, "--tags-file", str(tags_file),
           "--seconds", str(seconds), "--warmup", "3", "--signal-window", "--publish-ms", str(publish_ms)]
    client = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, text=True)
    window = CpuWindow(pid)
    assert client.stdout is not None
    report: dict[str, Any] = {}
    for line in client.stdout:  # the client prints "start" when it starts counting and its report at the end
        line = line.strip()
        if line == "start":
            window.start()
        elif line.startswith("{"):
            cpu = window.stop()
            report = json.loads(line)
            report["cpu"] = cpu
    client.wait(60)
    if client.returncode != 0 or not report:
        raise RuntimeError(f"subscriber failed: {client.stderr.read()[-2000:] if client.stderr else ''}")
    per_s = report["per_second"] or math.nan
    return {"per_second": per_s, "cpu": report["cpu"], "cpu_per_notif_us": report["cpu"] / per_s * 1e6,
            "p50": report.get("latency_p50_ms"), "p99": report.get("latency_p99_ms")}


def scenario_startup_memory(res: Results, tmp: Path, n: int) -> None:
    name = f"start-up {n // 1000}k"
    with simulator(tmp, n, 0.0) as sim:
        tags_file, _ = asyncio.run(_tags_file(tmp, sim))
        with baseline(tmp, tags_file, 0.0) as (p, _, ready_s):
            base_ready, base_rss = ready_s, rss_bytes(p.pid)
        with bridge(tmp, sim) as (p, _, _, ready_s):
            bridge_ready, bridge_rss = ready_s, rss_bytes(p.pid)
    with simulator(tmp, 0, 0.0) as sim:  # the same processes with no generated tags: the base to subtract
        with bridge(tmp, sim) as (p, _, _, _):
            empty_rss = rss_bytes(p.pid)
    res.add(name, "process start -> all tags readable", bridge_ready, base_ready, "s", "build <= 10 s at 100k")
    res.add(f"memory {n // 1000}k", "RSS per tag over base", (bridge_rss - empty_rss) / n / 1024, None, "KB",
            "<= 5 KB")
    res.add(f"memory {n // 1000}k", "RSS total", bridge_rss / 2**20, base_rss / 2**20, "MB")


async def _history_figures(endpoint: str, sim_base: str, day_end: datetime) -> dict[str, float]:
    from asyncua import Client, ua

    from bridge.config import WinCCConfig
    from bridge.wincc.client import open_client

    start = day_end - timedelta(days=1)
    name = "System1.Gen.G000.Tag000000"  # archived at 1 value per second by the simulator
    out: dict[str, float] = {}
    cfg = WinCCConfig.model_validate({"url": sim_base, "dialect": "dp"})
    async with open_client(cfg) as rest:
        t0 = time.perf_counter()
        n = sum([len(page) async for page in rest.archive(name, start, day_end, 1000)])
        out["rest_values_per_s"] = n / (time.perf_counter() - t0)
    async with Client(endpoint, timeout=60) as client:
        ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
        node = ua.NodeId(name, ns)
        t0 = time.perf_counter()
        got, cp = 0, None
        while True:
            details = ua.ReadRawModifiedDetails(IsReadModified=False, StartTime=start, EndTime=day_end,
                                                NumValuesPerNode=1000, ReturnBounds=False)
            params = ua.HistoryReadParameters(HistoryReadDetails=details, ReleaseContinuationPoints=False,
                                              TimestampsToReturn=ua.TimestampsToReturn.Both,
                                              NodesToRead=[ua.HistoryReadValueId(NodeId=node, ContinuationPoint=cp)])
            (res,) = await client.uaclient.history_read(params)
            got += len(res.HistoryData.DataValues)
            cp = res.ContinuationPoint
            if not cp:
                break
        out["ua_values_per_s"] = got / (time.perf_counter() - t0)
        out["values"] = float(got)
        details = ua.ReadProcessedDetails(StartTime=start, EndTime=day_end, ProcessingInterval=3_600_000,
                                          AggregateType=[ua.NodeId(ua.ObjectIds.AggregateFunction_Average)])
        params = ua.HistoryReadParameters(HistoryReadDetails=details, ReleaseContinuationPoints=False,
                                          TimestampsToReturn=ua.TimestampsToReturn.Source,
                                          NodesToRead=[ua.HistoryReadValueId(NodeId=node)])
        t0 = time.perf_counter()
        await client.uaclient.history_read(params)
        out["average_day_s"] = time.perf_counter() - t0
    return out


def scenario_history(res: Results, tmp: Path) -> None:
    with simulator(tmp, 1000, 0.0) as sim, bridge(tmp, sim) as (_, endpoint, _, _):
        f = asyncio.run(_history_figures(endpoint, sim, datetime.now(UTC).replace(microsecond=0)))
    res.add("history raw 1 day @1 s", "values/s served (REST side as base)", f["ua_values_per_s"],
            f["rest_values_per_s"], "1/s")
    res.add("history raw 1 day @1 s", "values returned", f["values"], 86_400.0, "", "every value once")
    res.add("history Average 1 day", "24 x 1 h Average over 86,400 values", f["average_day_s"], None, "s")


async def _write_figures(endpoint: str) -> dict[str, float]:
    from asyncua import Client, ua

    host = endpoint.removeprefix("opc.tcp://")
    async with Client(f"opc.tcp://bench:{BENCH_PASSWORD}@{host}", timeout=60) as client:
        ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
        out = {}
        for count in (1, 100):
            names = [f"Extra_W{i:03d}" for i in range(count)]
            nodes = [ua.WriteValue(NodeId=ua.NodeId(n, ns), AttributeId=ua.AttributeIds.Value,
                                   Value=ua.DataValue(ua.Variant(i, ua.VariantType.Int32))) for i, n in enumerate(names)]
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
        httpx.post(sim + "/_sim/tags", json={"add": [{"name": f"System1.Extra.W{i:03d}", "type": "int32",
                                                      "writable": True} for i in range(100)]})
        with bridge(tmp, sim, "restservice") as (_, endpoint, _, _):
            httpx.post(sim + "/_sim/stats/reset")
            f = asyncio.run(_write_figures(endpoint))
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
    done = subprocess.run([PY, "-m", "bridge.simulator.ceiling", "--tags", str(tags), "--seconds", "5"],
                          capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    if done.returncode != 0:
        raise RuntimeError(f"simulator ceiling failed: {done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    name = f"simulator {tags // 1000}k"
    for phase, label in (("sequential", "1 in flight"), ("concurrent_4", "4 in flight")):
        figures = report.get(phase) or {}
        res.add(name, f"ReadMultiple/s of 500 ({label})", figures.get("requests_per_s"), None, "1/s")
        res.add(name, f"tag values/s ({label})", figures.get("tag_values_per_s"), None, "1/s",
                "> what the bridge polls" if phase == "concurrent_4" else "")


SCENARIOS = ("simulator", "sync", "latency", "startup", "history", "writes")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench")
    ap.add_argument("--quick", action="store_true",
                    help="about 2 minutes: 10k tags only, shorter windows, history only with --only history")
    ap.add_argument("--json", type=Path, help="write the results here")
    default_only = ",".join(SCENARIOS)
    ap.add_argument("--only", default=default_only)
    ap.add_argument("--sizes", help="tag counts of the sync scenarios, e.g. 50000,100000")
    ap.add_argument("--rates", help="change rates of the sync scenarios, e.g. 0.01,1.0")
    args = ap.parse_args(argv)
    only = set(args.only.split(","))
    res = Results()
    sizes = [10_000] if args.quick else [10_000, 50_000, 100_000]
    rates = [0.01, 0.1] if args.quick else [0.01, 0.1, 1.0]
    if args.sizes:
        sizes = [int(n) for n in args.sizes.split(",")]
    if args.rates:
        rates = [float(r) for r in args.rates.split(",")]
    seconds = 5 if args.quick else 20
    print(f"bench on {platform.node()} {os.cpu_count()} cores, python {platform.python_version()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-") as d:
        tmp = Path(d)
        runs: list[tuple[str, Any, tuple[Any, ...]]] = []
        if "simulator" in only:
            runs.append(("simulator start-up", scenario_simulator_startup,
                         (res, tmp, (0,) if args.quick else (0, 100_000))))
            runs.append(("simulator 10k", scenario_simulator, (res, tmp, 10_000)))
        if "sync" in only:
            runs += [(f"sync {n // 1000}k @{rate:.0%}/s", scenario_sync, (res, tmp, n, rate, seconds))
                     for n in sizes for rate in rates]
        if "latency" in only:
            runs.append(("latency 10k @10%/s", scenario_latency, (res, tmp, 10_000, 0.1, seconds)))
        if "startup" in only:
            runs += [(f"start-up {n // 1000}k", scenario_startup_memory, (res, tmp, n))
                     for n in ([10_000] if args.quick else [10_000, 100_000])]
        if "history" in only and (not args.quick or "history" in args.only.split(",") and args.only != default_only):
            runs.append(("history", scenario_history, (res, tmp)))
        if "writes" in only:
            runs.append(("writes", scenario_writes, (res, tmp)))
        failed = 0
        for name, scenario, scenario_args in runs:
            try:
                scenario(*scenario_args)
            except Exception as exc:  # one scenario's failure is a result too; the others still run
                failed += 1
                res.add(name, "FAILED", None, None, "", f"{type(exc).__name__}: {str(exc)[-300:]}")
    if args.json:
        args.json.write_text(json.dumps({"date": datetime.now(UTC).isoformat(), "rows": res.rows}, indent=2))
    return 1 if failed else 0
