"""Consume a blocking iterator (a streaming answer) from async code.

Retrieval and generation block: an encoder forward pass, a local model's decoding loop, an
HTTP call to a provider. Run on the event loop they would stall every other request, so
the iterator runs in a worker thread of its own and hands items to the loop through an
``asyncio.Queue``. One thread per stream (not a pooled ``next()`` call per item) keeps
thread-affine generators (llama.cpp, CUDA streams) on the thread that started them.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

__all__ = ["iterate_in_thread"]

T = TypeVar("T")
_ITEM, _ERROR, _DONE = "item", "error", "done"


async def iterate_in_thread(make: Callable[[], Iterable[T]]) -> AsyncIterator[T]:
    """Yield what ``make()`` yields, computed in a worker thread.

    Exceptions from ``make`` or the iteration are re-raised here. When the consumer stops
    early (a client hung up), the worker stops after its current item and closes the
    iterator, so a generator's ``finally`` (releasing a model, an HTTP stream) runs.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()

    def send(kind: str, value: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop is gone (server shutting down): nobody listens
            stop.set()

    def work() -> None:
        try:
            items = make()
            try:
                for item in items:
                    if stop.is_set():
                        break
                    send(_ITEM, item)
            finally:
                close = getattr(items, "close", None)
                if callable(close):
                    close()
        except BaseException as exc:  # handed to the consumer, which re-raises it
            send(_ERROR, exc)
        else:
            send(_DONE, None)

    threading.Thread(target=work, name="mmrag-stream", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == _DONE:
                return
            if kind == _ERROR:
                raise value
            yield value
    finally:
        stop.set()
