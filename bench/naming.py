"""The tag set of a benchmark, browsed once from the simulator over REST and shared with the baseline and the
subscriber as a JSON file, so both servers carry exactly the same names, types and folders."""

from __future__ import annotations

import json
from pathlib import Path

from bridge.config import WinCCConfig
from bridge.wincc.client import open_client
from bridge.wincc.models import TagInfo

NAMESPACE_URI = "urn:wincc-opcua-bridge:tags"


async def browse_tags(url: str, dialect: str, *, auth: dict[str, str] | None = None) -> list[TagInfo]:
    cfg = WinCCConfig.model_validate({"url": url, "dialect": dialect, "auth": auth or {"mode": "none"}})
    async with open_client(cfg) as client:
        return [item async for item in client.browse() if isinstance(item, TagInfo)]


def save_tags(tags: list[TagInfo], path: Path) -> None:
    path.write_text(json.dumps([[t.name, list(t.folder)] for t in tags]), encoding="utf-8")


def load_tags(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    return [(name, tuple(folder)) for name, folder in json.loads(Path(path).read_text(encoding="utf-8"))]
