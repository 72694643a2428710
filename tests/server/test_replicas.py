"""Two `mmrag serve` processes (replicas) on one index folder, as behind a load balancer.

What one replica commits the other finds; starting a replica leaves the jobs another is
running alone (it marks only the jobs of owners that are gone); a replica killed mid-job
has its job settled as interrupted by the next replica that starts.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mmrag import Index
from mmrag.server.joblog import INTERRUPTED, JOBS_FILE, JobLog, owner_alive, this_process
from tests.server.conftest import wait_for_job, write_docs
from tests.server.test_cli_serve import _free_port, _wait_for_health

CLI = [sys.executable, "-m", "mmrag.cli", "serve"]
FAST = {"encode": {"text_encoder": "hashing"}}


def _start(index: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([*CLI, "--index", str(index), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MMRAG_INGEST__OCR": "never"})
    base = f"http://127.0.0.1:{port}"
    health = _wait_for_health(proc, base)
    assert health is not None and health.status_code == 200, proc.poll()
    return proc, base


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        return proc.communicate(timeout=60)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()[0]


def _running_job(folder: Path, owner: dict) -> None:
    """A row as a replica writes it while one of its jobs runs."""
    log = JobLog(folder)
    log.owner = json.dumps(owner)
    log.save({"id": "j-" + str(owner["pid"]), "collection": "default", "status": "running",
              "created": time.time(), "finished": None, "files": [
                  {"name": "a.md", "status": "running", "reason": "", "doc_id": None,
                   "items": 0}]})
    log.close()


@pytest.fixture()
def index(tmp_path: Path) -> Path:
    with Index(tmp_path / "idx", **FAST) as idx:
        assert not idx.add(write_docs(tmp_path / "docs"), show_progress=False).failed
    return tmp_path / "idx"


def test_two_replicas_share_one_index(index: Path):
    first, a = _start(index)
    try:
        second, b = _start(index)
        try:
            with httpx.Client(base_url=a, timeout=60) as ca, \
                    httpx.Client(base_url=b, timeout=60) as cb:
                before = cb.get("/collections/default/search", params={"q": "marzipan"})
                assert "marzipan" not in json.dumps(before.json()["hits"]).lower()
                resp = ca.post("/collections/default/items", files=[("files", (
                    "sweets.md", b"# Sweets\n\nMarzipan is made of almonds and sugar.\n",
                    "text/markdown"))])
                assert resp.status_code == 202, resp.text
                job = wait_for_job(ca, resp.json()["status_url"])
                assert job["status"] == "done", job
                # the other replica answers for the job (from the shared job log) ...
                other = cb.get(resp.json()["status_url"])
                assert other.status_code == 200 and other.json()["status"] == "done"
                # ... and finds what the first one committed
                hits = cb.get("/collections/default/search",
                              params={"q": "marzipan almonds"}).json()["hits"]
                assert hits and "sweets.md" in json.dumps(hits[0])
        finally:
            out = _stop(second)
            assert "Traceback" not in out, out
    finally:
        out = _stop(first)
        assert "Traceback" not in out, out


def test_a_starting_replica_leaves_a_live_replicas_jobs_alone(index: Path, tmp_path: Path):
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        live = {**this_process(), "pid": sleeper.pid}
        live["start"] = Path(f"/proc/{sleeper.pid}/stat").read_text().rsplit(")", 1)[1] \
            .split()[19]
        gone = {**this_process(), "pid": 2**22 + 7}  # above pid_max: never a process
        assert owner_alive(live) and not owner_alive(gone)
        _running_job(index, live)
        _running_job(index, gone)
        proc, _ = _start(index)
        _stop(proc)
    finally:
        sleeper.kill()
        sleeper.wait()
    with sqlite3.connect(index / JOBS_FILE) as db:
        rows = dict(db.execute("SELECT id, status FROM jobs").fetchall())
        body = json.loads(db.execute("SELECT body FROM jobs WHERE id = ?",
                                     (f"j-{gone['pid']}",)).fetchone()[0])
    assert rows[f"j-{sleeper.pid}"] == "running"  # its owner still ran at start-up
    assert rows[f"j-{gone['pid']}"] == "failed" and body["error"] == INTERRUPTED


def test_a_reused_pid_is_not_the_owner(tmp_path: Path):
    me = this_process()
    assert owner_alive(me) is False  # its log is not open: a restarted in-process server
    log = JobLog(tmp_path)
    try:
        assert owner_alive(json.loads(log.owner))
        other = {**json.loads(log.owner), "pid": os.getppid(), "start": "1"}
        assert not owner_alive(other)  # that pid runs, but started at another time
        assert not owner_alive({**json.loads(log.owner), "boot": "another-boot"})
        assert owner_alive({**json.loads(log.owner), "host": "elsewhere"})  # unknowable
        assert not owner_alive({})  # rows of logs made before owners were recorded
    finally:
        log.close()
