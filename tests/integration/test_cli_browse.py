"""The README's "Against the demo's simulator": `browse` and `export-nodeset` with config/demo.yaml (only its port
changed) against a simulator in its own process over HTTP, with the demo's WinCC user and password variable.
`browse` prints a real tree (each tag under its own folder); `export-nodeset` writes where --out says and counts
exactly the nodes in the file."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import WINCC_PASSWORD, start_simulator

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("cli-browse")
    sim, port, _ = start_simulator(tmp, "dp")
    text = (ROOT / "config" / "demo.yaml").read_text(encoding="utf-8")
    assert "url: http://127.0.0.1:8700" in text
    path = tmp / "demo.yaml"
    path.write_text(text.replace("url: http://127.0.0.1:8700", f"url: http://127.0.0.1:{port}"), encoding="utf-8")
    yield path
    sim.terminate()
    sim.wait(10)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # the simulator of tests/integration/conftest.py takes user opcua with WINCC_PASSWORD, as the demo's does
    env = {**os.environ, "WINCC_DEMO_PASSWORD": WINCC_PASSWORD}
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )


def test_browse_prints_each_tag_under_its_own_folder(demo_config: Path, tmp_path: Path) -> None:
    done = _cli("browse", str(demo_config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "System1/"
    tank = lines.index("  Tank1/")
    hall = lines.index("  Hall 2/")
    assert lines[tank + 1].startswith("    Level  [float] archived")
    assert lines[tank + 1].endswith("= System1.Tank1.Level")
    assert lines[hall + 1].startswith("    Temperatur Außen  [float]")
    # every tag line sits right under its own folder: its indentation and name agree with the folder above it
    folder: list[str] = []
    for line in lines:
        depth = (len(line) - len(line.lstrip(" "))) // 2
        if line.endswith("/"):
            folder = folder[:depth] + [line.strip()[:-1]]
        else:
            name = line.rsplit(" = ", 1)[1]
            assert depth == len(folder) and name.startswith(".".join(folder) + "."), (line, folder)
    assert sum(" = " in line for line in lines) == 20


def test_export_nodeset_writes_where_asked_and_counts_every_node(demo_config: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "demo.xml"
    done = _cli("export-nodeset", "--config", str(demo_config), "--out", str(out), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    elements = [e for e in ET.parse(out).getroot() if e.tag.endswith(("}UAObject", "}UAVariable"))]
    assert done.stdout.strip() == (f"wrote {len(elements)} nodes (1 root, 7 folders, 20 tags, 15 properties) to {out}")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # nothing else in the working directory
