"""Per-stage time of one ingest run (parse, render, OCR, figures, media, embed, store).

Users who ask "why is my ingest slow" need to see where the seconds go, and the ingest
benchmark reports the same breakdown. Loaders are pure generator functions several calls
deep, so the active recorder travels in a :class:`~contextvars.ContextVar` rather than
through every signature; :func:`stage` is a no-op when nothing is recording, so library
code can mark its stages unconditionally.

Work that runs in a thread pool (OCR) records *thread* seconds: they can add up to more
than the wall time of the run, which is how the breakdown shows that pages overlapped.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = ["StageTimes", "bind", "recording", "stage"]

T = TypeVar("T")

_active: contextvars.ContextVar[StageTimes | None] = contextvars.ContextVar(
    "mmrag_stage_times", default=None)


class StageTimes:
    """Seconds and call counts per stage name; safe to update from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds
            self.calls[name] = self.calls.get(name, 0) + 1

    @contextmanager
    def measure(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def as_dict(self) -> dict[str, float]:
        with self._lock:
            return {k: round(v, 4) for k, v in self.seconds.items()}


@contextmanager
def recording(times: StageTimes) -> Iterator[StageTimes]:
    """Make ``times`` the recorder for :func:`stage` calls in this context."""
    token = _active.set(times)
    try:
        yield times
    finally:
        _active.reset(token)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Add the time of the ``with`` body to the active recorder under ``name``.

    Do not wrap a ``yield`` of a generator: the consumer's time would be counted too.
    """
    times = _active.get()
    if times is None:
        yield
        return
    with times.measure(name):
        yield


def bind(fn: Callable[..., T]) -> Callable[..., T]:
    """``fn`` running in a copy of the caller's context, for thread pools: a pool thread
    does not inherit context variables, so its stages would otherwise go unrecorded."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> T:
        return ctx.copy().run(fn, *args, **kwargs)

    return run
