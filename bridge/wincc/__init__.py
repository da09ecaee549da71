"""The WinCC REST side of the bridge (never imports asyncua)."""

from bridge.wincc.client import WinCCClient, open_client

__all__ = ["WinCCClient", "open_client"]
