"""What a running server holds, and how routes reach it.

The :class:`~mmrag.Index` is opened once, by the app's lifespan, and shared by every
request: opening one loads encoders and connects the store, far too slow per request.
Routes take it through the :func:`current_index` dependency rather than a global, so tests
and embedders can run several apps (several indexes) in one process.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import Request

from ..index import Index

__all__ = ["IndexSource", "ServerState", "current_index", "server_state"]


@dataclass(slots=True)
class IndexSource:
    """How to open the index when the app starts: a folder (or store URI) plus settings."""

    path: str | Path = ".mmrag"
    profile: str | None = None
    config: str | Path | None = None
    overrides: dict[str, Any] | None = None

    def open(self) -> Index:
        return Index(self.path, profile=self.profile, config=self.config,
                     **(self.overrides or {}))


@dataclass(slots=True)
class ServerState:
    """Lives on ``app.state.mmrag`` between startup and shutdown."""

    index: Index
    owns_index: bool  # opened by the app, so closed by it; a caller's Index stays open

    def close(self) -> None:
        if self.owns_index:
            self.index.close()


def server_state(request: Request) -> ServerState:
    return request.app.state.mmrag


def current_index(request: Request) -> Index:
    """FastAPI dependency: the index this app serves."""
    return server_state(request).index
