"""WinCC down at start: the bridge serves the model of the last good browse (NodeSet2 snapshot), values
BadWaitingForInitialData/BadCommunicationError, and recovers alone when WinCC comes back."""

from __future__ import annotations

import os
import subprocess
import sys

from asyncua import Client, ua

from tests.helpers import wait_until, wait_until_sync
from tests.integration.conftest import WINCC_PASSWORD, start_simulator


async def test_start_from_snapshot_while_wincc_is_down_then_recover(bridge_stack, tmp_path) -> None:
    stack = bridge_stack("dp")
    snapshot = stack.config["wincc"]["browse_snapshot"]
    wait_until_sync(lambda: os.path.exists(snapshot), timeout=10, what="browse snapshot written")
    assert stack.stop_bridge() == 0
    stack.sim.terminate()
    stack.sim.wait(10)

    log = tmp_path / "bridge2.log"
    proc = subprocess.Popen([sys.executable, "-m", "bridge", "run", "--config", str(stack.config_path)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "WINCC_PASSWORD": WINCC_PASSWORD}, cwd=tmp_path)
    stack.bridge, stack.log_path = proc, log
    wait_until_sync(stack.ready, timeout=60, what="bridge ready from the snapshot")
    assert "from the snapshot" in log.read_text()
    client = Client(stack.url_for("reader"), timeout=10)
    await client.connect()
    try:
        ns = await client.get_namespace_index("urn:wincc-opcua-bridge:tags")
        level = client.get_node(ua.NodeId("System1.Tank1.Level", ns))
        dv = await level.read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value in (ua.StatusCodes.BadWaitingForInitialData, ua.StatusCodes.BadCommunicationError)
        port = int(stack.sim_base.rsplit(":", 1)[1])
        stack.sim, _, _ = start_simulator(tmp_path, "dp", port=port)

        async def good() -> bool:
            return (await level.read_data_value(raise_on_bad_status=False)).StatusCode.is_good()

        await wait_until(good, timeout=30, what="Good after WinCC came back")
    finally:
        await client.disconnect()
