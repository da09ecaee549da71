"""The CLI as a newcomer meets it: one way to name the config for every command, `simulate --help` as a manual,
`browse` as a real tree, example write rules that match the simulator's tags, a taken port in one line."""

from __future__ import annotations

import argparse
import fnmatch
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bridge.cli import browse_tree
from bridge.runtime.ports import PortInUse, ensure_free
from bridge.simulator import add_arguments
from bridge.simulator.plant import Plant
from bridge.wincc.models import DataType, Folder, TagInfo

ROOT = Path(__file__).resolve().parents[2]
# a config with one error: each command must read the file to name that key
BAD = "wincc:\n  url: http://127.0.0.1:1\nsync:\n  batch_size: 0\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", ["run", "check-config", "browse", "export-nodeset"])
def test_every_config_command_takes_file_and_config_option(tmp_path: Path, command: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(BAD)
    for form in ([str(f)], ["--config", str(f)], [str(f), "--config", str(f)]):
        done = _cli(command, *form)
        assert done.returncode == 2, (form, done.stderr)
        assert done.stderr.strip() == (
            "config error: line 4: sync.batch_size: Input should be greater than or equal to 1"
        )
    missing = _cli(command)
    assert missing.returncode == 2 and f"{command} FILE (or --config FILE)" in missing.stderr
    other = tmp_path / "other.yaml"
    two = _cli(command, str(f), "--config", str(other))
    assert two.returncode == 2 and "two config files" in two.stderr


def test_simulate_help_gives_every_option_a_help_text_and_its_default() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = [a for a in parser._actions if a.option_strings and a.dest != "help"]
    assert len(options) >= 13
    for action in options:
        assert action.help, f"{action.option_strings[0]} has no help text"
        assert "default" in action.help, f"{action.option_strings[0]} does not say its default"
    done = _cli("simulate", "--help")
    assert done.returncode == 0
    for shown in (
        "(default: 8700)",
        "(default: 127.0.0.1)",
        "(default: opcua)",
        "(default: 900)",
        "(default: 1)",
        "(default: 2)",
    ):
        assert shown in " ".join(done.stdout.split()), shown


def test_browse_prints_tags_under_their_own_folder() -> None:
    # WinCC lists every folder first, then the tags; the tree must still put each tag under its own folder
    items = [
        Folder(("S",)),
        Folder(("S", "Tank1")),
        Folder(("S", "Hall 2")),
        TagInfo("S.Tank1.Level", DataType.float, ("S", "Tank1"), "Level", unit="m", archived=True),
        TagInfo("S.Top", DataType.bool, ("S",), "Top", writable=True),
        TagInfo("S.Hall 2.T", DataType.float, ("S", "Hall 2"), "T"),
        TagInfo("X.Y.Z", DataType.int16, ("X", "Y"), "Z"),  # folders WinCC did not list are shown too
    ]
    assert browse_tree(items) == [
        "S/",
        "  Top  [bool] writable  = S.Top",
        "  Tank1/",
        '    Level  [float] archived {"unit": "m"}  = S.Tank1.Level',
        "  Hall 2/",
        "    T  [float]  = S.Hall 2.T",
        "X/",
        "  Y/",
        "    Z  [int16]  = X.Y.Z",
    ]


@pytest.mark.parametrize(("name", "dialect"), [("wincc-dp.yaml", "dp"), ("wincc-restservice.yaml", "restservice")])
def test_example_write_rules_match_the_simulators_tags(name: str, dialect: str) -> None:
    rules = yaml.safe_load((ROOT / "config" / name).read_text())["opcua"]["write_rules"]
    plant = Plant()
    writable = {t.name if dialect == "dp" else t.rs_name for t in plant.tags.values() if t.writable}
    allowed = {n for n in writable if any(fnmatch.fnmatchcase(n, p) for p in rules["mes"])}
    setpoints = {n for n in writable if n.endswith("Setpoint")}
    assert len(setpoints) == 3 and setpoints <= allowed  # what the comment promises
    assert any("Batch" in n for n in allowed)
    assert not any("Valve" in n for n in allowed)  # and not everything
    for pattern in rules["mes"]:
        assert any(fnmatch.fnmatchcase(n, pattern) for n in writable), f"{pattern} matches no simulator tag"


def test_taken_port_is_one_sentence_naming_the_setting() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUse) as err:
            ensure_free("127.0.0.1", port, "OPC UA", "opcua.endpoint")
    assert str(err.value) == f"OPC UA port {port} on 127.0.0.1 is already in use"
    assert err.value.advice("--opcua-port N").endswith("choose another port with --opcua-port N")
    assert re.search(r"with opcua\.endpoint$", err.value.advice())
    ensure_free("127.0.0.1", port, "OPC UA", "opcua.endpoint")  # free again: no error


def test_simulate_on_a_taken_port_is_one_line_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _cli("simulate", "--port", str(port))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        f"WinCC simulator port {port} on 127.0.0.1 is already in use; choose another port with --port N"
    )
