"""The simulated plant's alarms (bridge/simulator/plant.py): in the demo it disturbs itself, so limit alarms come
and go without anyone forcing them; generated alarms for benchmarks; acknowledgements keep user and comment."""

from __future__ import annotations

from collections import Counter

from bridge.simulator.plant import Plant


def test_the_plant_raises_and_clears_limit_alarms_by_itself() -> None:
    plant = Plant(alarms_per_minute=4, backfill_days=0.001, seed=3)
    for _ in range(1200):  # ten simulated minutes at the simulator's 0.5 s tick
        plant.tick(0.5)
    states = Counter((e["id"], e["state"]) for e in plant.alarm_log)
    came = sum(n for (_, state), n in states.items() if state == "came")
    assert 15 <= came <= 60  # a few a minute
    assert len({alarm_id for alarm_id, _ in states}) >= 2  # more than one kind of disturbance
    for alarm_id in {a for a, _ in states}:  # each came back below its limit by itself
        assert abs(states[(alarm_id, "came")] - states[(alarm_id, "went")]) <= 1


def test_without_a_rate_nothing_happens_by_itself() -> None:
    plant = Plant(backfill_days=0.001)
    for _ in range(600):
        plant.tick(0.5)
    assert plant.alarm_log == []


def test_generated_alarms_and_acknowledgements_with_user_and_comment() -> None:
    plant = Plant(generated=10, backfill_days=0.001)
    ids = plant.add_alarms(3)
    assert ids == ["G1", "G2", "G3"] and plant.alarms["G2"].tag == plant.gen_name(1, "dp")
    plant.set_alarm("G2", True)
    assert [a.id for a in plant.active_alarms()] == ["G2"]
    assert plant.acknowledge("G2", "operator", "seen") == 200
    assert plant.acknowledge("G2", "operator", "again") == 409
    assert plant.acknowledge("nope") == 404
    assert plant.alarm_log[-1] | {"timestamp": None} == plant.alarm_log[-1] | {
        "id": "G2",
        "state": "came",
        "acknowledged": True,
        "user": "operator",
        "comment": "seen",
        "timestamp": None,
    }
    assert plant.add_alarms(1) == ["G4"]


async def test_unified_alarm_subscription_follows_the_plant_even_past_its_log() -> None:
    """The simulator's activeAlarms stream (bridge/simulator/unified_socket.py): the active list first, then each
    raise, acknowledge and clear in order; when more changed than the plant's log keeps, the whole list again."""
    import types

    from bridge.simulator.unified_socket import alarm_changes

    plant = Plant(generated=10, backfill_days=0.001)
    plant.set_alarm("1002", True)
    stream = alarm_changes(types.SimpleNamespace(plant=plant))  # type: ignore[arg-type]

    def seen(batch: list[dict]) -> list[tuple[str, str, int]]:
        return [(a["name"].rpartition("_")[2], a["notificationReason"], a["state"]) for a in batch]

    assert seen(await anext(stream)) == [("1002", "ADDED", 1)]
    plant.set_alarm("1001", True)
    plant.acknowledge("1001")
    plant.set_alarm("1001", False)  # went while acknowledged: leaves the list
    plant.set_alarm("1002", False)  # went unacknowledged: stays
    assert seen(await anext(stream)) == [
        ("1001", "ADDED", 1),
        ("1001", "MODIFIED", 5),
        ("1001", "REMOVED", 6),
        ("1002", "MODIFIED", 2),
    ]
    ids = plant.add_alarms(6000)
    for alarm_id in ids:  # 12,000 log entries: more than the plant keeps
        plant.set_alarm(alarm_id, True)
        plant.set_alarm(alarm_id, False)
    plant.acknowledge("1002")
    for alarm_id in ids:
        plant.acknowledge(alarm_id)
    plant.set_alarm("1003", True)
    assert sorted(seen(await anext(stream))) == [("1002", "REMOVED", 6), ("1003", "ADDED", 1)]
    await stream.aclose()
