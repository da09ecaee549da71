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
