"""Ingest jobs: what ``POST /collections/{c}/items`` starts and ``GET /jobs/{id}`` reports.

``Index.add`` blocks for as long as parsing, OCR and embedding take, so it runs in a
worker thread, never on the event loop. Each collection has at most one worker, taking
its jobs in order (one ingest at a time per collection; different collections ingest side
by side), and a job adds its files in batches (:mod:`.batches`: per-file progress, one
store commit a batch), each under the collection's write lock, so a delete can slip in
between two batches. Searches take no lock and go on throughout.

Jobs live in memory while they run and are written through to ``jobs.sqlite``
(:mod:`.joblog`) as they move, so ``GET /jobs/{id}`` still answers after a restart; a job
the restart cut short is reported failed with that reason. Finished jobs are kept (in
memory and on disk) for ``keep_jobs``.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import MmragError
from .allocator import trim
from .batches import add_batch, batches
from .errors import ApiError, one_line
from .joblog import JobLog, summary
from .registry import Collections

__all__ = ["Job", "JobFile", "Jobs"]

log = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "failed"]
FileStatus = Literal["queued", "running", "done", "failed", "skipped"]
# (collection, file status, items added) after each file, for the metrics
FileHook = Callable[[str, str, int], None]


@dataclass(slots=True)
class JobFile:
    """One thing to add: an uploaded temp file (``path``) or a URL (``url``)."""

    name: str
    path: Path | None = None
    url: str | None = None
    status: FileStatus = "queued"
    reason: str = ""
    doc_id: str = ""
    items: int = 0
    processed: bool = False  # the pipeline has moved past it; its status comes at commit

    @property
    def finished(self) -> bool:
        return self.status in ("done", "failed", "skipped")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "reason": self.reason,
                "doc_id": self.doc_id or None, "items": self.items}

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


@dataclass(slots=True)
class Job:
    id: str
    collection: str
    files: list[JobFile]
    metadata: dict[str, Any] = field(default_factory=dict)
    status: JobStatus = "queued"
    error: str = ""
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def done(self) -> int:
        """Files finished or past the pipeline (awaiting their batch's commit)."""
        return sum(f.finished or f.processed for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        with self.lock:  # the worker updates files while a request reads them
            files = [f.to_dict() for f in self.files]
            return {"id": self.id, "collection": self.collection, "status": self.status,
                    **summary(files, self.done), "error": self.error or None,
                    "created": self.created, "started": self.started,
                    "finished": self.finished}

    def set_file(self, file: JobFile, status: FileStatus, reason: str = "") -> None:
        with self.lock:
            file.status, file.reason = status, reason

    def mark_processed(self, file: JobFile) -> None:
        with self.lock:
            file.processed = True


class Jobs:
    """Queues jobs per collection and runs each queue in a worker thread of its own."""

    def __init__(self, collections: Collections, *, max_jobs: int = 100,
                 keep_jobs: int = 1000, on_file: FileHook | None = None,
                 log: JobLog | None = None):
        self.collections = collections
        self.log = log  # None: jobs are forgotten at shutdown
        self.max_jobs, self.keep_jobs = max_jobs, keep_jobs
        self.on_file = on_file
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._queues: dict[str, deque[Job]] = {}
        self._workers: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def submit(self, collection: str, files: list[JobFile],
               metadata: dict[str, Any] | None = None) -> Job:
        job = Job(uuid.uuid4().hex, collection, files, dict(metadata or {}))
        with self._lock:
            if self._stop.is_set():
                raise ApiError("the server is shutting down", status=503, code="unavailable")
            if self.active() >= self.max_jobs:
                raise ApiError(f"{self.max_jobs} ingest jobs are already queued or running; "
                               "try again later", status=429, code="too_many_jobs")
            self._jobs[job.id] = job
            self._save(job)
            self._queues.setdefault(collection, deque()).append(job)
            worker = self._workers.get(collection)
            if worker is None or not worker.is_alive():
                worker = threading.Thread(target=self._work, args=(collection,), daemon=True,
                                          name=f"mmrag-ingest-{collection}")
                self._workers[collection] = worker
                worker.start()
            self._forget_old()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def describe(self, job_id: str) -> dict[str, Any] | None:
        """What ``GET /jobs/{id}`` answers: the live job, else its record on disk (a job
        of an earlier run, or one forgotten here after ``keep_jobs``)."""
        job = self._jobs.get(job_id)
        if job is not None:
            return job.to_dict()
        return self.log.load(job_id) if self.log is not None else None

    def _save(self, job: Job) -> None:
        """Write ``job`` through to disk. A failing write (disk full) must not fail the
        ingest itself: the job goes on in memory and the failure is logged."""
        if self.log is None:
            return
        try:
            self.log.save(job.to_dict())
        except Exception:
            log.warning("cannot record ingest job %s", job.id, exc_info=True)

    def active(self) -> int:
        return sum(j.status in ("queued", "running") for j in list(self._jobs.values()))

    def counts(self) -> dict[str, int]:
        out = {"queued": 0, "running": 0, "done": 0, "failed": 0}
        for job in list(self._jobs.values()):
            out[job.status] += 1
        return out

    def _forget_old(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.finished is not None]
        for job_id in finished[:max(0, len(finished) - self.keep_jobs)]:
            del self._jobs[job_id]
        if self.log is not None and finished:
            self.log.prune(self.keep_jobs)

    def _work(self, collection: str) -> None:
        while True:
            with self._lock:
                queue = self._queues.get(collection)
                if not queue:
                    self._workers.pop(collection, None)
                    self._queues.pop(collection, None)
                    return
                job = queue.popleft()
            self._run(job)

    def _run(self, job: Job) -> None:
        job.status, job.started = "running", time.time()
        self._save(job)
        status: JobStatus = "done"
        try:
            target = self.collections.get(job.collection)
            index = target.ready()
            seen: dict[str, str] = {}
            for batch in batches(job.files, index.settings.ingest.batch_size):
                if self._stop.is_set():
                    raise ApiError("the server shut down before these files", code="aborted")
                with target.write_lock:
                    add_batch(index, job, batch, seen)
                self._save(job)
        except Exception as exc:
            status, job.error = "failed", one_line(exc)
            if not isinstance(exc, (ApiError, MmragError)):  # a bug: no details to clients
                log.exception("ingest job %s failed", job.id)
                job.error = "internal error while ingesting (see the server log)"
            for file in job.files:
                if not file.finished:
                    job.set_file(file, "failed", job.error)
        finally:
            for file in job.files:
                file.discard()
                self._report(job.collection, file.status, file.items)
            job.finished = time.time()
            job.status = status  # last: a client that sees it finished sees everything
            self._save(job)
            trim()  # an ingest burst leaves free heap pages behind (see allocator.py)

    def _report(self, collection: str, status: str, items: int) -> None:
        if self.on_file is not None:
            self.on_file(collection, status, items)

    def close(self, wait_s: float = 30.0) -> None:
        """Stop taking jobs; running ones stop after their current batch (a half-added
        file is never committed, see the catalog), then wait for the workers."""
        with self._lock:
            self._stop.set()
            workers = list(self._workers.values())
            for queue in self._queues.values():
                for job in queue:
                    job.status, job.error, job.finished = "failed", "server shut down", \
                        time.time()
                    for file in job.files:
                        file.discard()
                        if not file.finished:
                            job.set_file(file, "failed", "server shut down")
                    self._save(job)
                queue.clear()
        deadline = time.monotonic() + wait_s
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if self.log is not None and not any(w.is_alive() for w in workers):
            self.log.close()  # a worker still running would write to it once more

