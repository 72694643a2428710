"""Numbering of what the agent's tools retrieved, so the answer can cite ``[n]``.

The model sees one number per source across every tool call of a run: searching twice
and then reading a page must not give the same page two numbers, nor two pages one. A
source is a page of a document (``(doc_id, page)``), the unit search groups by, so a
page found by search and then read whole keeps its number.

A run's ledger travels in the run config (``configurable["mmrag_sources"]``), which
also keeps numbers unique when a model calls tools in parallel. A graph invoked without
one still numbers consistently: the ledger is rebuilt from the artifacts of the tool
messages already in the conversation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..types import Hit

CONFIG_KEY = "mmrag_sources"


@dataclass(slots=True)
class Source:
    """What a tool message's artifact holds for each source it showed: its number."""

    number: int
    hit: Hit

    @property
    def key(self) -> tuple[str, int]:
        return source_key(self.hit)


def source_key(hit: Hit) -> tuple[str, int]:
    return (hit.doc_id, hit.page)


class SourceLedger:
    """Assigns ``[1]``, ``[2]``, ... in order of first appearance; thread-safe."""

    def __init__(self, sources: Iterable[Source] = ()):
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, int], Source] = {}
        for s in sources:
            self._by_key.setdefault(s.key, s)

    def add(self, hit: Hit) -> Source:
        """The source for ``hit``: its existing number, or the next one."""
        with self._lock:
            key = source_key(hit)
            if key not in self._by_key:
                self._by_key[key] = Source(len(self._by_key) + 1, hit)
            return self._by_key[key]

    @property
    def hits(self) -> list[Hit]:
        """Hits in number order: ``hits[n - 1]`` is source ``[n]``."""
        with self._lock:
            return [s.hit for s in sorted(self._by_key.values(), key=lambda s: s.number)]

    def __len__(self) -> int:
        return len(self._by_key)

    @classmethod
    def from_messages(cls, messages: Sequence[Any]) -> SourceLedger:
        """Rebuild from the artifacts of earlier tool messages of a conversation."""
        return cls(s for m in messages for s in (getattr(m, "artifact", None) or ())
                   if isinstance(s, Source))

    @classmethod
    def of_run(cls, config: Mapping[str, Any] | None, state: dict[str, Any] | None
               ) -> SourceLedger:
        """The run's ledger if the caller gave one, else one rebuilt from ``state``."""
        ledger = ((config or {}).get("configurable") or {}).get(CONFIG_KEY)
        if isinstance(ledger, SourceLedger):
            return ledger
        return cls.from_messages((state or {}).get("messages") or ())
