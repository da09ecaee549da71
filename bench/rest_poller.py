"""The bare REST poller: the bridge's batched reads with a plain HTTP client, answers read and thrown away.

`python -m bench.rest_poller --url SIM --tags-file F --seconds S [--batch-size 500] [--concurrency 4]`
polls every tag of F once a second in ReadMultiple batches of `batch-size`, at most `concurrency` in flight (the
bridge's defaults in bench/), on one keep-alive connection pool. It prints "start" when the window starts and one
JSON line at the end. Its CPU (read from /proc by the harness) is what the HTTP part of polling costs in Python with
the HTTP library alone (`--transport aiohttp`, the default: bare aiohttp, what the bridge's engine runs on; `httpx`:
httpx's client): the bridge's CPU minus this and the bare asyncua server's is what the bridge itself adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx

from bench.naming import load_tags

READ_MANY_PATH = "/WinCC/REST/Tags/ReadMultiple"  # the dp dialect's batched read (bridge/wincc/dp.py)


Post = Callable[[bytes], Awaitable[bytes]]


async def poll(post: Post, batches: list[bytes], limit: asyncio.Semaphore) -> int:
    async def one(body: bytes) -> int:
        async with limit:
            return len(await post(body))

    return sum(await asyncio.gather(*(one(b) for b in batches)))


@asynccontextmanager
async def http_post(url: str, transport: str, concurrency: int) -> AsyncIterator[Post]:
    headers = {"Content-Type": "application/json"}
    if transport == "aiohttp":
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(url, connector=connector) as session:

            async def post_aiohttp(body: bytes) -> bytes:
                async with session.post(READ_MANY_PATH, data=body, headers=headers) as answer:
                    return await answer.read()

            yield post_aiohttp
        return
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:

        async def post_httpx(body: bytes) -> bytes:
            return (await client.post(READ_MANY_PATH, content=body, headers=headers)).content

        yield post_httpx


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--tags-file", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument(
        "--transport",
        choices=["aiohttp", "httpx"],
        default="aiohttp",
        help="bare aiohttp (what the bridge's default engine runs on) or httpx's client (the bridge's fallback)",
    )
    args = ap.parse_args()
    names = [name for name, _ in load_tags(args.tags_file)]
    batches = [
        json.dumps({"TagNames": names[i : i + args.batch_size]}).encode() for i in range(0, len(names), args.batch_size)
    ]
    async with http_post(args.url, args.transport, args.concurrency) as client:
        limit = asyncio.Semaphore(args.concurrency)
        started = time.monotonic()
        counting_at = started + args.warmup
        cycles = late = 0
        nbytes = 0
        announced = False
        next_cycle = started
        while True:
            now = time.monotonic()
            if now >= counting_at and not announced:
                print("start", flush=True)
                announced, window_start = True, now
            if announced and now - window_start >= args.seconds:
                break
            nbytes_cycle = await poll(client, batches, limit)
            if announced:
                cycles += 1
                nbytes += nbytes_cycle
                late += time.monotonic() - next_cycle > args.interval
            next_cycle += args.interval
            await asyncio.sleep(max(0.0, next_cycle - time.monotonic()))
    print(
        json.dumps(
            {
                "cycles": cycles,
                "late_cycles": late,
                "requests_per_cycle": len(batches),
                "bytes_per_cycle": nbytes / cycles if cycles else 0,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    asyncio.run(main())
