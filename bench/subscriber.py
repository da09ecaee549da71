"""One subscribed OPC UA client in its own process: subscribes to every tag, counts notifications, measures latency.

`python -m bench.subscriber --endpoint URL --tags-file F --seconds S [--sampling-ms 1000] [--warmup S]
[--go-file P]` prints one JSON line: notifications, per second, and latency percentiles (receive time -
SourceTimestamp, which the simulator stamps at the moment it changes a value; both on this machine's clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

from asyncua import Client, ua

from bench.naming import NAMESPACE_URI, load_tags


class Counter:
    def __init__(self) -> None:
        self.count = 0
        self.counting = False
        self.latencies: list[float] = []

    def datachange_notification(self, node: object, val: object, data: ua.DataChangeNotification) -> None:
        if not self.counting:
            return
        self.count += 1
        src = data.monitored_item.Value.SourceTimestamp
        if src is not None and len(self.latencies) < 200_000:
            if src.tzinfo is None:
                src = src.replace(tzinfo=UTC)
            self.latencies.append((datetime.now(UTC) - src).total_seconds())


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--tags-file", type=Path, required=True, help="JSON from bench.naming.save_tags")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--sampling-ms", type=float, default=1000)
    ap.add_argument("--publish-ms", type=float, default=500)
    ap.add_argument("--signal-window", action="store_true", help='print "start" when counting starts')
    ap.add_argument(
        "--go-file",
        type=Path,
        help='after the warmup print "subscribed" and wait for this file to exist (the harness saw the server settle)',
    )
    args = ap.parse_args()

    # asyncua 2.1 drops a server that misses its ServerState probe for 1 s; at saturation (100 % change/s at 50k+
    # tags, for the bare asyncua baseline too) that ends the measurement instead of measuring the ceiling
    client = Client(args.endpoint, timeout=60, watchdog_intervall=5.0)
    client.session_timeout = 120_000
    async with client:
        ns = await client.get_namespace_index(NAMESPACE_URI)
        counter = Counter()
        sub = await client.create_subscription(
            ua.CreateSubscriptionParameters(
                RequestedPublishingInterval=args.publish_ms,
                RequestedLifetimeCount=1000,
                RequestedMaxKeepAliveCount=100,
                MaxNotificationsPerPublish=0,
                PublishingEnabled=True,
            ),
            counter,
        )
        names = [name for name, _ in load_tags(args.tags_file)]
        t0 = time.monotonic()
        for i in range(0, len(names), 2000):
            nodes = [client.get_node(ua.NodeId(n, ns)) for n in names[i : i + 2000]]
            await sub.subscribe_data_change(nodes, sampling_interval=args.sampling_ms, queuesize=1)
        subscribe_s = time.monotonic() - t0
        await asyncio.sleep(args.warmup)  # initial values of every item arrive first; not counted
        if args.go_file is not None:
            print("subscribed", flush=True)
            deadline = time.monotonic() + 600
            while not args.go_file.exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{args.go_file} did not appear within 600 s")
                await asyncio.sleep(0.1)
        counter.counting = True
        if args.signal_window:
            print("start", flush=True)
        t1 = time.monotonic()
        await asyncio.sleep(args.seconds)
        counter.counting = False
        elapsed = time.monotonic() - t1
        lat = counter.latencies
        print(
            json.dumps(
                {
                    "notifications": counter.count,
                    "per_second": counter.count / elapsed,
                    "subscribe_s": subscribe_s,
                    "latency_p50_ms": None if not lat else percentile(lat, 50) * 1000,
                    "latency_p99_ms": None if not lat else percentile(lat, 99) * 1000,
                }
            ),
            flush=True,
        )
        await sub.delete()


if __name__ == "__main__":
    asyncio.run(main())
