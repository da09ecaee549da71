"""The bare REST poller: the bridge's batched reads with plain httpx, answers read and thrown away.

`python -m bench.rest_poller --url SIM --tags-file F --seconds S [--batch-size 500] [--concurrency 4]`
polls every tag of F once a second in ReadMultiple batches of `batch-size`, at most `concurrency` in flight (the
bridge's defaults in bench/), on one keep-alive connection pool. It prints "start" when the window starts and one
JSON line at the end. Its CPU (read from /proc by the harness) is what the HTTP part of polling costs in Python with
httpx alone: the bridge's CPU minus this and the bare asyncua server's is what the bridge itself adds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import httpx

from bench.naming import load_tags

READ_MANY_PATH = "/WinCC/REST/Tags/ReadMultiple"  # the dp dialect's batched read (bridge/wincc/dp.py)


async def poll(client: httpx.AsyncClient, batches: list[list[str]], limit: asyncio.Semaphore) -> int:
    async def one(batch: list[str]) -> int:
        async with limit:
            response = await client.post(READ_MANY_PATH, json={"TagNames": batch})
            return len(response.content)

    return sum(await asyncio.gather(*(one(b) for b in batches)))


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
        choices=["httpx", "aiohttp"],
        default="httpx",
        help="httpx's own (h11) or httpx-aiohttp's (aiohttp's C parser), same httpx API",
    )
    args = ap.parse_args()
    names = [name for name, _ in load_tags(args.tags_file)]
    batches = [names[i : i + args.batch_size] for i in range(0, len(names), args.batch_size)]
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
    client_class = httpx.AsyncClient
    if args.transport == "aiohttp":
        from httpx_aiohttp import HttpxAiohttpClient as client_class  # type: ignore[no-redef]
    async with client_class(base_url=args.url, limits=limits, timeout=30) as client:
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
