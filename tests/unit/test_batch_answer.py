"""BatchAnswer, the answer BatchMemo replays for a batch read: a read-only mapping in request order whose `news` are
the positions that differ from the memo's last answer to the same batch; `learn` forgetting that last answer when it
cannot learn the new one; and `read_in_batches` handing a read that fits one batch to the dialect as one call, its
answer untouched (the sync engine's reads, bridge/opcua/sync/engine.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import respx

from bridge.config import WinCCConfig
from bridge.wincc import open_client
from bridge.wincc.errors import WinCCUnreachable
from bridge.wincc.models import TagError, TagErrorKind, TagValue
from bridge.wincc.parse import BatchAnswer, BatchMemo, read_in_batches

NAMES = tuple(f"T{i}" for i in range(5))
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
TS = "2026-11-24T10:15:30.250Z"
BASE = "http://wincc.test:8700"


def _raw(name: str, value: Any, *, ts: str = TS, error: str | None = None) -> dict[str, Any]:
    return {"Name": name, "Value": value, "Quality": 192, "Timestamp": ts, "Error": error}


def _body(items: list[dict[str, Any]]) -> bytes:
    return orjson.dumps({"Tags": items})


def _items(changes: Mapping[int, Any] | None = None) -> list[dict[str, Any]]:
    """One item per NAMES, value i; `changes` replaces the value at those positions."""
    changes = changes or {}
    return [_raw(n, changes.get(i, i)) for i, n in enumerate(NAMES)]


class Parser:
    """The memo's item parser, recording which items it was asked to parse."""

    def __init__(self) -> None:
        self.parsed: list[str] = []

    def __call__(self, name: str, raw: dict[str, Any]) -> TagValue | TagError:
        self.parsed.append(name)
        if raw.get("Error"):
            return TagError(name, str(raw["Error"]), TagErrorKind.item_error)
        return TagValue(name, raw["Value"], raw["Quality"], T0)


def _learned(items: list[dict[str, Any]], parse: Parser) -> tuple[BatchMemo, dict[str, TagValue | TagError]]:
    """A memo that has learned `items` as the full parse of the first answer to NAMES (what the dialect does)."""
    memo = BatchMemo("Name")
    out = {n: parse(n, raw) for n, raw in zip(NAMES, items, strict=True)}
    memo.learn(NAMES, _body(items), items, out)
    parse.parsed.clear()
    return memo, out


# -- BatchAnswer as a mapping ------------------------------------------------------------------------------------


def test_a_batch_answer_is_a_mapping_in_request_order() -> None:
    names = ("b", "a", "c")  # not sorted: the order is the request's
    results: list[TagValue | TagError] = [
        TagValue("b", 2, 192, T0),
        TagValue("a", 1, 192, T0),
        TagError("c", "driver down", TagErrorKind.item_error),
    ]
    answer = BatchAnswer(names, results, (2,))
    assert isinstance(answer, Mapping)
    assert answer.names == names and answer.results is results and list(answer.news) == [2]
    assert len(answer) == 3
    assert list(answer) == ["b", "a", "c"]
    assert list(answer.keys()) == ["b", "a", "c"]
    assert list(answer.values()) == results
    assert list(answer.items()) == list(zip(names, results, strict=True))
    assert answer["a"] is results[1] and answer["c"] is results[2]
    assert "a" in answer and "z" not in answer
    assert answer.get("z") is None
    with pytest.raises(KeyError):
        answer["z"]
    assert answer == {"a": results[1], "b": results[0], "c": results[2]}  # equal to the dict of the same read
    assert dict(answer) == {"b": results[0], "a": results[1], "c": results[2]}
    assert repr(answer) == "BatchAnswer(3 tags, 1 new)"


# -- BatchMemo.replay: news --------------------------------------------------------------------------------------


def test_a_batch_never_answered_is_not_replayed() -> None:
    """The first answer to a batch has nothing to be compared with: replay declines (None), and the dialect parses
    it in full into a plain dict (see test_the_dp_client_answers_with_what_the_memo_replayed)."""
    parse = Parser()
    memo = BatchMemo("Name")
    assert memo.replay(NAMES, _body(_items()), parse) is None
    assert parse.parsed == []


