"""`iterate_in_thread`: a blocking iterator consumed from async code."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mmrag.server.threads import iterate_in_thread


def _collect(make, limit: int | None = None) -> list:
    async def run() -> list:
        out = []
        items = iterate_in_thread(make)
        try:
            async for item in items:
                out.append(item)
                if limit is not None and len(out) == limit:
                    break
        finally:
            await items.aclose()
        return out
    return asyncio.run(run())


def test_items_come_from_a_worker_thread_in_order():
    threads: set[str] = set()

    def produce():
        for i in range(5):
            threads.add(threading.current_thread().name)
            yield i

    assert _collect(produce) == [0, 1, 2, 3, 4]
    assert threads == {"mmrag-stream"}


def test_errors_are_reraised_in_the_consumer():
    def produce():
        yield "partial"
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        _collect(produce)


def test_a_consumer_that_stops_early_closes_the_iterator():
    closed = threading.Event()
    release = threading.Event()
    made: list[int] = []

    def produce():
        try:
            for i in (1, 2, 3):
                if i == 2:
                    release.wait(30)  # the consumer has gone by the time this returns
                made.append(i)
                yield i
        finally:
            closed.set()

    assert _collect(produce, limit=1) == [1]
    release.set()
    assert closed.wait(30)
    assert made == [1, 2]  # stopped after the item in hand, not run to the end


def test_a_cancelled_consumer_stops_the_worker():
    """A client hanging up cancels the response task while it waits for the next item."""
    closed, release, waiting = threading.Event(), threading.Event(), threading.Event()
    made: list[int] = []

    def produce():
        try:
            for i in (1, 2, 3):
                if i == 2:
                    waiting.set()
                    release.wait(30)
                made.append(i)
                yield i
        finally:
            closed.set()

    async def run() -> None:
        async def consume() -> None:
            async for _ in iterate_in_thread(produce):
                pass

        task = asyncio.create_task(consume())
        await asyncio.to_thread(waiting.wait, 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    release.set()
    assert closed.wait(30)
    assert made == [1, 2]
