"""Keep a long-running server's memory from creeping up under ingest.

Why: uploads are embedded and written by LanceDB's native threads. glibc gives each thread
that allocates its own malloc arena (up to 8 per core), and freed memory in those arenas is
rarely returned to the system, so the server's RSS grew from ~300 to ~840 MiB over a minute
of uploads while the Python heap stayed at a few MiB (``benchmarks/results/server.md``).
Capping the arenas, as ``MALLOC_ARENA_MAX=2`` does, and trimming after each ingest job keep
that memory reusable and returned. Only glibc has these calls; elsewhere this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from functools import cache

__all__ = ["limit_arenas", "trim"]

logger = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc only; musl/macOS lack them
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for threads started from now on, unless the user chose a
    cap with ``MALLOC_ARENA_MAX`` (glibc has then applied it already). True when set."""
    libc = _libc()
    if libc is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    ok = bool(libc.mallopt(_M_ARENA_MAX, arenas))
    logger.debug("malloc arenas capped at %d: %s", arenas, ok)
    return ok


def trim() -> None:
    """Hand free heap pages back to the system (after an ingest job's burst)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
