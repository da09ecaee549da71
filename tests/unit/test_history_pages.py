"""A forward raw read resumed by continuation points goes on with the same archive read (bridge/opcua/history/
pages.py): each REST page is fetched once, the values come out complete and in order, and a read abandoned with
its continuation point (released, or the session closed) leaves nothing running."""

from __future__ import annotations

import pytest
import pytest_asyncio

from bridge.config import HistoryConfig
from bridge.opcua.history.service import HistoryService
from tests.helpers import next_turn, wait_until
from tests.unit.test_history_service import TAGS, memory_archive, params, raw, read_all, read_one, reader, s
from tests.unit.ua_rig import server_with_tags

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stage():
    return await server_with_tags(TAGS)


async def _service(stage):
    server, d = stage
    archive = memory_archive()
    service = HistoryService(server, d, archive, HistoryConfig(page_size=1000, max_continuation_points=10))
    await service.setup()
    return d, archive, service


async def test_each_archive_page_is_read_once(stage) -> None:
    d, archive, service = await _service(stage)
    values, calls = await read_all(service, d, "A.Flow", raw(s(0), s(5000), n=1000))
    assert [dv.Value.Value for dv in values] == [float(i) for i in range(5000)]
    assert calls == 5
    # 5 pages of 1000 and the empty answer that ends the read; asking again from the last timestamp made it 10
    assert archive.requests <= 6, archive.requests
    assert archive.handed_out <= 5001  # the archive's end is inclusive: the value at EndTime comes too


async def test_equal_timestamps_across_pages_are_neither_lost_nor_repeated(stage) -> None:
    d, archive, service = await _service(stage)
    values, _ = await read_all(service, d, "A.Dup", raw(s(0), s(1000), n=7))
    assert [dv.Value.Value for dv in values] == list(range(3000))


async def test_an_abandoned_read_leaves_nothing_running(stage) -> None:
    d, archive, service = await _service(stage)
    session = reader(7)
    first = await read_one(service, d, "A.Flow", raw(s(0), s(50_000), n=1000), session)
    assert first.ContinuationPoint
    await next_turn()  # the page fetched ahead has started
    released = params(raw(s(0), s(50_000), n=1000), ["A.Flow"], d, first.ContinuationPoint)
    released.ReleaseContinuationPoints = True
    (res,) = await service.read(session, released)
    assert res.StatusCode.is_good()
    service.release(session)
    # the page fetched ahead completes on its own, and the dropped read is closed (asyncio finalizes it)
    await wait_until(lambda: archive.inflight == 0, timeout=5, interval=0.01, what="no archive read in flight")
