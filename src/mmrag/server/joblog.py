"""Ingest jobs on disk: ``jobs.sqlite`` beside the index (or in the ``--data`` folder).

A client that started an upload polls ``GET /jobs/{id}`` until it ends; if the server
restarts in between, an in-memory job table would answer 404 and the client could not
tell whether its files went in. So every job is written here as it moves (submitted,
started, after each batch, finished), as the JSON that ``GET /jobs/{id}`` answers.

At startup, jobs a previous process left ``queued`` or ``running`` can never finish: their
uploads lived in that process's temp folder. They are marked ``failed`` with the reason
``interrupted by server restart`` (their files that were already committed keep their
status: the catalog's crash rules make a batch all-or-nothing), never silently dropped.

Several server processes (replicas) may share one index folder and so this file. Each row
records its owner (host, boot id, pid and the pid's start time, plus a token per open log),
and start-up marks only the jobs of owners that are gone: a replica starting beside a
running one leaves that one's jobs alone. Owners on another host cannot be checked from
here; their jobs are settled when a replica on that host starts again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

__all__ = ["INTERRUPTED", "JOBS_FILE", "JobLog", "interrupted", "summary"]

JOBS_FILE = "jobs.sqlite"
INTERRUPTED = "interrupted by server restart"
_SCHEMA = """CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, collection TEXT NOT NULL, status TEXT NOT NULL,
    created REAL NOT NULL, finished REAL, body TEXT NOT NULL)"""
# Logs made before replicas lack the owner column; their rows read as of a gone owner.
_OWNER = "ALTER TABLE jobs ADD COLUMN owner TEXT NOT NULL DEFAULT ''"
_OPEN: set[str] = set()  # tokens of the job logs open in this process


class JobLog:
    """One SQLite connection shared by the request handlers and the ingest workers (under
    a lock: writes are a row each, far shorter than any batch they record)."""

    def __init__(self, folder: str | Path):
        path = Path(folder) / JOBS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                   timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._db:  # two replicas starting at once: one adds the column
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(_SCHEMA)
            if "owner" not in {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}:
                self._db.execute(_OWNER)
        self._lock = threading.Lock()
        self.owner = json.dumps(this_process(), separators=(",", ":"))
        _OPEN.add(json.loads(self.owner)["token"])

    def save(self, job: dict[str, Any]) -> None:
        """Insert or replace the row of ``job`` (a ``Job.to_dict()``), owned by this log."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (id, collection, status, created, finished, "
                "body, owner) VALUES (?, ?, ?, ?, ?, ?, ?)", (
                    job["id"], job["collection"], job["status"], job["created"],
                    job["finished"], json.dumps(job, separators=(",", ":")), self.owner))

    def load(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def unfinished(self, orphaned: bool = False) -> list[dict[str, Any]]:
        """Jobs recorded as queued or running; ``orphaned``: only those whose owning
        process is gone (they can never finish)."""
        with self._lock:
            rows = self._db.execute("SELECT body, owner FROM jobs WHERE status IN "
                                    "('queued', 'running')").fetchall()
        return [json.loads(body) for body, owner in rows
                if not orphaned or not owner_alive(json.loads(owner) if owner else {})]

    def fail_interrupted(self) -> int:
        """Mark every unfinished job of a gone owner failed (see :func:`interrupted`);
        returns how many there were. Jobs of live replicas are left to them."""
        jobs = self.unfinished(orphaned=True)
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
            _OPEN.discard(json.loads(self.owner)["token"])
            self._db.close()


def this_process() -> dict[str, Any]:
    """Who owns the jobs this process records: enough to tell later, from the same host,
    whether it is still running (a pid alone may be reused, even across reboots)."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "boot": _boot_id(), "pid": pid,
            "start": _start_time(pid), "token": uuid.uuid4().hex}


def owner_alive(owner: dict[str, Any]) -> bool:
    """Whether the process that recorded a job may still finish it. Unknown owners (rows
    of older versions) are gone; owners on another host are taken as alive."""
    if not owner.get("pid"):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    if owner.get("boot") != _boot_id():
        return False  # the machine restarted since
    pid = int(owner["pid"])
    if pid == os.getpid():  # this process: alive while that log is open (a server restarted
        return owner.get("token") in _OPEN  # in-process, as tests do, closed the old one)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    return _start_time(pid) == owner.get("start")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:  # not Linux: process start times still tell reused pids apart
        return ""


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22),
    or "" where there is no /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


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
