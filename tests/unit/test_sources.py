"""Several stations behind one client interface: QualifiedClient names every tag, folder and alarm of a station
`<source>/...`, SourceRouter sends each request to the station its names belong to. Two simulators (one per
dialect) over real HTTP, in-process (no asyncua here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bridge.config import ConfigError, WinCCConfig, parse_config
from bridge.simulator import Simulator, SimulatorOptions
from bridge.sources import QualifiedClient, SourceRouter, _snapshot_path, qualify, source_of
from bridge.wincc import open_client
from bridge.wincc.client import PushingClient
from bridge.wincc.errors import WinCCError
from bridge.wincc.models import Folder, TagError, TagErrorKind, TagInfo, TagValue
from tests.helpers import wait_until


@pytest.fixture
async def stations() -> AsyncIterator[tuple[Simulator, Simulator, SourceRouter]]:
    north = Simulator(SimulatorOptions(dialect="dp", port=0))
    south = Simulator(SimulatorOptions(dialect="restservice", port=0))
    await north.start()
    await south.start()
    clients = []
    for name, sim in (("north", north), ("south", south)):
        cfg = WinCCConfig.model_validate(
            {
                "url": sim.url,
                "dialect": sim.options.dialect,
                "name": name,
                "timeouts": {"connect_s": 1, "read_s": 2},
                "retry": {"attempts": 1},
            }
        )
        clients.append(QualifiedClient(name, open_client(cfg)))
    router = SourceRouter(clients)
    try:
        yield north, south, router
    finally:
        await router.aclose()
        await north.stop()
        await south.stop()


async def test_browse_puts_each_station_in_its_folder_with_qualified_names(stations) -> None:
    _, _, router = stations
    items = [i async for i in router.browse()]
    folders = [i.path for i in items if isinstance(i, Folder)]
    tags = {i.name: i for i in items if isinstance(i, TagInfo)}
    assert folders[0] == ("north",) and ("south",) in folders
    assert all(f[0] in ("north", "south") for f in folders)
    level = tags["north/System1.Tank1.Level"]
    assert level.folder == ("north", "System1", "Tank1") and level.display_name == "Level"
    south_level = tags["south/Tank1_Level"]
    assert south_level.folder[0] == "south" and south_level.display_name == "Tank1_Level"


async def test_reads_and_writes_go_to_the_tags_station(stations) -> None:
    north, south, router = stations
    names = ["north/System1.Tank1.Level", "south/Tank1_Level", "north/System1.Pump1.Speed"]
    answer = await router.read(names)
    assert set(answer) == set(names) and all(isinstance(v, TagValue) for v in answer.values())
    # an unchanged answer is the very same object again (the sync engine's change test), prefix or not
    steady = ["north/System1.Counters.Int64Value", "south/Counters_Int64Value"]
    first = await router.read(steady)
    assert all(isinstance(v, TagValue) for v in first.values())
    again = await router.read(steady)
    assert all(again[n] is first[n] for n in steady)

    results = await router.write({"south/Tank1_LevelSetpoint": 6.5, "north/System1.Counters.Batch": 7})
    assert {n: r.ok for n, r in results.items()} == {
        "south/Tank1_LevelSetpoint": True,
        "north/System1.Counters.Batch": True,
    }
    assert results["south/Tank1_LevelSetpoint"].name == "south/Tank1_LevelSetpoint"
    assert south.plant.by_rs["Tank1_LevelSetpoint"].value == pytest.approx(6.5)
    assert north.plant.tags["System1.Counters.Batch"].value == 7


async def test_one_station_down_fails_only_its_names(stations) -> None:
    north, south, router = stations
    await _raise_alarm(south)
    before = {a.id for a in await router.active_alarms()}
    assert "south/1001" in before and "north/1001" not in before
    await south.stop()
    answer = await router.read(["north/System1.Tank1.Level", "south/Tank1_Level"])
    assert isinstance(answer["north/System1.Tank1.Level"], TagValue)
    error = answer["south/Tank1_Level"]
    assert isinstance(error, TagError) and error.kind is TagErrorKind.bad_answer
    # the unreachable station's alarms stay as last seen (nothing went); the other station's news still comes
    await _raise_alarm(north)
    during = {a.id for a in await router.active_alarms()}
    assert during == before | {"north/1001"}
    await north.stop()
    with pytest.raises(WinCCError):
        await router.read(["north/System1.Tank1.Level", "south/Tank1_Level"])


async def test_alarms_and_history_carry_and_route_the_station(stations) -> None:
    north, south, router = stations
    await _raise_alarm(north)
    await _raise_alarm(south)
    alarms = await router.active_alarms()
    assert {source_of(a.id) for a in alarms} == {"north", "south"}
    assert all(a.tag is not None and source_of(a.tag) == source_of(a.id) for a in alarms)
    assert next(a for a in alarms if a.id == "north/1001").tag == "north/System1.Tank1.Level"
    await router.acknowledge("north/1001", "seen", "operator")
    acknowledged = {a.id: a.acknowledged for a in await router.active_alarms()}
    assert acknowledged.get("north/1001", True) is True
    end = datetime.now(UTC)
    tags = {i.name: i for i in [i async for i in router.browse()] if isinstance(i, TagInfo)}
    for name in ("north/System1.Tank1.Level", "south/Tank1_Level"):
        pages = [p async for p in router.archive(tags[name], end - timedelta(minutes=10), end, 100)]
        assert sum(len(p) for p in pages) > 0, name


async def _raise_alarm(sim: Simulator) -> None:
    async with httpx.AsyncClient() as http:
        base = sim.url.removesuffix("/WinCCRestService")
        (await http.post(base + "/_sim/alarms", json={"raise": "1001"})).raise_for_status()


def test_config_sources_inherit_wincc_defaults_and_need_unique_names() -> None:
    config = parse_config("""
