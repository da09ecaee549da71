"""README's first set-up command: `wincc-opcua-bridge demo` runs with no file and no flag, serves live tags, and
stops cleanly on Ctrl+C. The port flags exist for machines where 4840 is taken; the test uses them so it can run
next to anything else. The banner is printed only once the endpoint accepts connections and /readyz answers; the
demo leaves no file in the directory it runs in (its PKI goes to the user's cache directory); a taken port is one
line naming the flag, exit 2, no banner."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asyncua import Client, ua

from tests.helpers import free_port, wait_until, wait_until_sync

ROOT = Path(__file__).resolve().parents[2]
TAG_NS = "urn:wincc-opcua-bridge:tags"


BANNER_END = "Ctrl+C stops."


@dataclass
class AtBanner:
    """What held the moment the banner appeared."""

    endpoint_accepts: bool
    readyz: int


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _readyz(health: str) -> int:
    try:
        return httpx.get(health + "/readyz", timeout=2).status_code
    except httpx.HTTPError:
        return 0


Demo = tuple[subprocess.Popen[str], str, str, Path]
DEMO_STATE: dict[str, object] = {}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    yield from _start_demo(tmp_path_factory, DEMO_STATE)


@pytest.fixture
def own_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, dict[str, object]]]:
    """A demo of its own for the test that stops it: the module's demo serves the others, in any order."""
    state: dict[str, object] = {}
    yield from ((d, state) for d in _start_demo(tmp_path_factory, state))


def _start_demo(tmp_path_factory: pytest.TempPathFactory, state: dict[str, object]) -> Iterator[Demo]:
    cwd = tmp_path_factory.mktemp("demo-cwd")  # must stay empty
    home = tmp_path_factory.mktemp("demo-home")  # the demo's PKI goes to $HOME/.cache/wincc-opcua-bridge/demo
    ua_port, health_port, wincc_port = free_port(), free_port(), free_port()
    out = home / "demo.out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bridge",
            "demo",
            "--opcua-port",
            str(ua_port),
            "--health-port",
            str(health_port),
            "--wincc-port",
            str(wincc_port),
        ],
        cwd=cwd,
        stdout=out.open("w"),
        stderr=subprocess.STDOUT,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(home)},  # nothing from the test's env
    )
    health = f"http://127.0.0.1:{health_port}"

    def banner() -> bool:
        assert proc.poll() is None, out.read_text()
        return BANNER_END in out.read_text()

    try:
        assert wait_until_sync(banner, timeout=60, interval=0.02), out.read_text()
        # at once, no waiting: what the banner says must already be true
        state["at_banner"] = AtBanner(_accepts(ua_port), _readyz(health))
        state["cwd"], state["home"] = cwd, home
        assert wait_until_sync(lambda: _readyz(health) == 200, timeout=60), out.read_text()
        yield proc, f"opc.tcp://127.0.0.1:{ua_port}/wincc", health, out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_banner_only_once_the_endpoint_serves(demo: Demo) -> None:
    assert DEMO_STATE["at_banner"] == AtBanner(endpoint_accepts=True, readyz=200)


def test_demo_prints_where_to_connect(demo: Demo) -> None:
    _, endpoint, health, out = demo
    text = out.read_text()
    port = endpoint.rsplit(":", 1)[1].split("/")[0]
    assert f"opc.tcp://localhost:{port}/wincc" in text  # the advertised endpoint, public_hostname from demo.yaml
    assert "operator/operator" in text and "reader/reader" in text
    assert f"{health.removeprefix('http://')}/healthz" in text


async def test_demo_serves_live_tags_to_anonymous_readers(demo: Demo) -> None:
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


def test_demo_stops_on_ctrl_c_leaving_no_file_in_the_working_directory(
    own_demo: tuple[Demo, dict[str, object]],
) -> None:
    (proc, _, _, out), state = own_demo
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    assert "Traceback" not in out.read_text()
    cwd, home = state["cwd"], state["home"]
    assert isinstance(cwd, Path) and isinstance(home, Path)
    assert list(cwd.iterdir()) == []
    pki = home / ".cache" / "wincc-opcua-bridge" / "demo" / "pki"
    assert (
        pki / "own" / "cert.der"
    ).is_file() and f"Demo PKI (server certificate, client certificates): {pki}" in out.read_text()


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("0.0.0.0", 0))
    sock.listen()
    return sock


@pytest.mark.parametrize("flag", ["--opcua-port", "--health-port", "--wincc-port"])
def test_demo_on_a_taken_port_says_which_flag_in_one_line(tmp_path: Path, flag: str) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        ports = {"--opcua-port": free_port(), "--health-port": free_port(), "--wincc-port": free_port(), flag: port}
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "demo", *(str(x) for kv in ports.items() for x in kv)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)},
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert BANNER_END not in done.stdout and "Traceback" not in done.stderr and "ERROR" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"port {port} on " in line and line.endswith(f"is already in use; choose another port with {flag} N")


def test_run_on_a_taken_port_names_the_config_key(tmp_path: Path) -> None:
    with _busy_port() as busy:
        port = busy.getsockname()[1]
        cfg = tmp_path / "bridge.yaml"
        cfg.write_text(
            f"wincc: {{url: 'http://127.0.0.1:{free_port()}'}}\n"
            f"opcua: {{endpoint: 'opc.tcp://0.0.0.0:{port}/wincc', pki_dir: '{tmp_path / 'pki'}'}}\n"
            f"health: {{listen: '127.0.0.1:{free_port()}'}}\n"
        )
        done = subprocess.run(
            [sys.executable, "-m", "bridge", "run", str(cfg)], capture_output=True, text=True, timeout=60, cwd=tmp_path
        )
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line == f"OPC UA port {port} on 0.0.0.0 is already in use; choose another port with opcua.endpoint"
