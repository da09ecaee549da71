"""A raw-history reader that counts the values a server sends without making a Python object of each: the rate the
bridge serves history at, apart from a client's decoding.

Why: the decoding readers of the history scenario (asyncua, node-opcua) spend 12-14 us of CPU per value. On the
bench's two shared cores, with the bridge and the simulator running too, that caps them near 55,000 and 80,000
values/s whatever the server does (bench/README.md, history). This reader is the server's figure; theirs are what
those clients get. Both are published.

It is a real OPC UA client over TCP: asyncua opens the secure channel and the session and reassembles the chunks.
Only the HistoryRead answer's body is read by hand (OPC UA Part 6 binary encoding): per result its StatusCode and
ContinuationPoint, then the DataValue count at the head of its HistoryData, whose values are skipped. So that a
wrong offset fails rather than counting garbage, the first answer is also decoded in full by asyncua and must
agree, and the caller checks the total against the archive (86,400 values for a day at 1 s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from asyncua import Client, ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import Primitives, nodeid_from_binary, struct_from_binary

__all__ = ["CountedRead", "count_answer", "raw_history_params", "read_counted"]

_HISTORY_DATA = ua.NodeId(ua.ObjectIds.HistoryData_Encoding_DefaultBinary)


@dataclass(frozen=True)
class CountedRead:
    values: int
    requests: int
    seconds: float  # wall clock of the whole read
    client_cpu_s: float  # this process's CPU over it


def count_answer(data: Buffer) -> list[tuple[int, bytes | None]]:
    """(DataValues, ContinuationPoint) of each result of a HistoryReadResponse body (type id first). Raises
    ValueError on a Bad service result or node result, or a result that does not carry HistoryData."""
    nodeid_from_binary(data)  # the response's type id (asyncua has already refused a ServiceFault)
    header = struct_from_binary(ua.ResponseHeader, data)
    if not header.ServiceResult.is_good():
        raise ValueError(f"HistoryRead: {header.ServiceResult.name}")
    out = []
    for _ in range(Primitives.Int32.unpack(data)):
        status = ua.StatusCode(Primitives.UInt32.unpack(data))
        if not status.is_good():
            raise ValueError(f"HistoryRead result: {status.name}")
        point = Primitives.ByteString.unpack(data)
        type_id = nodeid_from_binary(data)
        encoding = Primitives.Byte.unpack(data)
        if type_id != _HISTORY_DATA or not encoding & 1:
            raise ValueError(f"HistoryRead result carries {type_id}, not HistoryData")
        length = Primitives.Int32.unpack(data)
        values = Primitives.Int32.unpack(data)  # the DataValues array's length leads the body
        data.skip(length - 4)
        out.append((max(values, 0), point or None))
    return out


def raw_history_params(
    reads: dict[ua.NodeId, bytes | None], start: datetime, end: datetime, per_request: int
) -> ua.HistoryReadParameters:
    """A raw HistoryRead of these nodes (each with its continuation point, or None to begin), both timestamps, no
    bounds: what every history reader of the benchmark asks (`per_request` 0: all in one answer)."""
    details = ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=per_request, ReturnBounds=False
    )
    return ua.HistoryReadParameters(
        HistoryReadDetails=details,
        ReleaseContinuationPoints=False,
        TimestampsToReturn=ua.TimestampsToReturn.Both,
        NodesToRead=[ua.HistoryReadValueId(NodeId=node, ContinuationPoint=point) for node, point in reads.items()],
    )


async def read_counted(
    endpoint: str, name: str, namespace: str, start: datetime, end: datetime, per_request: int = 1000
) -> CountedRead:
    """Read one node's raw history from `start` to `end`, following continuation points, counting the values."""
    async with Client(endpoint, timeout=60) as client:
        node = ua.NodeId(name, await client.get_namespace_index(namespace))
        protocol = client.uaclient.protocol
        assert protocol is not None
        values = requests = 0
        point: bytes | None = None
        t0, c0 = time.perf_counter(), time.process_time()
        while True:
            params = raw_history_params({node: point}, start, end, per_request)
            data = await protocol.send_request(ua.HistoryReadRequest(Parameters=params))
            counted = count_answer(data.copy())
            if requests == 0:  # the check: asyncua's full decoding of the first answer says the same
                full = struct_from_binary(ua.HistoryReadResponse, data)
                decoded = [(len(r.HistoryData.DataValues), r.ContinuationPoint or None) for r in full.Results]
                if counted != decoded:
                    raise ValueError(f"counted {counted}, decoded {decoded}")
            ((got, point),) = counted
            values += got
            requests += 1
            if not point:
                break
        return CountedRead(values, requests, time.perf_counter() - t0, time.process_time() - c0)
