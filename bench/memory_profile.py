"""Where the bridge's memory per tag goes: the lines that allocated it, for N simulator tags, every tag valued.

`python -m bench.memory_profile --tags 10000 [--subscribe]` runs the simulator and the bridge (the same config as
the memory scenario of `python -m bench`) with tracemalloc on in the bridge, waits until every tag holds a value
(and, with --subscribe, one asyncua client is subscribed to every tag), then asks the bridge for a tracemalloc
snapshot; the same again with no generated tag, and prints the difference per allocating line as bytes per tag,
largest first, and the RSS per tag of both runs. tracemalloc counts what Python allocates, not what the allocator
keeps on top (pymalloc arenas, fragmentation): the RSS figure is the one the goal is about, the lines say why.
A measuring tool, not a test.
"""

from __future__ import annotations

import argparse
import os
import pickle
import signal
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.procstat import rss_bytes
from bench.run import (
    PY,
    BridgeProc,
    _all_readable,
    _tags_file,
    _wait_http,
    bridge_config,
    process,
    simulator,
    subscriber_cmd,
)

# the bridge, started with tracemalloc and a SIGUSR1 handler that writes a snapshot to $BENCH_SNAPSHOT
_TRACED_BRIDGE = """
import os, pickle, signal, sys, tracemalloc
tracemalloc.start(int(os.environ.get("BENCH_FRAMES", "1")))
def _dump(*_):
    import gc
    gc.collect()
    snap = tracemalloc.take_snapshot()
    with open(os.environ["BENCH_SNAPSHOT"] + ".tmp", "wb") as f:
        pickle.dump(snap, f)
    os.replace(os.environ["BENCH_SNAPSHOT"] + ".tmp", os.environ["BENCH_SNAPSHOT"])
signal.signal(signal.SIGUSR1, _dump)
from bridge.cli import main
sys.exit(main(sys.argv[1:]))
"""


@contextmanager
def traced_bridge(tmp: Path, sim: str, frames: int) -> Iterator[tuple[BridgeProc, Path]]:
    cfg, endpoint, health = bridge_config(tmp, sim, "dp")
    log = cfg.with_suffix(".log")
    snap = cfg.with_suffix(".snapshot")
    cmd = [PY, "-c", _TRACED_BRIDGE, "--log-level", "info", "--log-format", "json", "run", "--config", str(cfg)]
    wall = time.time()
    env = {"BENCH_SNAPSHOT": str(snap), "BENCH_FRAMES": str(frames)}
    with process(cmd, log, env=env) as p:
        ready_s = _wait_http(health + "/readyz", p, 600)
        yield BridgeProc(p, endpoint, health, ready_s, log, wall), snap


def _snapshot(pid: int, path: Path) -> tracemalloc.Snapshot:
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 300
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError("the bridge wrote no snapshot")
        time.sleep(0.2)
    with path.open("rb") as f:
        snap: tracemalloc.Snapshot = pickle.load(f)
    return snap


def _profile(tmp: Path, n: int, subscribe: bool, frames: int) -> tuple[tracemalloc.Snapshot, int]:
    import subprocess

    with simulator(tmp, n, 0.0) as sim:
        tags_file = None
        if n:
            import asyncio

            tags_file, _ = asyncio.run(_tags_file(tmp, sim))
        with traced_bridge(tmp, sim, frames) as (br, snap_path):
            _all_readable(br, timeout=600)
            if not subscribe:
                time.sleep(2)
                return _snapshot(br.proc.pid, snap_path), rss_bytes(br.proc.pid)
            if tags_file is None:
                tags_file = tmp / "none.json"
                tags_file.write_text("[]")
            # hold the subscription open long enough to take the snapshot while every item exists
            cmd = subscriber_cmd("asyncua", br.endpoint, tags_file, 600, 500, warmup=1)
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
            client = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
            try:
                assert client.stdout is not None
                for line in client.stdout:
                    if line.strip() == "start":
                        break
                return _snapshot(br.proc.pid, snap_path), rss_bytes(br.proc.pid)
            finally:
                client.terminate()
                client.wait(15)


def report(n: int, full: tuple[tracemalloc.Snapshot, int], empty: tuple[tracemalloc.Snapshot, int], top: int) -> None:
    (snap, rss), (snap0, rss0) = full, empty
    total = sum(s.size for s in snap.statistics("filename")) - sum(s.size for s in snap0.statistics("filename"))
    print(f"RSS per tag over base:        {(rss - rss0) / n:8.0f} B")
    print(f"tracemalloc per tag over base: {total / n:8.0f} B")
    print(f"{'B/tag':>8} {'objs/tag':>8}  allocated at")
    diffs = snap.compare_to(snap0, "lineno")
    for stat in diffs[:top]:
        frame = stat.traceback[0]
        where = frame.filename.split("site-packages/")[-1].replace(str(Path.cwd()) + "/", "")
        print(f"{stat.size_diff / n:8.1f} {stat.count_diff / n:8.2f}  {where}:{frame.lineno}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.memory_profile", description=__doc__)
    parser.add_argument("--tags", type=int, default=10_000)
    parser.add_argument("--subscribe", action="store_true", help="one asyncua client subscribed to every tag")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--frames", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        full = _profile(Path(tmp), args.tags, args.subscribe, args.frames)
        empty = _profile(Path(tmp), 0, args.subscribe, args.frames)
    report(args.tags, full, empty, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
