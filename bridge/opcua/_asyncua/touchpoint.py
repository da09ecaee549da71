"""How bridge/opcua/_asyncua/ states what it relies on in asyncua, so tests/unit/test_asyncua_touchpoints.py can
check it: a `Touchpoint` is a name (and, where given, the parameters) asyncua must still have; `check()` returns
what is wrong, or ''."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

__all__ = ["ASYNCUA_VERSION", "InstanceAttribute", "Touchpoint"]

ASYNCUA_VERSION = "2.1.0"  # what every section of bridge/opcua/_asyncua/ was read against


class Touchpoint:
    """One thing asyncua must still have for a section above to work: `check()` returns what is wrong, or ''."""

    def __init__(self, section: str, owner: Any, name: str, params: Iterable[str] | None = None) -> None:
        self.section, self.owner, self.name = section, owner, name
        self.params = tuple(params) if params is not None else None

    def __repr__(self) -> str:
        return f"{self.section}: {getattr(self.owner, '__name__', self.owner)}.{self.name}"

    def check(self) -> str:
        target = self.owner
        if not hasattr(target, self.name):
            return f"{self!r} is gone (asyncua {ASYNCUA_VERSION} had it)"
        if self.params is None:
            return ""
        value = inspect.getattr_static(target, self.name)
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        try:
            have = tuple(inspect.signature(value).parameters)
        except (TypeError, ValueError):
            return f"{self!r} has no signature to check"
        if have != self.params:
            return f"{self!r} takes {have}, the bridge calls it with {self.params} (read against {ASYNCUA_VERSION})"
        return ""


class InstanceAttribute(Touchpoint):
    """An attribute asyncua sets in __init__ (hasattr on the class cannot see it): looked up in the source."""

    def check(self) -> str:
        source = inspect.getsource(self.owner.__init__)
        if f"self.{self.name}" not in source:
            return f"{self!r}: {self.owner.__name__}.__init__ no longer sets it (asyncua {ASYNCUA_VERSION} did)"
        return ""
