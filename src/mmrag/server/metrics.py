"""``GET /metrics``: Prometheus text for request latency, ingestion and index size.

Each app has its own :class:`~prometheus_client.CollectorRegistry` (never the global one),
so several apps in one process (tests, embedders) count separately. Latency is recorded
by an ASGI middleware per route *template* (``/collections/{collection}/search``, not the
concrete path: one series per route, not per collection or id), method and status;
requests that match no route share the label ``<unmatched>``. Index sizes are read at
scrape time from the collections already open, so a scrape never opens an index.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LatencyMiddleware", "Metrics"]

log = logging.getLogger(__name__)

# Seconds: a cached search takes milliseconds, an answer from a local model many seconds.
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The app's registry and the instruments routes and jobs update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram(
            "mmrag_http_request_duration_seconds", "HTTP request latency until the response "
            "ends (streams included)", ["method", "route", "status"], buckets=_BUCKETS,
            registry=self.registry)
        self.files = Counter("mmrag_ingest_files", "Files and URLs processed by ingest jobs",
                             ["collection", "result"], registry=self.registry)
        self.items = Counter("mmrag_ingest_items", "Items added by ingest jobs",
                             ["collection"], registry=self.registry)
        self.failures = Counter("mmrag_ingest_failures", "Files and URLs that failed to "
                                "ingest", ["collection"], registry=self.registry)

    def on_file(self, collection: str, status: str, items: int) -> None:
        """After each file of an ingest job (``status``: done, skipped or failed; counted
        as ``result="added"``, ``"skipped"`` or ``"failed"``)."""
        result = "added" if status == "done" else status
        self.files.labels(collection, result).inc()
        if items:
            self.items.labels(collection).inc(items)
        if status == "failed":
            self.failures.labels(collection).inc()

    def watch(self, sizes: Callable[[], Iterator[tuple[str, int, int]]],
              jobs: Callable[[], dict[str, int]]) -> None:
        """Report index sizes (``(collection, items, documents)``) and job counts, read
        at each scrape."""
        self.registry.register(_StateCollector(sizes, jobs))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    def __init__(self, sizes: Callable[[], Iterator[tuple[str, int, int]]],
                 jobs: Callable[[], dict[str, int]]):
        self.sizes, self.jobs = sizes, jobs

    def describe(self) -> list[Metric]:
        return []  # dynamic: nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        items = GaugeMetricFamily("mmrag_index_items", "Items in a collection's index",
                                  labels=["collection"])
        docs = GaugeMetricFamily("mmrag_index_documents", "Documents in a collection",
                                 labels=["collection"])
        for name, n_items, n_docs in self.sizes():
            items.add_metric([name], n_items)
            docs.add_metric([name], n_docs)
        jobs = GaugeMetricFamily("mmrag_jobs", "Ingest jobs remembered, by status",
                                 labels=["status"])
        for status, n in self.jobs().items():
            jobs.add_metric([status], n)
        yield from (items, docs, jobs)


class LatencyMiddleware:
    """Pure ASGI (not ``BaseHTTPMiddleware``): it must not buffer streamed answers."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.latency.labels(scope["method"], _template(scope), str(status)
                                        ).observe(time.perf_counter() - start)


def _template(scope: Scope) -> str:
    # The router stores the matched route in the scope; its path is the template.
    route = scope.get("route")
    return str(getattr(route, "path", "")) or "<unmatched>"
