"""The ceiling: a bare asyncua server with the same tags and folders as the bridge, values written from memory.

Run as a separate process: `python -m bench.baseline_server --port P --tags-file F --change-rate R`. Prints one JSON
line `{"ready": true, "build_s": ...}` when it serves, then changes R*N values per second (spread over 10 ticks a
second) until killed. Names and folders are the ones the simulator serves (browsed once by bench.naming), so clients
subscribe to the same NodeIds in both cases.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from asyncua import Server, ua

from bench.naming import NAMESPACE_URI, load_tags


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tags-file", type=Path, required=True, help="JSON from bench.naming.save_tags")
    ap.add_argument("--change-rate", type=float, default=0.01, help="fraction of tags changing per second")
    args = ap.parse_args()

    server = Server()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{args.port}/wincc")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    await server.init()
    t0 = time.monotonic()
    ns = await server.register_namespace(NAMESPACE_URI)
    folder_ns = await server.register_namespace(NAMESPACE_URI + "/folders")
    folders: dict[tuple[str, ...], object] = {}
    objects = server.nodes.objects
    nodes = []
    tags = load_tags(args.tags_file)
    for name, folder_path in tags:
        parent = objects
        for i in range(1, len(folder_path) + 1):
            key = folder_path[:i]
            if key not in folders:
                folders[key] = await parent.add_folder(ua.NodeId("/".join(key), folder_ns), key[-1])
            parent = folders[key]
        var = await parent.add_variable(
            ua.NodeId(name, ns), name.rsplit(".", 1)[-1], ua.Variant(0.0, ua.VariantType.Double)
        )
        nodes.append(var.nodeid)
    build_s = time.monotonic() - t0
    # the same collector tuning the bridge applies after its build (bridge/runtime/gc_policy.py): without it, full
    # collections over 100k tags' nodes stall this server too, and the comparison would flatter the bridge
    gc.freeze()
    await server.start()
    print(json.dumps({"ready": True, "build_s": build_s, "tags": len(nodes)}), flush=True)

    ticks_per_s = 10
    per_tick = max(1, round(len(tags) * args.change_rate / ticks_per_s)) if args.change_rate > 0 else 0
    cursor = 0
    value = 0.0
    next_tick = time.monotonic()
    while True:
        next_tick += 1 / ticks_per_s
        value += 1.0
        now = datetime.now(UTC)  # the moment of change, as the simulator stamps it: the client measures latency from it
        for _ in range(per_tick):
            nodeid = nodes[cursor]
            cursor = (cursor + 1) % len(nodes)
            await server.write_attribute_value(
                nodeid, ua.DataValue(ua.Variant(value, ua.VariantType.Double), SourceTimestamp=now, ServerTimestamp=now)
            )
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
