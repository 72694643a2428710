"""Ingest jobs on disk: ``jobs.sqlite`` beside the index (or in the ``--data`` folder).

A client that started an upload polls ``GET /jobs/{id}`` until it ends; if the server
restarts in between, an in-memory job table would answer 404 and the client could not
tell whether its files went in. So every job is written here as it moves (submitted,
started, after each batch, finished), as the JSON that ``GET /jobs/{id}`` answers.

At startup, jobs a previous process left ``queued`` or ``running`` can never finish: their
uploads lived in that process's temp folder. They are marked ``failed`` with the reason
``interrupted by server restart`` (their files that were already committed keep their
status: the catalog's crash rules make a batch all-or-nothing), never silently dropped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["INTERRUPTED", "JOBS_FILE", "JobLog", "interrupted", "summary"]

JOBS_FILE = "jobs.sqlite"
INTERRUPTED = "interrupted by server restart"
_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, collection TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, finished REAL, body TEXT NOT NULL)"""


class JobLog:
    """One SQLite connection shared by the request handlers and the ingest workers (under
    a lock: writes are a row each, far shorter than any batch they record)."""

    def __init__(self, folder: str | Path):
        path = Path(folder) / JOBS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def save(self, job: dict[str, Any]) -> None:
        """Insert or replace the row of ``job`` (a ``Job.to_dict()``)."""
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?)", (
                job["id"], job["collection"], job["status"], job["created"],
                job["finished"], json.dumps(job, separators=(",", ":"))))

    def load(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def unfinished(self) -> list[dict[str, Any]]:
        """Jobs recorded as queued or running (at startup: left by a process that died)."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM jobs WHERE status IN "
                                    "('queued', 'running')").fetchall()
        return [json.loads(r[0]) for r in rows]

    def fail_interrupted(self) -> int:
        """Mark every unfinished job failed (see :func:`interrupted`); returns how many
        there were."""
        jobs = self.unfinished()
        for job in jobs:
            self.save(interrupted(job))
        return len(jobs)

    def prune(self, keep: int) -> None:
        """Forget all but the ``keep`` most recently finished jobs."""
        with self._lock:
            self._db.execute("DELETE FROM jobs WHERE finished IS NOT NULL AND id NOT IN "
                             "(SELECT id FROM jobs WHERE finished IS NOT NULL "
                             "ORDER BY finished DESC LIMIT ?)", (keep,))

    def close(self) -> None:
        with self._lock:
            self._db.close()


def summary(files: list[dict[str, Any]], done: int) -> dict[str, Any]:
    """The fields of a job's JSON that follow from its files (``done``: how many are
    finished or past the pipeline)."""
    total = len(files)
    return {"total": total, "done": done,
            "progress": round(done / total, 4) if total else 1.0,
            "added": [f["name"] for f in files if f["status"] == "done"],
            "skipped": [f["name"] for f in files if f["status"] == "skipped"],
            "failed": [{"source": f["name"], "reason": f["reason"]} for f in files
                       if f["status"] == "failed"],
            "items": sum(f["items"] for f in files), "files": files}


def interrupted(job: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """``job`` (a stored dict) as a failed job: its unfinished files failed with the
    restart as their reason, the summary fields recomputed from the files."""
    files = [dict(f) for f in job.get("files", [])]
    for file in files:
        if file["status"] in ("queued", "running"):
            file.update(status="failed", reason=INTERRUPTED, items=0)
    return {**job, **summary(files, len(files)), "status": "failed", "error": INTERRUPTED,
            "finished": job.get("finished") or (now or time.time())}
