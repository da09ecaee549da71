"""Fixtures shared by every test folder. node-opcua is the independent OPC UA client: `node_client(spec)` runs
tests/interop/ua_client.js in a separate node process and returns its JSON results. node-opcua is installed from
the lockfile on first use, whichever test asks first, so the README's plain `pytest` needs nothing installed by
hand besides node and npm."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

INTEROP = Path(__file__).parent / "interop"


@pytest.fixture(scope="session")
def node_opcua() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail(
            "interop tests need node and npm on PATH (node 20): install them, node-opcua comes from the lockfile"
        )
    if not (INTEROP / "node_modules" / "node-opcua-client").is_dir():
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=INTEROP, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            pytest.fail(f"npm ci in {INTEROP} failed:\n{done.stderr[-2000:]}")
    return Path(node)


@pytest.fixture
def node_client(node_opcua: Path) -> Callable[..., list[Any]]:
    def run(spec: dict[str, Any], timeout: float = 120) -> list[Any]:
        done = subprocess.run(
            [str(node_opcua), str(INTEROP / "ua_client.js"), json.dumps(spec)],
            cwd=INTEROP,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise AssertionError(f"node-opcua client failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    return run