def test_an_identical_body_gives_no_news() -> None:
    parse = Parser()
    memo, out = _learned(_items(), parse)
    again = memo.replay(NAMES, bytes(bytearray(_body(_items()))), parse)  # equal bytes, another object
    assert type(again) is BatchAnswer
    assert list(again.news) == []
    assert all(again[n] is out[n] for n in NAMES)  # the very results of the last answer
    assert parse.parsed == []


def test_news_lists_exactly_the_items_that_changed() -> None:
    parse = Parser()
    memo, out = _learned(_items(), parse)
    changed = memo.replay(NAMES, _body(_items({1: 101, 3: 103})), parse)
    assert changed is not None
    assert list(changed.news) == [1, 3]
    assert parse.parsed == ["T1", "T3"]  # only the news is parsed
    assert changed["T1"].value == 101 and changed["T3"].value == 103
    assert all(changed[n] is out[n] for n in ("T0", "T2", "T4"))


def test_news_is_measured_against_the_last_answer_not_the_first() -> None:
    parse = Parser()
    memo, out = _learned(_items(), parse)
    second = memo.replay(NAMES, _body(_items({1: 101})), parse)
    assert second is not None and list(second.news) == [1]
    third = memo.replay(NAMES, _body(_items({1: 101, 4: 104})), parse)  # T1 repeats the second answer
    assert third is not None and list(third.news) == [4]
    assert third["T1"] is second["T1"]
    back = memo.replay(NAMES, _body(_items()), parse)  # back to the first answer's bytes: both are news again
    assert back is not None and list(back.news) == [1, 4]
    assert back["T1"].value == 1 and back["T4"].value == 4


def test_an_item_turning_into_an_error_is_news() -> None:
    parse = Parser()
    memo, _ = _learned(_items(), parse)
    items = _items()
    items[2] = {"Name": "T2", "Error": "driver down"}
    answer = memo.replay(NAMES, _body(items), parse)
    assert answer is not None and list(answer.news) == [2]
    assert isinstance(answer["T2"], TagError)


# -- BatchMemo.learn: forgetting ----------------------------------------------------------------------------------


def _reordered() -> tuple[bytes, list[dict[str, Any]]]:
    items = _items({0: 50})
    items[0], items[1] = items[1], items[0]
    return _body(items), items


def _one_missing() -> tuple[bytes, list[dict[str, Any]]]:
    items = _items({0: 50})[:-1]
    return _body(items), items


def _unsplittable() -> tuple[bytes, list[dict[str, Any]]]:
    items = _items({0: 'a "},{" inside a string'})  # the right items, but the byte split finds one too many
    return _body(items), items


@pytest.mark.parametrize("answer", [_reordered, _one_missing, _unsplittable], ids=lambda f: f.__name__.strip("_"))
def test_learn_forgets_the_last_answer_when_it_cannot_learn_the_new_one(answer: Any) -> None:
    """The engine has applied the new answer (parsed in full); were the memo to keep the one before, a later
    answer repeating that older one would be replayed with no news, and the engine would keep showing the new
    one. After a failed learn, the next answer is parsed in full instead."""
    parse = Parser()
    memo, _ = _learned(_items(), parse)
    content, items = answer()
    memo.learn(NAMES, content, items, {n: TagValue(n, 50, 192, T0) for n in NAMES})
    assert len(memo) == 0
    assert memo.replay(NAMES, _body(_items()), parse) is None  # the first answer again: not replayed from it
    # and the memo learns again from the next full parse
    memo.learn(NAMES, _body(_items()), _items(), {n: TagValue(n, i, 192, T0) for i, n in enumerate(NAMES)})
    assert len(memo) == 1 and memo.replay(NAMES, _body(_items()), parse) is not None


def test_learn_of_another_batch_keeps_this_one() -> None:
    parse = Parser()
    memo, out = _learned(_items(), parse)
    other = ("X", "Y")
    items = [_raw("Y", 1), _raw("X", 2)]  # not in request order: not learned, and only that batch forgotten
    memo.learn(other, _body(items), items, {"X": TagValue("X", 2, 192, T0), "Y": TagValue("Y", 1, 192, T0)})
    again = memo.replay(NAMES, _body(_items()), parse)
    assert again is not None and all(again[n] is out[n] for n in NAMES)


