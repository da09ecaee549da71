"""Which WinCC tags a bridge serves: browse roots, include and exclude patterns.

Both dialects browse through `select_browse`, so the selection is the same whatever the dialect, and a tag that is
not selected never reaches the address space, so it is never polled either.

Patterns are shell-style globs on the exact WinCC tag name, matched case-sensitively (`fnmatch.fnmatchcase`):
`*` is any run of characters including `.` and `/` (so `Plant.Area1.*` takes the whole subtree), `?` one
character, `[abc]` / `[!abc]` one of / none of the characters. A tag is selected when `include` is empty or any
include pattern matches, and no exclude pattern matches. A folder is kept only if a selected tag lies below it
(when a selection is active), so shards never show each other's empty folders. Both rules depend on nothing but
the tag's name, which is why shards with disjoint patterns together serve exactly the NodeIds of one unsharded
bridge.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from bridge.wincc.models import Folder, TagInfo

if TYPE_CHECKING:
    from bridge.config import WinCCConfig

__all__ = ["TagSelection", "browse_roots", "select_browse"]

BrowseOne = Callable[[str], AsyncIterator[Folder | TagInfo]]


@dataclass(frozen=True, slots=True)
class TagSelection:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: WinCCConfig) -> TagSelection:
        return cls(tuple(config.include), tuple(config.exclude))

    @property
    def active(self) -> bool:
        return bool(self.include or self.exclude)

    def selects(self, name: str) -> bool:
        if self.include and not any(fnmatchcase(name, p) for p in self.include):
            return False
        return not any(fnmatchcase(name, p) for p in self.exclude)


def browse_roots(config: WinCCConfig) -> list[str]:
    """The roots to browse: `browse_roots`, else the one `browse_root` ("" = everything)."""
    return list(config.browse_roots) if config.browse_roots else [config.browse_root]


async def select_browse(config: WinCCConfig, browse_one: BrowseOne) -> AsyncGenerator[Folder | TagInfo, None]:
    """Every selected folder and tag under every root, parents before children, each once (roots may overlap).

    Without include/exclude the dialect's answer streams through. With them, the folders are held back until the
    last root is browsed and only those above a selected tag are yielded (then the tags), so no folder of
    another shard's tags appears empty here."""
    selection = TagSelection.of(config)
    folders: dict[tuple[str, ...], None] = {}
    tags: dict[str, TagInfo] = {}
    for root in browse_roots(config):
        async for item in browse_one(root):
            if isinstance(item, Folder):
                if item.path in folders:
                    continue
                folders[item.path] = None
                if not selection.active:
                    yield item
            elif item.name not in tags and selection.selects(item.name):
                tags[item.name] = item
                if not selection.active:
                    yield item
    if not selection.active:
        return
    needed = {t.folder[:i] for t in tags.values() for i in range(1, len(t.folder) + 1)}
    for path in folders:
        if path in needed:
            yield Folder(path=path)
    for tag in tags.values():
        yield tag
