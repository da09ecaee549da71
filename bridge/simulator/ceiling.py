"""The simulator's own ceiling: how many batched reads per second it answers, so a benchmark can show it is not
the bottleneck.

    python -m bridge.simulator.ceiling [--tags N] [--seconds S] [--batch B] [--dialect dp|restservice]

Starts the simulator in a subprocess (no auth, N generated tags changing once a second), then sends batched reads
of generated tag names (ReadMultiple for dp, POST /tagManagement/Values for restservice): first one request at a
time, then 4 in flight on 4 keep-alive connections, each phase for half of `--seconds`. Prints one JSON line and
exits:

    {"dialect": "dp", "tags": 100000, "batch": 500, "seconds": 10.0,
     "sequential": {"requests_per_s": ..., "tag_values_per_s": ..., "sim_cpu_share": ...,
                    "requests_per_sim_cpu_s": ...},
     "concurrent_4": {...the same keys...}}

The client is a minimal HTTP/1.1 keep-alive client in this process (request bodies encoded once, answers parsed
and checked), so that on a 2-core machine the simulator, not the client, is what is measured. `sim_cpu_share` is
the part of one core the simulator used (Linux /proc; null elsewhere) and `requests_per_sim_cpu_s` its requests
per CPU-second: the figure that other load on a shared machine changes least.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import orjson

from bridge.simulator.plant import MAX_GENERATED

__all__ = ["main", "measure"]

_START_TIMEOUT_S = 60.0
_REQUEST_TIMEOUT_S = 30.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _requests(dialect: str, host: str, port: int, tags: int, batch: int) -> Iterator[bytes]:
    """Whole HTTP requests cycling through every generated tag, encoded once: the client's CPU is the simulator's
    rival on a small machine."""
    if dialect == "dp":
        path, key = "/WinCC/REST/Tags/ReadMultiple", "TagNames"
        names = [f"System1.Gen.G{i // 1000:03d}.Tag{i:06d}" for i in range(tags)]
    else:
        path, key = "/WinCCRestService/tagManagement/Values", "variableNames"
        names = [f"Gen_{i:06d}" for i in range(tags)]
    out = []
    for offset in range(0, tags - batch + 1, batch):
        body = orjson.dumps({key: names[offset : offset + batch]})
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        out.append(head.encode() + body)
    while True:
        yield from out


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared requests and reads Content-Length answers."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection(host, port, limit=2**22)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> bytes:
        self._writer.write(request)
        head = await self._reader.readuntil(b"\r\n\r\n")
        status_line, _, headers = head.decode("latin-1").partition("\r\n")
        if status_line.split(" ", 2)[1] != "200":
            raise RuntimeError(f"the simulator answered {status_line!r}")
        length = next(
            (
                int(line.split(":", 1)[1])
                for line in headers.split("\r\n")
                if line.lower().startswith("content-length:")
            ),
            None,
        )
        if length is None:
            raise RuntimeError("the simulator's answer has no Content-Length")
        return await self._reader.readexactly(length)

    async def close(self) -> None:
        self._writer.close()
        try:
            await self._writer.wait_closed()
        except OSError:
            pass


def _cpu_s(pid: int | None) -> float | None:
    """CPU seconds a process has used so far (Linux /proc), None where unknown."""
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _phase(
    connections: list[_Connection], requests: Iterator[bytes], seconds: float, batch: int, pid: int | None
) -> dict[str, float | None]:
    deadline = time.monotonic() + seconds
    done = 0

    async def worker(conn: _Connection) -> None:
        nonlocal done
        while time.monotonic() < deadline:
            answer = orjson.loads(await asyncio.wait_for(conn.exchange(next(requests)), _REQUEST_TIMEOUT_S))
            items = answer["Tags"] if isinstance(answer, dict) else answer
            if len(items) != batch:
                raise RuntimeError(f"asked for {batch} tags, got {len(items)}")
            done += 1

    cpu0, t0 = _cpu_s(pid), time.monotonic()
    await asyncio.gather(*(worker(c) for c in connections))
    elapsed, cpu1 = time.monotonic() - t0, _cpu_s(pid)
    rps = done / elapsed
    used = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
    return {
        "requests_per_s": round(rps, 1),
        "tag_values_per_s": round(rps * batch),
        "sim_cpu_share": None if used is None else round(used / elapsed, 2),
        "requests_per_sim_cpu_s": round(done / used, 1) if used else None,
    }


async def measure(
    host: str, port: int, dialect: str, tags: int, seconds: float, batch: int, pid: int | None = None
) -> dict[str, Any]:
    """Measure a running simulator on host:port (process `pid`, if known, for its CPU time); the two phases split
    `seconds`."""
    requests = _requests(dialect, host, port, tags, batch)
    connections = [await _Connection.open(host, port) for _ in range(4)]
    try:
        await connections[0].exchange(next(requests))  # warm up
        sequential = await _phase(connections[:1], requests, seconds / 2, batch, pid)
        concurrent = await _phase(connections, requests, seconds / 2, batch, pid)
    finally:
        for conn in connections:
            await conn.close()
    return {
        "dialect": dialect,
        "tags": tags,
        "batch": batch,
        "seconds": seconds,
        "sequential": sequential,
        "concurrent_4": concurrent,
    }


async def _wait_up(host: str, port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    health = f"GET /_sim/health HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the simulator exited with {proc.returncode} before it answered")
        try:
            conn = await _Connection.open(host, port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        try:
            await asyncio.wait_for(conn.exchange(health), 5)
            return
        finally:
            await conn.close()
    raise SystemExit(f"the simulator did not answer within {_START_TIMEOUT_S:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.simulator.ceiling", description="Measure the WinCC simulator's batched-read throughput."
    )
    parser.add_argument("--tags", type=int, default=100_000, help="generated tags in the simulator (default 100000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="total measuring time, both phases (default 10)")
    parser.add_argument("--batch", type=int, default=500, help="tags per request (default 500)")
    parser.add_argument("--dialect", choices=["dp", "restservice"], default="dp")
    ns = parser.parse_args(argv)
    if not 0 < ns.seconds <= 60:
        parser.error("--seconds must be more than 0 and at most 60")
    if not 0 < ns.tags <= MAX_GENERATED:
        parser.error(f"--tags must be 1..{MAX_GENERATED}")
    if not 0 < ns.batch <= ns.tags:
        parser.error("--batch must be between 1 and --tags")
    host, port = "127.0.0.1", _free_port()
    cmd = [
        sys.executable,
        "-m",
        "bridge.simulator",
        "--host",
        host,
        "--port",
        str(port),
        "--dialect",
        ns.dialect,
        "--tags",
        str(ns.tags),
        "--change-rate",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def run() -> dict[str, Any]:
        await _wait_up(host, port, proc)
        return await measure(host, port, ns.dialect, ns.tags, ns.seconds, ns.batch, proc.pid)

    try:
        result = asyncio.run(run())
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
