"""node-opcua, an independent OPC UA stack, against the bridge: browse with paging, read, write, subscribe,
history raw and processed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.interop

NS_URI = "urn:wincc-opcua-bridge:tags"


@pytest.fixture(scope="module")
def stack(bridge_stack):
    return bridge_stack("dp")


def spec(stack, steps, user="operator"):
    return {"endpoint": stack.endpoint, "user": user, "password": stack.users[user], "steps": steps}


def nsid(name: str, stack) -> str:
    # namespace index of the tags: the bridge registers it first after the server's own URIs
    return f"nsu={NS_URI};s={name}"


def test_read_write_subscribe(stack, node_client) -> None:
    out = node_client(
        spec(
            stack,
            [
                {"op": "read", "nodeId": nsid("System1.Counters.Int16Value", stack)},
                {"op": "write", "nodeId": nsid("System1.Counters.Int16Value", stack), "dataType": "Int16", "value": 9},
                {"op": "write", "nodeId": nsid("System1.Tank1.Level", stack), "dataType": "Float", "value": 1},
                {"op": "write", "nodeId": nsid("System1.Tank1.LevelSetpoint", stack), "dataType": "Float", "value": 99},
                {"op": "read", "nodeId": nsid("System1.Counters.Int16Value", stack)},
                # 300 ms lies between the poll groups 200 and 1000 (tests/integration/conftest.py): the bridge revises
                # it to the group that really polls the tag; asyncua alone would answer the publishing interval (100 ms)
                {
                    "op": "subscribe",
                    "nodeId": nsid("System1.Tank1.Level", stack),
                    "samplingInterval": 300,
                    "count": 2,
                    "timeoutMs": 8000,
                },
            ],
        )
    )
    first, w_ok, w_ro, w_range, after, sub = out
    assert first["dataType"] == "Int16"
    assert (w_ok["status"], w_ro["status"], w_range["status"]) == ("Good", "BadNotWritable", "BadOutOfRange")
    assert after["value"] == 9 and after["status"] == "Good"
    assert len(sub["values"]) >= 2 and sub["revisedSamplingInterval"] == 1000


def test_browse_pages_with_browse_next(stack, node_client) -> None:
    out = node_client(
        spec(
            stack,
            [
                {"op": "browse", "nodeId": f"nsu={NS_URI}/folders;s=System1/Counters", "maxRefs": 3},
            ],
            user="reader",
        )
    )
    (browse,) = out
    assert "error" not in browse, browse
    names = {r["browseName"] for r in browse["refs"]}
    assert {"Batch", "Int8Value", "Int16Value", "UInt64Value"} <= names
    assert browse["calls"] > 1  # continuation points and BrowseNext were used


def test_history_raw_and_processed(stack, node_client) -> None:
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    start = end - timedelta(hours=1)
    out = node_client(
        spec(
            stack,
            [
                {
                    "op": "historyRaw",
                    "nodeId": nsid("System1.Tank1.Level", stack),
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "numValuesPerNode": 50,
                },
                {
                    "op": "historyProcessed",
                    "nodeId": nsid("System1.Tank1.Level", stack),
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "aggregate": "Count",
                    "processingInterval": 0,
                },
                {
                    "op": "historyProcessed",
                    "nodeId": nsid("System1.Tank1.Level", stack),
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "aggregate": "Average",
                    "processingInterval": 600000,
                },
            ],
            user="reader",
        )
    )
    raw, count, avg = out
    assert "error" not in raw and "error" not in count and "error" not in avg, out
    assert raw["calls"] > 1 and len(raw["values"]) >= 300
    stamps = [v["sourceTimestamp"] for v in raw["values"]]
    assert stamps == sorted(stamps) and len(stamps) == len(set(stamps))
    # EndTime is exclusive (Part 11) in raw reads and aggregates alike: Count counts exactly what ReadRaw returned
    assert stamps[-1] < end.isoformat().replace("+00:00", ".000Z")
    assert count["values"][0]["value"] == len(raw["values"])
    assert len(avg["values"]) == 6 and all(v["status"].startswith("Good") for v in avg["values"])
