"""Ingest jobs outlive the server: ``GET /jobs/{id}`` answers after a restart, and a job
the restart cut short is reported failed with the reason, never forgotten."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from mmrag.server import create_app
from mmrag.server.joblog import INTERRUPTED, JOBS_FILE, JobLog, interrupted
from tests.server.conftest import FAST, serve_in_thread, upload, wait_for_job

NOTES = {f"{name}.md": f"# {name}\n\n{name} live in ponds.\n".encode()
         for name in ("newts", "frogs", "toads")}


def _row(folder: Path, job_id: str) -> tuple[str, str]:
    with sqlite3.connect(folder / JOBS_FILE) as db:
        return db.execute("SELECT status, body FROM jobs WHERE id = ?", (job_id,)).fetchone()


def _restart(folder: Path):
    """A new app over the same index folder, as after ``mmrag serve`` restarted."""
    return serve_in_thread(create_app(folder, **FAST))


def test_a_finished_job_still_answers_after_a_restart(tmp_path):
    with serve_in_thread(create_app(tmp_path / "idx", **FAST)) as url, \
            httpx.Client(base_url=url, timeout=60) as c:
        job = upload(c, "default", NOTES)
    assert job["status"] == "done"
    with _restart(tmp_path / "idx") as url, httpx.Client(base_url=url, timeout=60) as c:
        again = c.get(f"/jobs/{job['id']}")
        assert again.status_code == 200, again.text
        assert again.json() == job
        assert c.get("/jobs/" + "0" * 32).status_code == 404


def test_a_job_cut_short_by_a_restart_is_failed_with_the_reason(tmp_path):
    """The job is held inside ``Index.add`` (as a long OCR run would be) and its row on
    disk is captured then: that is what a server killed at that moment leaves behind."""
    folder = tmp_path / "idx"
    app = create_app(folder, **FAST)
    entered, gate = threading.Event(), threading.Event()
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        upload(c, "default", {"first.md": b"# Owls\n\nBarn owls hunt at night.\n"})
        index = app.state.mmrag.collections.get("default").index
        real_add = index.add

        def held_add(sources, **kwargs):
            entered.set()
            assert gate.wait(60), "the test never released the ingest"
            return real_add(sources, **kwargs)

        index.add = held_add
        try:
            resp = c.post("/collections/default/items", files=[
                ("files", (name, data, "text/plain")) for name, data in NOTES.items()])
            assert entered.wait(60), "the job never started"
            job_id = resp.json()["job_id"]
            status, body = _row(folder, job_id)  # written through while it runs
            assert status == "running"
        finally:
            gate.set()
        wait_for_job(c, f"/jobs/{job_id}")
        index.add = real_add
    with sqlite3.connect(folder / JOBS_FILE) as db:  # the process "died" mid-job
        db.execute("UPDATE jobs SET status = 'running', finished = NULL, body = ? "
                   "WHERE id = ?", (body, job_id))
    with _restart(folder) as url, httpx.Client(base_url=url, timeout=60) as c:
        resp = c.get(f"/jobs/{job_id}")
        assert resp.status_code == 200, resp.text
        job = resp.json()
    assert job["status"] == "failed" and job["error"] == INTERRUPTED
    assert job["finished"] is not None and job["done"] == job["total"] == 3
    assert {f["status"] for f in job["files"]} == {"failed"}
    assert all(f["reason"] == INTERRUPTED for f in job["files"])
    assert [f["source"] for f in job["failed"]] == list(NOTES)
    assert _row(folder, job_id)[0] == "failed"  # settled on disk, not only in the answer


def test_interrupted_keeps_what_was_committed():
    job = {"id": "j", "collection": "c", "status": "running", "finished": None,
           "created": 1.0, "error": None, "files": [
               {"name": "a.md", "status": "done", "reason": "", "doc_id": "d", "items": 2},
               {"name": "b.md", "status": "running", "reason": "", "doc_id": None,
                "items": 0},
               {"name": "c.md", "status": "queued", "reason": "", "doc_id": None,
                "items": 0}]}
    out = interrupted(job, now=5.0)
    assert out["status"] == "failed" and out["finished"] == 5.0
    assert out["added"] == ["a.md"] and out["items"] == 2
    assert [f["source"] for f in out["failed"]] == ["b.md", "c.md"]
    assert job["files"][1]["status"] == "running"  # the stored dict is not changed


def test_old_jobs_are_pruned_on_disk(tmp_path):
    log = JobLog(tmp_path)
    for i in range(5):
        log.save({"id": f"j{i}", "collection": "c", "status": "done", "created": i,
                  "finished": float(i), "files": []})
    log.save({"id": "live", "collection": "c", "status": "running", "created": 9,
              "finished": None, "files": []})
    log.prune(2)
    assert [log.load(f"j{i}") is not None for i in range(5)] == [False] * 3 + [True] * 2
    assert log.load("live") is not None  # unfinished jobs are never pruned
    log.close()


@pytest.mark.parametrize("mode", ["data", "index"])
def test_the_job_file_lives_beside_what_is_served(tmp_path, mode):
    app = create_app(data=tmp_path, **FAST) if mode == "data" else \
        create_app(tmp_path / "idx", **FAST)
    with serve_in_thread(app):
        pass
    assert (tmp_path / ("" if mode == "data" else "idx") / JOBS_FILE).is_file()