wincc: {auth: {mode: none}, timeouts: {read_s: 3}, include: ["A.*"]}
sources:
  - {name: north, url: "http://n:1"}
  - {name: south, url: "http://s:1", dialect: restservice, timeouts: {write_s: 4}}
""")
    north, south = config.stations()
    assert (north.name, north.url, north.timeouts.read_s, north.include) == ("north", "http://n:1", 3, ["A.*"])
    assert (south.dialect, south.timeouts.read_s, south.timeouts.write_s) == ("restservice", 3, 4)
    assert parse_config("wincc: {url: 'http://x:1'}").stations()[0].url == "http://x:1"
    for text, message in (
        ("sources: [{url: 'http://x:1'}]", "needs a name"),
        ("sources: [{name: a/b, url: 'http://x:1'}]", "no '/'"),
        ("sources: [{name: a, url: 'http://x:1'}, {name: a, url: 'http://y:1'}]", "unique: a"),
        ("wincc: {name: a, url: 'http://x:1'}", "only for the entries of sources"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_config(text)


def test_each_source_keeps_its_own_snapshot() -> None:
    from pathlib import Path

    assert _snapshot_path(Path("nodesets/last-browse.xml"), "north") == Path("nodesets/last-browse.north.xml")
    assert _snapshot_path(Path("nodesets/last-browse.xml"), "") == Path("nodesets/last-browse.xml")
    assert _snapshot_path(None, "north") is None


async def test_a_pushing_station_pushes_in_qualified_names() -> None:
    sim = Simulator(SimulatorOptions(dialect="unified", port=0))
    await sim.start()
    cfg = WinCCConfig.model_validate({"url": sim.url, "dialect": "unified", "name": "hmi"})
    client = qualify("hmi", open_client(cfg))
    assert isinstance(client, PushingClient) and not isinstance(
        qualify("dp", open_client(WinCCConfig(url="http://127.0.0.1:8700"))), PushingClient
    )
    got: list[dict[str, object]] = []

    async def on_values(values: dict[str, TagValue | TagError]) -> None:
        got.append(dict(values))

    name = "hmi/HMI_RT_1::System1.Tank1.LevelSetpoint"
    try:
        async with client:
            push = client.open_push(on_values, lambda: None)
            push.start()
            try:
                push.want([name])
                await wait_until(lambda: push.covered == frozenset([name]), timeout=10, what="the tag pushed")
                assert push.covers(name) and push.covered_count == 1
                # the station's own name for it is not the bridge's: only the qualified name is covered
                assert not push.covers("HMI_RT_1::System1.Tank1.LevelSetpoint")
                await wait_until(lambda: any(name in values for values in got), timeout=5, what="its value")
                assert all(set(values) == {name} for values in got)
            finally:
                await push.aclose()
    finally:
        await sim.stop()
