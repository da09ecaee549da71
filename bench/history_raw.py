"""CPU cost of serving raw history, in-process and without HTTP: HistoryService.read over an in-memory archive of
one day of 1 s values, then the binary encoding of the answer as asyncua sends it (HistoryReadResponse).

`python -m bench.history_raw [--values 86400] [--page 1000] [--repeat 3]` prints one JSON line per run: CPU seconds
(time.process_time, so other load on the machine hardly matters) for building the pages and for encoding them,
and values per CPU-second; the archive's own cost (slicing a list) is in the build figure and is negligible.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from asyncua import ua
from asyncua.ua.ua_binary import struct_to_binary

from bridge.config import HistoryConfig, Role
from bridge.opcua.history.service import HistoryService
from bridge.opcua.security.users import BridgeUser
from bridge.wincc.models import ArchiveValue, DataType, TagInfo
from tests.unit.ua_rig import server_with_tags

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class MemoryArchive:
    def __init__(self, values: list[ArchiveValue]) -> None:
        self.values, self.times = values, [v.timestamp for v in values]

    async def archive(
        self, tag: TagInfo, start: datetime, end: datetime, page_size: int = 1000
    ) -> AsyncIterator[list[ArchiveValue]]:
        lo, hi = bisect.bisect_left(self.times, start), bisect.bisect_right(self.times, end)
        for i in range(lo, hi, page_size):
            yield self.values[i : min(i + page_size, hi)]


async def run(n: int, page: int, repeat: int) -> None:
    tag = TagInfo("A.Flow", DataType.double, ("A",), "Flow", archived=True)
    server, directory = await server_with_tags([tag])
    archive = MemoryArchive([ArchiveValue(float(i % 3600) / 10, 0xC0, T0 + timedelta(seconds=i)) for i in range(n)])
    service = HistoryService(server, directory, archive, HistoryConfig(page_size=1000))  # type: ignore[arg-type]
    await service.setup()
    session = SimpleNamespace(user=BridgeUser.named("r", Role.reader), session_id=ua.NodeId(1, 1))
    node = directory.node_id(tag.name)
    for _ in range(repeat):
        build = encode = 0.0
        got, cp = 0, None
        while True:
            details = ua.ReadRawModifiedDetails(
                IsReadModified=False,
                StartTime=T0,
                EndTime=T0 + timedelta(seconds=n),
                NumValuesPerNode=page,
                ReturnBounds=False,
            )
            params = ua.HistoryReadParameters(
                HistoryReadDetails=details,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                ReleaseContinuationPoints=False,
                NodesToRead=[ua.HistoryReadValueId(NodeId=node, ContinuationPoint=cp)],
            )
            t0 = time.process_time()
            results = await service.read(session, params)  # type: ignore[arg-type]
            t1 = time.process_time()
            struct_to_binary(ua.HistoryReadResponse(Results=results))
            t2 = time.process_time()
            build, encode = build + t1 - t0, encode + t2 - t1
            (res,) = results
            if not res.StatusCode.is_good():
                raise RuntimeError(str(res.StatusCode))
            got += (
                len(res.HistoryData.DataValues)
                if isinstance(res.HistoryData, ua.HistoryData)
                else getattr(res.HistoryData, "count", 0)
            )
            cp = res.ContinuationPoint
            if not cp:
                break
        print(
            json.dumps(
                {
                    "values": got,
                    "build_cpu_s": round(build, 3),
                    "encode_cpu_s": round(encode, 3),
                    "values_per_cpu_s": round(got / (build + encode)),
                }
            ),
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--values", type=int, default=86_400)
    ap.add_argument("--page", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    asyncio.run(run(args.values, args.page, args.repeat))


if __name__ == "__main__":
    main()
