"""Cross-process locks of an index folder, so several processes may share one index.

Two `mmrag add` runs, a server and a `mmrag delete` can all open the same folder. What
must never interleave is the commit of a group (store write, then catalog row) with a
recovery or a check: a reader that looks between the two sees the group's rows as
orphans and deletes them, and the catalog row written next then names missing items.
So every writer step, recovery and check hold ``index.lock`` exclusively; loading,
embedding and searching take no lock and go on in parallel.

Media files are written while documents load, long before their rows are committed, so
a garbage collection could delete them in between. Ingestion runs hold ``media.lock``
shared for their whole run; collection takes it exclusively and, when it cannot have it
at once, skips (an add is running; the next ``optimize`` collects).

``flock`` locks belong to the open file, so the kernel drops them when a process dies:
a SIGKILLed writer never leaves the index locked. Where ``fcntl`` is missing (Windows)
the locks only order threads of one process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal, overload

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FileLock"]


class FileLock:
    """An exclusive lock, re-entrant within one object, on a file shared by processes."""

    def __init__(self, path: Path):
        self.path = path
        self._mutex = threading.RLock()
        self._fd: int | None = None
        self._depth = 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the lock exclusively (blocking); nested holds by one thread are free."""
        with self._mutex:
            if self._depth == 0:
                self._fd = _lock(self.path, exclusive=True, wait=True)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._fd is not None:
                    _unlock(self._fd)
                    self._fd = None

    @contextmanager
    def shared(self) -> Iterator[None]:
        """Hold the lock shared (blocking) with every other shared holder."""
        fd = _lock(self.path, exclusive=False, wait=True)
        try:
            yield
        finally:
            _unlock(fd)

    @contextmanager
    def try_exclusive(self) -> Iterator[bool]:
        """Yield True while holding the lock exclusively, False if anyone else holds it
        (this process included: another open of the file conflicts)."""
        fd = _lock(self.path, exclusive=True, wait=False)
        try:
            yield fd is not None
        finally:
            if fd is not None:
                _unlock(fd)


@overload
def _lock(path: Path, *, exclusive: bool, wait: Literal[True]) -> int: ...
@overload
def _lock(path: Path, *, exclusive: bool, wait: bool) -> int | None: ...
def _lock(path: Path, *, exclusive: bool, wait: bool) -> int | None:
    # a blocking lock returns its descriptor or raises; only a non-blocking try gives None
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:
        return fd
    flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, flags)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _unlock(fd: int) -> None:
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
