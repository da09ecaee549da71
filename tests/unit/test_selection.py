"""Tag selection: the glob rules, and both dialects browsing several roots with include/exclude against the
simulator over real HTTP (in-process; no asyncua here)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bridge.config import ConfigError, WinCCConfig, parse_config
from bridge.simulator import Simulator, SimulatorOptions
from bridge.wincc import open_client
from bridge.wincc.models import DataType, Folder, TagInfo
from bridge.wincc.selection import TagSelection, browse_roots, select_browse

URL = "http://127.0.0.1:8700"  # wincc.url is required; nothing is sent to it here


def test_globs_are_case_sensitive_and_star_spans_dots() -> None:
    s = TagSelection(include=("Plant.Area1.*",), exclude=("*.Debug*",))
    assert s.selects("Plant.Area1.Tank.Level")
    assert not s.selects("plant.area1.Tank.Level")
    assert not s.selects("Plant.Area1.Tank.DebugCounter")
    assert not s.selects("Plant.Area2.Tank.Level")
    assert TagSelection(include=("Tag00000[0-4]",)).selects("Tag000003")
    assert not TagSelection(include=("Tag00000[0-4]",)).selects("Tag000007")
    assert TagSelection().selects("anything") and not TagSelection().active


def test_roots_one_or_several() -> None:
    assert browse_roots(WinCCConfig(url=URL)) == [""]
    assert browse_roots(WinCCConfig(url=URL, browse_root="A")) == ["A"]
    assert browse_roots(WinCCConfig(url=URL, browse_roots=["A", "B"])) == ["A", "B"]
    with pytest.raises(ConfigError, match="wincc: give browse_root or browse_roots, not both"):
        parse_config("wincc: {url: 'http://127.0.0.1:8700', browse_root: A, browse_roots: [B]}")


def _tag(name: str) -> TagInfo:
    path = tuple(name.split(".")[:-1])
    return TagInfo(name=name, data_type=DataType.float, folder=path)


async def _fake(root: str) -> AsyncIterator[Folder | TagInfo]:
    tree = [
        Folder(("P",)),
        Folder(("P", "A")),
        _tag("P.A.x"),
        _tag("P.A.y"),
        Folder(("P", "B")),
        _tag("P.B.z"),
        Folder(("P", "Empty")),
    ]
    for item in tree:
        inside = item.path if isinstance(item, Folder) else tuple(item.name.split("."))
        if not root or inside[: len(root.split("."))] == tuple(root.split(".")):
            yield item


async def test_overlapping_roots_give_each_item_once_in_browse_order() -> None:
    config = WinCCConfig(url=URL, browse_roots=["P", "P.A"])
    items = [i async for i in select_browse(config, _fake)]
    assert items == [
        Folder(("P",)),
        Folder(("P", "A")),
        _tag("P.A.x"),
        _tag("P.A.y"),
        Folder(("P", "B")),
        _tag("P.B.z"),
        Folder(("P", "Empty")),
    ]


async def test_selection_drops_tags_and_the_folders_left_empty() -> None:
    config = WinCCConfig(url=URL, exclude=["P.B.*", "*.y"])
    items = [i async for i in select_browse(config, _fake)]
    assert items == [Folder(("P",)), Folder(("P", "A")), _tag("P.A.x")]


@pytest.fixture(params=["dp", "restservice"])
async def sim(request: pytest.FixtureRequest) -> AsyncIterator[Simulator]:
    s = Simulator(SimulatorOptions(dialect=request.param, port=0, tags=3000))
    await s.start()
    yield s
    await s.stop()


async def _browse(sim: Simulator, **selection: object) -> list[Folder | TagInfo]:
    config = WinCCConfig.model_validate({"url": sim.url, "dialect": sim.options.dialect, **selection})
    async with open_client(config) as client:
        return [item async for item in client.browse()]


async def test_both_dialects_browse_several_roots_with_patterns(sim: Simulator) -> None:
    everything = await _browse(sim)
    all_tags = [t for t in everything if isinstance(t, TagInfo)]
    if sim.options.dialect == "dp":
        roots, include, exclude = ["System1.Tank1", "System1.Gen.G001"], ["*"], ["*Setpoint", "*.Tag0011??"]
    else:  # restservice: roots are connections; names have no dots
        roots, include, exclude = [], ["Tank1_*", "Gen_001*"], ["*Setpoint", "Gen_0011??"]
    chosen = await _browse(sim, browse_roots=roots, include=include, exclude=exclude)
    tags = [t for t in chosen if isinstance(t, TagInfo)]
    selection = TagSelection(tuple(include), tuple(exclude))
    expected = [
        t
        for t in all_tags
        if selection.selects(t.name) and (not roots or any(t.name.startswith(r + ".") for r in roots))
    ]
    assert expected and sorted(t.name for t in tags) == sorted(t.name for t in expected)
    assert len(tags) < len(all_tags) - 1000
    # folders: exactly those holding a chosen tag (and their parents), each before anything inside it
    folders = [f.path for f in chosen if isinstance(f, Folder)]
    assert set(folders) == {t.folder[:i] for t in tags for i in range(1, len(t.folder) + 1)}
    assert len(folders) == len(set(folders))
    seen: set[tuple[str, ...]] = set()
    for item in chosen:
        parent = item.path[:-1] if isinstance(item, Folder) else item.folder
        assert not parent or parent in seen, f"{item} before its folder"
        if isinstance(item, Folder):
            seen.add(item.path)
