"""What a reload (SIGHUP, or the bridge's Reload method) may change in a running bridge, and what needs a restart.

Reloaded in place: the users and their write rules, anonymous access and the failed-login limit, the trust list
(pki_dir folders, auto_accept_client_certs) and the log level. Open sessions keep the rights they logged in with.
Every other key (endpoint, dialect, URL, policies, sync, ...) is read at start only: a change to one is named in
the log as needing a restart and otherwise ignored until then.
"""

from __future__ import annotations

from typing import Any

from bridge.config import BridgeConfig

__all__ = ["RELOADABLE", "restart_needed"]

RELOADABLE = frozenset(
    {
        "opcua.users",
        "opcua.write_rules",
        "opcua.anonymous",
        "opcua.failed_login_limit",
        "opcua.pki_dir",
        "opcua.auto_accept_client_certs",
        "log.level",
    }
)


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and (not prefix or prefix not in RELOADABLE):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def restart_needed(running: BridgeConfig, new: BridgeConfig) -> list[str]:
    """The keys that differ between the running config and a new one and that a reload cannot apply."""
    old_keys, new_keys = _flat(running.model_dump(mode="json")), _flat(new.model_dump(mode="json"))
    changed = {k for k in old_keys.keys() | new_keys.keys() if old_keys.get(k) != new_keys.get(k)}
    return sorted(k for k in changed if k not in RELOADABLE)
