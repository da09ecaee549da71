"""README's first set-up command: `wincc-opcua-bridge demo` runs with no file and no flag, serves live tags, and
stops cleanly on Ctrl+C. The port flags exist for machines where 4840 is taken; the test uses them so it can run
next to anything else."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import free_port, wait_until, wait_until_sync

ROOT = Path(__file__).resolve().parents[2]
TAG_NS = "urn:wincc-opcua-bridge:tags"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], str, str, Path]]:
    cwd = tmp_path_factory.mktemp("demo")  # the demo writes its PKI under ./pki
    ua_port, health_port, wincc_port = free_port(), free_port(), free_port()
    out = cwd / "demo.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bridge", "demo", "--opcua-port", str(ua_port), "--health-port", str(health_port),
         "--wincc-port", str(wincc_port)],
        cwd=cwd, stdout=out.open("w"), stderr=subprocess.STDOUT, text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(cwd)},  # nothing from the test's env
    )
    health = f"http://127.0.0.1:{health_port}"

    def ready() -> bool:
        assert proc.poll() is None, out.read_text()
        try:
            return httpx.get(health + "/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        assert wait_until_sync(ready, timeout=60), out.read_text()
        yield proc, f"opc.tcp://127.0.0.1:{ua_port}/wincc", health, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_demo_prints_where_to_connect(demo: tuple[subprocess.Popen[str], str, str, Path]) -> None:
    _, endpoint, health, out = demo
    text = out.read_text()
    port = endpoint.rsplit(":", 1)[1].split("/")[0]
    assert f"opc.tcp://localhost:{port}/wincc" in text  # the advertised endpoint, public_hostname from demo.yaml
    assert "operator/operator" in text and "reader/reader" in text
    assert f"{health.removeprefix('http://')}/healthz" in text


async def test_demo_serves_live_tags_to_anonymous_readers(demo: tuple[subprocess.Popen[str], str, str, Path]) -> None:
    _, endpoint, _, _ = demo
    async with Client(endpoint, timeout=10) as client:
        ns = await client.get_namespace_index(TAG_NS)
        level = client.get_node(ua.NodeId("System1.Tank1.Level", ns))
        first = await level.read_data_value()
        assert first.StatusCode.is_good() and isinstance(first.Value.Value, float)
        hall = client.get_node(ua.NodeId("System1.Hall 2.Temperatur Außen", ns))
        assert (await hall.read_data_value()).StatusCode.is_good()
        # anonymous may read in the demo, never write
        valve = client.get_node(ua.NodeId("System1.Tank1.InletValve", ns))
        with pytest.raises(ua.UaStatusCodeError) as denied:
            await valve.write_value(ua.DataValue(ua.Variant(False, ua.VariantType.Boolean)))
        assert denied.value.code == ua.StatusCodes.BadUserAccessDenied

        async def moved() -> bool:
            dv = await level.read_data_value()
            return dv.SourceTimestamp != first.SourceTimestamp

        assert await wait_until(moved, timeout=10)  # the plant lives: the 500 ms poll brings new values


def test_demo_stops_on_ctrl_c(demo: tuple[subprocess.Popen[str], str, str, Path]) -> None:
    proc, _, _, out = demo
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert "Traceback" not in out.read_text()
