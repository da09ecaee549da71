"""BatchMemo compares a batch answer as a whole before any per-item work: a body equal to the last one is answered
from the last results without splitting or parsing anything; a body that differs still goes item by item."""

from __future__ import annotations

import orjson

from bridge.wincc import parse
from bridge.wincc.models import TagValue

NAMES = tuple(f"T{i}" for i in range(5))


def _body(changed: int | None = None) -> bytes:
    return orjson.dumps(
        {
            "Tags": [
                {
                    "Name": n,
                    "Value": i + (100 if i == changed else 0),
                    "Quality": 192,
                    "Timestamp": "2026-01-01T00:00:00Z",
                }
                for i, n in enumerate(NAMES)
            ]
        }
    )


def test_an_equal_body_is_not_split_or_parsed(monkeypatch) -> None:
    parsed: list[str] = []

    def item(name: str, raw: dict) -> TagValue:
        parsed.append(name)
        return TagValue(name, raw["Value"], raw["Quality"], raw["Timestamp"])

    memo = parse.BatchMemo("Name")
    first = _body()
    items = orjson.loads(first)["Tags"]
    out = {n: item(n, raw) for n, raw in zip(NAMES, items, strict=True)}
    memo.learn(NAMES, first, items, out)
    parsed.clear()
    splits: list[bytes] = []
    real_split = parse.item_bytes
    monkeypatch.setattr(
        parse, "item_bytes", lambda content, expected=None: splits.append(content) or real_split(content, expected)
    )
    again = memo.replay(NAMES, bytes(bytearray(first)), item)  # equal bytes, another object
    assert again is not None and all(again[n] is out[n] for n in NAMES)
    assert parsed == [] and splits == []
    changed = memo.replay(NAMES, _body(changed=2), item)
    assert changed is not None and parsed == ["T2"] and len(splits) == 1
    assert changed["T2"].value == 102 and all(changed[n] is out[n] for n in NAMES if n != "T2")


def _learn(memo: parse.BatchMemo, names: tuple[str, ...]) -> None:
    body = _body_of(names)
    items = orjson.loads(body)["Tags"]
    memo.learn(names, body, items, {n: TagValue(n, 1, 192, "t") for n in names})


def test_batches_of_a_changed_poll_plan_are_forgotten_beyond_the_budget() -> None:
    """Clients subscribing and leaving change the batches all the time; the old ones (a whole answer body each)
    are forgotten, least recently used first, once the memo holds more items than its budget, never the batches
    still asked for."""
    current = [tuple(f"T{b}.{i}" for i in range(5)) for b in range(4)]  # 20 tags in 4 batches of 5
    memo = parse.BatchMemo("Name", budget=lambda: 2 * 20)
    for batch in current:
        _learn(memo, batch)
    for plan in range(200):  # each change of demand: a new batch, then the current ones asked again
        _learn(memo, tuple(f"P{plan}.{i}" for i in range(5)))
        for batch in current:
            assert memo.replay(batch, _body_of(batch), lambda name, raw: TagValue(name, 2, 192, "t")) is not None
        assert memo._items <= 2 * 20 and len(memo) <= 8
    assert memo._items == 2 * 20  # the current 4 batches and the 4 most recent others


def _body_of(names: tuple[str, ...]) -> bytes:
    return orjson.dumps({"Tags": [{"Name": n, "Value": 1, "Quality": 192, "Timestamp": "t"} for n in names]})


def test_without_a_budget_batches_stay_for_keep_s() -> None:
    memo = parse.BatchMemo("Name")
    for plan in range(50):
        _learn(memo, tuple(f"P{plan}.{i}" for i in range(5)))
    assert len(memo) == 50 and memo._items == 250
