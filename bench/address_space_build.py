"""How fast AddressSpace.build() puts N generated tags into asyncua, against asyncua's own add_folder/add_variable.

`python -m bench.address_space_build --tags 10000 100000` prints one line per size: build seconds, tags/s,
nodes/s (tags + AnalogItemType properties), RSS growth, CPU seconds; then, for the same tags and folders (at most
--add-variable-max of them, 10,000 by default: asyncua's per-node path takes about a minute for 100k), the same
figures for one `add_folder` per folder and one `add_variable` per tag, the way bench/baseline_server.py builds.
A quick measurement, not a test: nothing asserts a time.

Not like for like, and the ratio says so: the bridge's build makes more per tag than add_variable does (the
tag's own DataType, AccessLevel and UserAccessLevel, Description, MinimumSamplingInterval, Historizing, and for
analog tags an AnalogItemType with EURange and EngineeringUnits properties), while add_variable makes a
BaseDataVariable holding a Double and nothing else. So "nodes/s" is the fairer of the two figures.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import time
import tracemalloc
from typing import Any

from asyncua import Server

from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.tags import TagDirectory
from bridge.wincc.models import DataType, Folder, TagInfo

_TYPES = [DataType.float, DataType.int16, DataType.bool, DataType.double, DataType.int32, DataType.string]


def generated(n: int, per_folder: int = 100) -> list[Folder | TagInfo]:
    items: list[Folder | TagInfo] = []
    for i in range(n):
        area, unit = divmod(i // per_folder, 100)
        folder = (f"Area{area:03d}", f"Unit{unit:02d}")
        if i % per_folder == 0:
            if unit == 0:
                items.append(Folder(folder[:1]))
            items.append(Folder(folder))
        dt = _TYPES[i % len(_TYPES)]
        analog = dt in (DataType.float, DataType.double) and i % 2 == 0
        items.append(
            TagInfo(
                name=".".join(folder) + f".Tag{i:06d}",
                data_type=dt,
                folder=folder,
                unit="m3/h" if analog else None,
                low=0.0 if analog else None,
                high=100.0 if analog else None,
                description=f"generated tag {i}",
                writable=i % 3 == 0,
                archived=i % 5 == 0,
            )
        )
    return items


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def measure(n: int, trace: bool) -> dict[str, float]:
    server = Server()
    await server.init()
    ns = [await server.register_namespace(f"urn:bench{s}") for s in ("", "/folders", "/bridge")]
    items = generated(n)
    gc.collect()
    nodes_before = len(server.iserver.aspace.keys())
    rss0 = rss()
    if trace:
        tracemalloc.start()
    space = AddressSpace(server, TagDirectory(*ns))
    t0, cpu0 = time.perf_counter(), time.process_time()
    await space.build(items)
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    traced = tracemalloc.get_traced_memory()[0] if trace else 0
    tracemalloc.stop()
    gc.collect()
    nodes = len(server.iserver.aspace.keys()) - nodes_before
    grown = rss() - rss0
    # a re-browse where 1% of the tags changed, 1% disappeared and 1% are new
    step = 100
    tags = [i for i in items if isinstance(i, TagInfo)]
    gone = {t.name for t in tags[1::step]}
    changed = {t.name for t in tags[2::step]}
    rebrowse = [
        dataclasses.replace(i, description="changed") if isinstance(i, TagInfo) and i.name in changed else i
        for i in items
        if not (isinstance(i, TagInfo) and i.name in gone)
    ]
    rebrowse += [TagInfo(f"New.Tag{i:06d}", DataType.double, ("New",)) for i in range(n // step)]
    t0 = time.perf_counter()
    added, removed = await space.update(rebrowse)
    update_s = time.perf_counter() - t0
    replaced = len(space.last_changed)
    t0 = time.perf_counter()
    await space.update(rebrowse)
    unchanged_s = time.perf_counter() - t0
    return {
        "tags": n,
        "nodes": nodes,
        "build_s": round(dt, 3),
        "cpu_s": round(cpu, 3),
        "tags_per_s": round(n / dt),
        "nodes_per_s": round(nodes / dt),
        "rss_growth_mb": round(grown / 2**20, 1),
        "bytes_per_tag": round(grown / n) if not trace else round(traced / n),
        "update_3pct_s": round(update_s, 3),
        "added": len(added),
        "removed": len(removed),
        "changed": replaced,
        "update_unchanged_s": round(unchanged_s, 3),
    }


async def measure_add_variable(n: int) -> dict[str, float]:
    """asyncua's per-node path for the same folders and tags (bench/baseline_server.py's way of building)."""
    from asyncua import ua

    server = Server()
    await server.init()
    ns = await server.register_namespace("urn:bench")
    folder_ns = await server.register_namespace("urn:bench/folders")
    items = generated(n)
    gc.collect()
    nodes_before = len(server.iserver.aspace.keys())
    rss0, cpu0, t0 = rss(), time.process_time(), time.perf_counter()
    folders: dict[tuple[str, ...], Any] = {(): server.nodes.objects}
    for item in items:
        if isinstance(item, Folder):
            parent = folders[item.path[:-1]]
            folders[item.path] = await parent.add_folder(ua.NodeId("/".join(item.path), folder_ns), item.path[-1])
        else:
            await folders[item.folder].add_variable(
                ua.NodeId(item.name, ns), item.name.rsplit(".", 1)[-1], ua.Variant(0.0, ua.VariantType.Double)
            )
    dt, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    gc.collect()
    nodes = len(server.iserver.aspace.keys()) - nodes_before
    return {
        "tags": n,
        "nodes": nodes,
        "build_s": round(dt, 3),
        "cpu_s": round(cpu, 3),
        "tags_per_s": round(n / dt),
        "nodes_per_s": round(nodes / dt),
        "rss_growth_mb": round((rss() - rss0) / 2**20, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tags", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument(
        "--add-variable-max",
        type=int,
        default=10_000,
        help="compare with add_variable up to this many tags (0: not at all)",
    )
    p.add_argument("--tracemalloc", action="store_true", help="bytes per tag from tracemalloc (slower build)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    for n in args.tags:
        bulk = asyncio.run(measure(n, args.tracemalloc))
        print(json.dumps({"build": "bridge bulk", **bulk}), flush=True)
        if 0 < n <= args.add_variable_max:
            per_node = asyncio.run(measure_add_variable(n))
            print(
                json.dumps(
                    {
                        "build": "asyncua add_variable",
                        **per_node,
                        "bulk_cpu_ratio": round(bulk["cpu_s"] / per_node["cpu_s"], 3),
                        "bulk_nodes_per_s_ratio": round(bulk["nodes_per_s"] / per_node["nodes_per_s"], 2),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
