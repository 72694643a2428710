"""What a running server holds, and how routes reach it.

Indexes are opened once and shared by every request: opening one loads encoders and
connects the store, far too slow per request. The app's lifespan builds a
:class:`ServerState` (collections, ingest jobs, API keys, the upload folder) and routes
reach it through ``request.app.state`` rather than a global, so tests and embedders can
run several apps in one process.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import Request

from ..config import ServerSettings
from ..index import Index

if TYPE_CHECKING:
    from .jobs import Jobs
    from .keys import KeyStore
    from .quotas import Quotas
    from .registry import Collections

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

    collections: Collections
    jobs: Jobs
    keys: KeyStore
    settings: ServerSettings
    uploads: Path  # temp folder for request bodies being received; removed at shutdown
    quotas: Quotas
    search_limiter: Any = None  # anyio.CapacityLimiter of server.search_threads (set in
    # the lifespan: a limiter belongs to the event loop that runs the app)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.settings.max_upload_mb * 2**20)

    def close(self) -> None:
        self.jobs.close()
        self.collections.close()
        shutil.rmtree(self.uploads, ignore_errors=True)


def server_state(request: Request) -> ServerState:
    return request.app.state.mmrag


def current_index(request: Request) -> Index:
    """FastAPI dependency: the index of the ``default`` collection (what ``/v1`` answers
    from), loaded on first use. Sync, so FastAPI runs it in a worker thread."""
    from .registry import DEFAULT

    return server_state(request).collections.get(DEFAULT).ready()
