"""HistoryRead with absurd time ranges and counts against a real bridge process, the archive requests counted at
the simulator (/_sim/stats).

Reproduces finding 2 (ReadRaw 1601-01-01 .. 9999-12-31 with NumValuesPerNode 2^31-1 made 1,157 archive requests
for one node, 13,853 for 3 sessions x 4 nodes, and the client was dropped) and finding 5 (ReturnBounds with EndTime
near 9999-12-31 answered BadInternalError from an OverflowError). What must hold: each answer costs at most the
configured work per node (history.max_requests_per_read, plus room to finish one window), ends with a continuation
point where it stopped early, the walk along those points delivers every value once in order, and another
client keeps being served.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import Client, ua

from tests.helpers import wait_until
from tests.integration.conftest import Stack, bridge_stack  # noqa: F401  (the fixture, for this module)
from tests.reliability.uaraw import Reader

S = ua.StatusCodes
BUDGET = 12  # history.max_requests_per_read for this module (the default is 100)
VALUES = 2000  # history.max_values_per_read
PAGE = 500  # history.page_size
# the most one answer may cost: twice the budget plus three attempts at one reverse window (see history/service.py)
MOST = 2 * BUDGET + 3 * (VALUES // PAGE + 2)
DENSE = [f"System1.Gen.G000.Tag0000{i:02d}" for i in (0, 10, 20, 30)]  # one value per second, 2 days back
SPARSE = "System1.Tank1.Level"  # one value every 10 s
FIRST = datetime(1601, 1, 1, 0, 0, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)
HISTORY = "GET /api/history/{name}"
# asyncua drops a server whose keep-alive read takes over a second, and a connection's requests are answered in
# order, so the keep-alive waits behind the connection's own HistoryRead (the requesting clients here allow more;
# the `Reader`, on a connection of its own, must be answered within a second throughout)
WATCHDOG = 5.0


@pytest.fixture(scope="module")
def stack(bridge_stack: Callable[..., Stack]) -> Stack:  # noqa: F811
    return bridge_stack(
        "dp",
        sim_args=("--tags", "100", "--change-rate", "0", "--backfill-days", "0.5"),
        config={"history": {"max_requests_per_read": BUDGET, "page_size": PAGE, "max_values_per_read": VALUES}},
    )


def archive_requests(stack: Stack) -> int:
    return int(stack.sim_stats()["requests"].get(HISTORY, 0))


def raw(start: datetime | None, end: datetime | None, n: int, bounds: bool = False) -> ua.ReadRawModifiedDetails:
    return ua.ReadRawModifiedDetails(
        IsReadModified=False, StartTime=start, EndTime=end, NumValuesPerNode=n, ReturnBounds=bounds
    )


async def history_read(
    client: Client, details: object, nodes: list[ua.NodeId], cps: list[bytes | None] | None = None
) -> list[ua.HistoryReadResult]:
    params = ua.HistoryReadParameters(
        HistoryReadDetails=details,
        TimestampsToReturn=ua.TimestampsToReturn.Source,
        ReleaseContinuationPoints=False,  # asyncua's default is True
        NodesToRead=[
            ua.HistoryReadValueId(NodeId=n, ContinuationPoint=cp)
            for n, cp in zip(nodes, cps or [None] * len(nodes), strict=True)
        ],
    )
    return await client.uaclient.history_read(params)


async def node_ids(client: Client, names: list[str]) -> list[ua.NodeId]:
    ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
    return [ua.NodeId(name, ns) for name in names]


async def test_the_open_ended_raw_read_of_the_attack_costs_one_budget_per_answer(stack: Stack) -> None:
    async with Client(stack.url_for("reader"), timeout=30, watchdog_intervall=WATCHDOG) as client:
        (node,) = await node_ids(client, [SPARSE])
        before = archive_requests(stack)
        (res,) = await history_read(client, raw(FIRST, LAST, 2**31 - 1), [node])
        cost = archive_requests(stack) - before
        assert res.StatusCode.is_good(), res.StatusCode
        assert cost <= MOST, f"one answer made {cost} archive requests"
        # the walk along the continuation points: every value once, newest first, each answer within its budget
        seen = [dv.SourceTimestamp for dv in res.HistoryData.DataValues]
        answers, cp = 1, res.ContinuationPoint
        while cp:
            before = archive_requests(stack)
            (res,) = await history_read(client, raw(FIRST, LAST, 2**31 - 1), [node], [cp])
            assert archive_requests(stack) - before <= MOST
            assert res.StatusCode.is_good(), res.StatusCode
            seen += [dv.SourceTimestamp for dv in res.HistoryData.DataValues]
            answers, cp = answers + 1, res.ContinuationPoint
            assert answers < 200, "the walk back to 1970 did not end"
        assert seen == sorted(set(seen), reverse=True), "a value was repeated or out of order"
        assert len(seen) >= 12 * 3600 // 10  # half a day of one value every 10 s
        assert answers > 1  # the read did stop on its budget and resume
        print(
            f"MEASURED open-ended raw read: first answer {cost} archive requests, {answers} answers, {len(seen)} values"
        )


async def test_three_sessions_times_four_nodes_stay_bounded_and_others_are_served(stack: Stack) -> None:
    reader, stop = Reader(stack), asyncio.Event()
    task = asyncio.create_task(reader.run(stop))
    await wait_until(lambda: reader.reads >= 3, timeout=30, what="the other client's first reads")

    async def attacker() -> list[ua.HistoryReadResult]:
        async with Client(stack.url_for("reader"), timeout=60, watchdog_intervall=WATCHDOG) as client:
            nodes = await node_ids(client, DENSE)
            return await history_read(client, raw(FIRST, LAST, 2**31 - 1), nodes)

    before = archive_requests(stack)
    started = time.monotonic()
    answers = await asyncio.gather(*(attacker() for _ in range(3)))
    took = time.monotonic() - started
    cost = archive_requests(stack) - before
    stop.set()
    await task
    results = [r for answer in answers for r in answer]
    print(
        f"MEASURED 3 sessions x 4 nodes: {cost} archive requests, {took:.1f} s, slowest other read "
        f"{reader.slowest:.3f} s"
    )
    # each stopped on its budget (the archive holds far more than one answer) and may go on from there
    assert all(r.StatusCode.is_good() and r.ContinuationPoint for r in results), [
        (r.StatusCode.name, len(r.HistoryData.DataValues), bool(r.ContinuationPoint)) for r in results
    ]
    assert cost <= 12 * MOST, f"3 sessions x 4 nodes made {cost} archive requests (was 13,853)"
    assert reader.failures == [] and reader.slowest < 1.0, (reader.failures, reader.slowest)
    assert took < 30


async def test_return_bounds_at_the_end_of_time_answer_per_node(stack: Stack) -> None:
    async with Client(stack.url_for("reader"), timeout=30, watchdog_intervall=WATCHDOG) as client:
        nodes = await node_ids(client, [SPARSE, DENSE[1], "System1.No.Such.Tag"])
        hour_ago = datetime.now(UTC) - timedelta(hours=1)
        for details in (
            raw(hour_ago, LAST, 5, bounds=True),
            raw(LAST, hour_ago, 5, bounds=True),
            raw(FIRST, LAST, 5, bounds=True),
            raw(LAST, datetime(1601, 1, 1, tzinfo=UTC), 5, bounds=True),
        ):
            results = await history_read(client, details, nodes)
            codes = [r.StatusCode.value for r in results]
            assert codes[:2] == [S.Good, S.Good], [ua.StatusCode(c).name for c in codes]
            assert codes[2] == S.BadNodeIdUnknown
            for r in results[:2]:
                assert 0 < len(r.HistoryData.DataValues) <= 5


async def test_absurd_processed_reads_are_bounded(stack: Stack) -> None:
    async with Client(stack.url_for("reader"), timeout=30, watchdog_intervall=WATCHDOG) as client:
        (node,) = await node_ids(client, [DENSE[3]])
        y1970 = datetime(1970, 1, 1, tzinfo=UTC)
        for start, end, interval in (
            (y1970, LAST, 0.0),
            (y1970, LAST, 3_600_000.0),
            (LAST, y1970, 1000.0),
            (datetime.now(UTC) - timedelta(hours=6), datetime.now(UTC), 0.0),
        ):
            details = ua.ReadProcessedDetails(
                StartTime=start,
                EndTime=end,
                ProcessingInterval=interval,
                AggregateType=[ua.NodeId(ua.ObjectIds.AggregateFunction_Average)],
            )
            before = archive_requests(stack)
            (res,) = await history_read(client, details, [node])
            cost = archive_requests(stack) - before
            assert res.StatusCode.value in (S.Good, S.BadTooManyOperations), res.StatusCode
            assert cost <= MOST + 2 * 4, f"{start}..{end} every {interval} ms made {cost} archive requests"
            if res.ContinuationPoint:  # let it go again (and the session's others stay within their limit)
                release = ua.HistoryReadParameters(
                    HistoryReadDetails=details,
                    ReleaseContinuationPoints=True,
                    NodesToRead=[ua.HistoryReadValueId(NodeId=node, ContinuationPoint=res.ContinuationPoint)],
                )
                await client.uaclient.history_read(release)
        # 1601-01-01 is DateTime 0, "not specified": a processed read needs both ends
        details = ua.ReadProcessedDetails(
            StartTime=FIRST,
            EndTime=LAST,
            ProcessingInterval=0.0,
            AggregateType=[ua.NodeId(ua.ObjectIds.AggregateFunction_Average)],
        )
        (res,) = await history_read(client, details, [node])
        assert res.StatusCode.value == S.BadInvalidTimestampArgument


async def test_a_forward_walk_over_a_dense_archive_stays_within_budget_per_answer(stack: Stack) -> None:
    """The forward read's archive stream outlives each answer (history/pages.py): its requests are paid by the
    answer that asks for them, and the walk still returns every value once, oldest first."""
    async with Client(stack.url_for("reader"), timeout=30, watchdog_intervall=WATCHDOG) as client:
        (node,) = await node_ids(client, [DENSE[2]])
        end = datetime.now(UTC) - timedelta(minutes=1)
        details = raw(end - timedelta(hours=3), end, 0)
        seen: list[datetime] = []
        cp: bytes | None = None
        answers = 0
        for _ in range(99):
            answers += 1
            before = archive_requests(stack)
            (res,) = await history_read(client, details, [node], [cp])
            assert archive_requests(stack) - before <= MOST
            assert res.StatusCode.is_good(), res.StatusCode
            seen += [dv.SourceTimestamp for dv in res.HistoryData.DataValues]
            cp = res.ContinuationPoint
            if not cp:
                break
        assert seen == sorted(set(seen)), "a value was repeated or out of order"
        assert len(seen) == 3 * 3600  # one value per second
        assert answers >= 3 * 3600 // VALUES
