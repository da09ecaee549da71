"""asyncua internals the bridge depends on are still there, with the signatures it calls them with.

Every touchpoint lives in the package bridge/opcua/_asyncua/ (one module per section); when an asyncua upgrade moves
one, this test names the section and the name that moved, instead of a failure deep in a service. Two more tests keep
the rule that only that package reaches into asyncua's server internals.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.opcua import _asyncua
from bridge.opcua._asyncua import TOUCHPOINTS, Touchpoint

PACKAGE = Path(_asyncua.__file__).resolve().parent  # bridge/opcua/_asyncua
BRIDGE = PACKAGE.parents[1]


@pytest.mark.parametrize("touchpoint", TOUCHPOINTS, ids=repr)
def test_touchpoint_is_still_there(touchpoint: Touchpoint) -> None:
    problem = touchpoint.check()
    assert not problem, f"asyncua changed under bridge/opcua/_asyncua/ section {problem}"


def test_a_moved_touchpoint_is_reported_by_name() -> None:
    class Old:
        def hook(self, a: int) -> None: ...

    assert Touchpoint("x", Old, "hook", ("self", "a")).check() == ""
    assert "takes ('self', 'a')" in Touchpoint("x", Old, "hook", ("self", "b")).check()
    assert "is gone" in Touchpoint("x", Old, "gone").check()


_INTERNAL = re.compile(
    r"^\s*(from asyncua\.(server|ua\.ua_binary|ua\.uaprotocol_auto)\b|import asyncua\.server)", re.MULTILINE
)


def _outside_the_package() -> list[Path]:
    files = [p for p in BRIDGE.rglob("*.py") if PACKAGE not in p.resolve().parents]
    # the scan covers the rest of bridge/ and leaves out every module of the package
    assert BRIDGE / "app.py" in files and not any(p.name == "transport_guard.py" for p in files)
    return files


def test_only_the_touchpoint_package_imports_asyncua_internals() -> None:
    offenders = [str(p.relative_to(BRIDGE.parent)) for p in _outside_the_package() if _INTERNAL.search(p.read_text())]
    assert offenders == [], f"asyncua server internals imported outside bridge/opcua/_asyncua/: {offenders}"


_PRIVATE_REACH = re.compile(r"\b(aspace|iserver|isub|processor|subscription_service)\._[a-z]")


def test_only_the_touchpoint_package_reaches_into_asyncua_private_state() -> None:
    offenders = [
        f"{p.relative_to(BRIDGE.parent)}: {m.group(0)}"
        for p in _outside_the_package()
        for m in _PRIVATE_REACH.finditer(p.read_text())
    ]
    assert offenders == [], f"asyncua private state used outside bridge/opcua/_asyncua/: {offenders}"


def test_every_module_of_the_package_registers_its_section() -> None:
    """A section module that forgot to be added to the package's TOUCHPOINTS would go unchecked."""
    import importlib

    assembled = set(map(id, TOUCHPOINTS))
    for path in sorted(PACKAGE.glob("*.py")):
        module = importlib.import_module(f"bridge.opcua._asyncua.{path.stem}")
        own = getattr(module, "TOUCHPOINTS", None)
        if path.stem in ("__init__", "touchpoint", "processor"):
            continue  # the assembly, the checks themselves, and the class that combines sections 5, 8 and 14
        assert own is not None, f"{path.name} has no TOUCHPOINTS"
        assert set(map(id, own)) <= assembled, f"{path.name}'s TOUCHPOINTS are not in bridge.opcua._asyncua.TOUCHPOINTS"


def test_the_installed_asyncua_is_the_one_the_touchpoints_were_read_against() -> None:
    from importlib.metadata import version

    # a new asyncua may well be fine: re-read every section of bridge/opcua/_asyncua/ against it, then raise
    # ASYNCUA_VERSION
    assert version("asyncua") == _asyncua.ASYNCUA_VERSION


def test_the_rest_side_imports_no_asyncua() -> None:
    """bridge/wincc is the REST side: importing it (and both dialects) loads no asyncua at all."""
    import subprocess
    import sys

    code = (
        "import sys, bridge.wincc, bridge.wincc.dp, bridge.wincc.restservice; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'asyncua'))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "[]", done.stdout
