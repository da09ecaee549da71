"""A minimal server for tests/integration/test_address_space_over_tcp.py: the bridge's AddressSpace and
BrowseService wired into asyncua exactly as bridge/app.py wires them (BridgeInternalServer +
ServiceHandlers), with generated tags and no WinCC behind it.

`python -m tests.integration._servers.address_space_server --port P --tags N --max-refs M` prints one JSON line
`{"ready": true, ...}` when it serves, then serves until stdin closes or it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time

from asyncua import Server

from bridge.opcua.model.address_space import AddressSpace
from bridge.opcua.model.tags import TagDirectory
from bridge.opcua.services.browse import BrowseService
from bridge.opcua.services.session import BridgeInternalServer
from bridge.wincc.models import DataType, Folder, TagInfo

NAMESPACE = "urn:wincc-opcua-bridge:test-tags"


def model(tags: int) -> list[Folder | TagInfo]:
    items: list[Folder | TagInfo] = [Folder(("Big",)), Folder(("Small",))]
    items += [TagInfo(f"Big.T{i:05d}", DataType.int32, ("Big",)) for i in range(tags)]
    items += [
        TagInfo(
            "Small.Level",
            DataType.float,
            ("Small",),
            unit="m3/h",
            low=0,
            high=10,
            description="level",
            writable=True,
            archived=True,
        ),
        TagInfo("Small.Running", DataType.bool, ("Small",)),
    ]
    return items


async def stdin_closed() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


async def main(port: int, tags: int, max_refs: int, max_cps: int) -> None:
    iserver = BridgeInternalServer()
    server = Server(iserver=iserver)
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/test")
    await server.init()
    ns = [await server.register_namespace(NAMESPACE + s) for s in ("", "/folders", "/bridge")]
    space = AddressSpace(server, TagDirectory(*ns))
    started = time.monotonic()
    await space.build(model(tags))
    build_s = time.monotonic() - started
    browse = BrowseService(server, max_references_per_node=max_refs, max_continuation_points=max_cps)
    iserver.handlers.browse = browse.browse
    iserver.handlers.browse_next = browse.browse_next
    iserver.handlers.on_close.append(browse.release)
    async with server:
        print(
            json.dumps(
                {"ready": True, "build_s": round(build_s, 3), "tag_ns": ns[0], "folder_ns": ns[1], "bridge_ns": ns[2]}
            ),
            flush=True,
        )
        await stdin_closed()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--tags", type=int, default=10_000)
    p.add_argument("--max-refs", type=int, default=1000)
    p.add_argument("--max-cps", type=int, default=50)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(main(args.port, args.tags, args.max_refs, args.max_cps))
