"""Per-caller quotas: a request rate and an upload count, each a token bucket.

One API key (or, on a keyless server, one client address) must not be able to starve the
others: every authenticated request takes a token from its caller's request bucket
(``server.rate_limit`` per second, up to ``server.rate_burst`` saved up), and every file or
URL sent to be ingested takes one from its upload bucket (``server.max_files_per_hour``,
all of which may be used at once). An empty bucket is a 429 ``rate_limited`` with
``Retry-After`` (whole seconds until enough tokens are back); a request that could never
fit (more files than the hourly quota) is a 413 ``too_many_files``. Failed key guesses
count against the guessing address, so they are throttled too.

Buckets live in memory: a restart refills them, which errs towards letting callers in.
Both quotas are off by default (``0``).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..config import ServerSettings
from .errors import ApiError

__all__ = ["Quotas", "TokenBucket"]

MAX_BUCKETS = 10_000  # callers remembered at once; idle (full) buckets go first


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved; starts full."""

    rate: float
    capacity: float
    tokens: float
    stamp: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n: float, now: float, *, dry: bool = False) -> float:
        """Take ``n`` tokens and return 0, or take none and return the seconds until
        ``n`` would be there; ``dry``: only tell, take nothing."""
        self.refill(now)
        if self.tokens >= n:
            self.tokens -= 0.0 if dry else n
            return 0.0
        return (n - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        self.refill(now)
        return self.tokens >= self.capacity


class _Buckets:
    """Caller → bucket, all with one rate and capacity; thread-safe."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]):
        self.rate, self.capacity, self.clock = rate, capacity, clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def take(self, who: str, n: float = 1.0, *, dry: bool = False) -> float:
        with self._lock:
            now = self.clock()
            bucket = self._buckets.get(who)
            if bucket is None:
                if len(self._buckets) >= MAX_BUCKETS:
                    self._forget_idle(now)
                bucket = self._buckets[who] = TokenBucket(self.rate, self.capacity,
                                                          self.capacity, now)
            return bucket.take(n, now, dry=dry)

    def _forget_idle(self, now: float) -> None:
        """Drop full buckets (a caller with a full bucket loses nothing by being
        forgotten); if none is full, the oldest half, so memory stays bounded."""
        idle = [who for who, b in self._buckets.items() if b.full(now)]
        if not idle:
            idle = sorted(self._buckets, key=lambda w: self._buckets[w].stamp)
            idle = idle[:len(idle) // 2]
        for who in idle:
            del self._buckets[who]


class Quotas:
    """The server's request-rate and upload-count quotas (each off when its setting is 0)."""

    def __init__(self, settings: ServerSettings,
                 clock: Callable[[], float] = time.monotonic):
        self.requests = _Buckets(settings.rate_limit, settings.rate_burst, clock) \
            if settings.rate_limit > 0 else None
        per_hour = settings.max_files_per_hour
        self.uploads = _Buckets(per_hour / 3600.0, per_hour, clock) if per_hour else None

    def request(self, who: str) -> None:
        """Admit one request by ``who`` or raise 429."""
        if self.requests is not None:
            _refuse(self.requests.take(who), "too many requests for this API key or "
                    "address")

    def files(self, who: str, count: int) -> None:
        """Admit ``count`` files (or URLs) to ingest for ``who``, or raise 413 (more than
        the quota holds at all) / 429 (not now). ``count=0`` only checks the bucket is not
        empty: called before a body is received, it spares receiving one in vain."""
        if self.uploads is None:
            return
        if count > self.uploads.capacity:
            raise ApiError(f"{count} files is more than the upload quota of "
                           f"{self.uploads.capacity:.0f} files per hour", status=413,
                           code="too_many_files")
        wait = self.uploads.take(who, max(count, 1), dry=not count)
        _refuse(wait, "upload quota used up (files per hour) for this API key or address")


def _refuse(wait: float, message: str) -> None:
    if wait > 0:
        seconds = max(1, math.ceil(wait))
        raise ApiError(f"{message}; retry after {seconds} s", status=429,
                       code="rate_limited", headers={"Retry-After": str(seconds)})