# -- read_in_batches ------------------------------------------------------------------------------------------------


class Batches:
    """A dialect's read_batch / read_one, recording their calls."""

    def __init__(self, fail: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.ones: list[str] = []
        self.fail = fail
        self.answers: list[Mapping[str, TagValue | TagError]] = []

    async def read_batch(self, batch: list[str]) -> Mapping[str, TagValue | TagError]:
        self.calls.append(batch)
        if self.fail:
            raise WinCCUnreachable("POST /WinCC/REST/Tags/ReadMultiple: ConnectError")
        answer = BatchAnswer(tuple(batch), [TagValue(n, 1, 192, T0) for n in batch], ())
        self.answers.append(answer)
        return answer

    async def read_one(self, name: str) -> TagValue | TagError:
        self.ones.append(name)
        return TagValue(name, 1, 192, T0)


@pytest.mark.parametrize("names", [["a", "b", "a", "c", "b"], ["a", "b", "c"]], ids=["duplicates", "exactly-full"])
async def test_names_that_fit_one_batch_are_one_call_and_its_answer_untouched(names: list[str]) -> None:
    dialect = Batches()
    out = await read_in_batches(names, 3, dialect.read_batch, dialect.read_one)
    assert dialect.calls == [["a", "b", "c"]] and dialect.ones == []
    assert out is dialect.answers[0]  # the dialect's BatchAnswer itself, news and all, not a copy into a dict


async def test_one_name_goes_through_read_one() -> None:
    dialect = Batches()
    out = await read_in_batches(["a", "a"], 3, dialect.read_batch, dialect.read_one)
    assert dialect.ones == ["a"] and dialect.calls == [] and list(out) == ["a"]


async def test_more_names_than_a_batch_are_read_in_batches_and_merged() -> None:
    dialect = Batches()
    out = await read_in_batches(["a", "b", "c", "a", "d"], 3, dialect.read_batch, dialect.read_one)
    assert sorted(dialect.calls) == [["a", "b", "c"], ["d"]]
    assert type(out) is dict and list(out) == ["a", "b", "c", "d"]


async def test_a_failed_single_batch_raises_its_error() -> None:
    dialect = Batches(fail=True)
    with pytest.raises(WinCCUnreachable):
        await read_in_batches(["a", "b"], 3, dialect.read_batch, dialect.read_one)
    assert dialect.calls == [["a", "b"]]


# -- through the dp client ----------------------------------------------------------------------------------------


async def test_the_dp_client_answers_with_what_the_memo_replayed() -> None:
    names = ["a", "b", "c"]
    first = _body([_raw("a", 1.0), _raw("b", 2), _raw("c", True)])
    changed = _body([_raw("a", 1.0), _raw("b", 3, ts="2026-11-24T10:15:31.000Z"), _raw("c", True)])
    bodies = [first, first, changed]
    config = WinCCConfig.model_validate({"url": BASE, "retry": {"attempts": 1, "backoff_s": 0}})
    with respx.mock(base_url=BASE) as mock:
        route = mock.post("/WinCC/REST/Tags/ReadMultiple").mock(
            side_effect=[httpx.Response(200, content=b) for b in bodies]
        )
        async with open_client(config, batch_size=500) as client:
            r = [await client.read(["a", "b", "a", "c"]) for _ in bodies]
        assert route.call_count == 3
        assert all(json.loads(call.request.content) == {"TagNames": names} for call in route.calls)
    assert type(r[0]) is not BatchAnswer and list(r[0]) == names  # the first answer: parsed in full
    assert type(r[1]) is BatchAnswer and list(r[1].news) == []
    assert all(r[1][n] is r[0][n] for n in names)
    assert type(r[2]) is BatchAnswer and list(r[2].news) == [1]
    assert r[2]["b"].value == 3 and r[2]["a"] is r[0]["a"] and r[2]["c"] is r[0]["c"]
