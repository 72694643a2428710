"""The collections a server serves: one :class:`~mmrag.Index` each, opened once, on demand.

Two layouts: ``--data DIR`` holds one index folder per collection (``DIR/<name>/``), created
with ``PUT /collections/{name}``; ``--index DIR`` serves that single index as the
collection ``default``. Opening an index is cheap (catalog, store handle); loading its
encoders and generator is not, so that happens once per collection, under a lock, on the
first request that needs them (:meth:`Collection.ready`): the lazy properties of an Index
are not meant to be built by two threads at once.

Each collection also has a write lock: ingest jobs and deletes take it, so one write runs
at a time per collection while searches go on beside it (the store serves reads during a
write).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..index import MANIFEST, Index
from .errors import ApiError
from .ids import COLLECTION, check_collection

__all__ = ["DEFAULT", "Collection", "Collections"]

log = logging.getLogger(__name__)

DEFAULT = "default"  # the collection name of an ``--index`` server
WRITE_WAIT_S = 60.0  # a delete waits this long for a running ingest before giving up


@dataclass(slots=True)
class Collection:
    name: str
    index: Index
    owns_index: bool  # opened here, so closed here; an Index handed to create_app stays open
    warm: Callable[[Index], None]
    write_lock: threading.Lock = field(default_factory=threading.Lock)
    _ready: bool = False
    _ready_lock: threading.Lock = field(default_factory=threading.Lock)

    def ready(self) -> Index:
        """The index with encoders, store and generator loaded (once). Blocks: call it
        off the event loop."""
        if not self._ready:
            with self._ready_lock:
                if not self._ready:
                    self.warm(self.index)
                    self._ready = True
        return self.index

    def close(self) -> None:
        if self.owns_index:
            self.index.close()


class Collections:
    """Name → :class:`Collection`; ``data`` (a folder of collections) or ``single`` (one
    index served as ``default``)."""

    def __init__(self, *, warm: Callable[[Index], None], data: str | Path | None = None,
                 single: Index | None = None, owns_single: bool = False,
                 profile: str | None = None, config: str | Path | None = None,
                 overrides: dict[str, Any] | None = None):
        if (data is None) == (single is None):
            raise ValueError("give either a data folder or a single index")
        self.data = Path(data).expanduser().resolve() if data is not None else None
        self.profile, self.config, self.overrides = profile, config, dict(overrides or {})
        self._warm = warm
        self._lock = threading.Lock()
        self._open: dict[str, Collection] = {}
        if single is not None:
            self._open[DEFAULT] = Collection(DEFAULT, single, owns_single, warm)
            self._root = single.root
        else:
            assert self.data is not None
            self.data.mkdir(parents=True, exist_ok=True)
            self._root = self.data

    @property
    def single(self) -> bool:
        return self.data is None

    @property
    def root(self) -> Path:
        """The folder keys (and, in data mode, collections) live in."""
        return self._root

    def names(self) -> list[str]:
        if self.data is None:
            return [DEFAULT]
        return sorted(p.name for p in self.data.iterdir()
                      if COLLECTION.fullmatch(p.name) and (p / MANIFEST).is_file())

    def exists(self, name: str) -> bool:
        if self.data is None:
            return name == DEFAULT
        return (self.data / check_collection(name) / MANIFEST).is_file()

    def check(self, name: str) -> None:
        """404 unless collection ``name`` exists; cheap (no index is opened)."""
        if not self.exists(name):
            raise ApiError(f"collection {name!r} does not exist", status=404,
                           code="not_found", param="collection")

    def opened(self) -> list[Collection]:
        with self._lock:
            return list(self._open.values())

    def get(self, name: str) -> Collection:
        """The open collection ``name`` (opened now if needed); 404 if it does not exist.
        Blocks on first use: call it off the event loop."""
        check_collection(name)
        with self._lock:
            found = self._open.get(name)
            if found is not None:
                return found
            self.check(name)
            return self._open_locked(name, None)

    def _open_locked(self, name: str, profile: str | None,
                     privacy: dict[str, Any] | None = None) -> Collection:
        assert self.data is not None
        folder = self.data / name
        new = not folder.exists()
        try:
            overrides = dict(self.overrides)
            if privacy:
                overrides["privacy"] = {**overrides.get("privacy", {}), **privacy}
            index = Index(folder, profile=profile, config=self.config, **overrides)
            _ = index.store  # writes the manifest of a new collection: it now exists on disk
        except BaseException:
            if new:  # e.g. an unknown profile: leave no half-made collection behind
                shutil.rmtree(folder, ignore_errors=True)
            raise
        collection = Collection(name, index, True, self._warm)
        self._open[name] = collection
        log.info("opened collection %r (%s)", name, index.profile)
        return collection

    def create(self, name: str, profile: str | None = None,
               privacy: dict[str, Any] | None = None) -> tuple[Collection, bool]:
        """``(collection, created)``; an existing one with another profile is a 409.
        ``privacy`` applies to a new collection only (it is stored in its manifest)."""
        check_collection(name)
        if self.data is None:
            if name != DEFAULT:
                raise ApiError("this server serves one index (--index); start it with "
                               "--data DIR to create collections", code="not_supported")
            return self._open[DEFAULT], False
        if self.exists(name):
            collection = self.get(name)
            if profile and collection.index.profile != profile:
                raise ApiError(f"collection {name!r} exists with profile "
                               f"{collection.index.profile!r}, not {profile!r}", status=409,
                               code="conflict", param="profile")
            return collection, False
        with self._lock:
            if name in self._open:
                return self._open[name], False
            return self._open_locked(name, profile or self.profile, privacy), True

    def delete(self, name: str) -> None:
        """Close and remove a collection's folder, after any write in progress."""
        check_collection(name)
        if self.data is None:
            raise ApiError("the index of an --index server cannot be deleted over HTTP",
                           status=409, code="conflict", param="collection")
        collection = self.get(name)
        if not collection.write_lock.acquire(timeout=WRITE_WAIT_S):
            raise ApiError(f"collection {name!r} is busy with an ingest; try again later",
                           status=409, code="busy")
        try:
            with self._lock:
                self._open.pop(name, None)
            collection.close()
            shutil.rmtree(self.data / name)
        finally:
            collection.write_lock.release()

    def close(self) -> None:
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        for collection in opened:
            try:
                collection.close()
            except Exception:  # one index failing to close must not keep others open
                log.warning("closing collection %r failed", collection.name, exc_info=True)
