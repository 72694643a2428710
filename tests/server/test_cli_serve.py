"""`mmrag serve`, run as a user runs it: a process that answers HTTP until interrupted."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.server.conftest import upload

CLI = [sys.executable, "-m", "mmrag.cli", "serve"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_without_an_index_is_one_line(tmp_path):
    run = subprocess.run([*CLI, "--index", str(tmp_path / "nothing")], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 1
    assert "error: no index at" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "nothing").exists()  # serving never creates an empty index


def test_serve_with_an_unknown_generator_fails_before_listening(index_path):
    run = subprocess.run([*CLI, "--index", str(index_path), "--generator", "no-such-model",
                          "--port", str(_free_port())], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert "error: unknown generator 'no-such-model'" in run.stderr
    assert "/v1" not in run.stdout  # never announced an address


def _wait_for_health(proc: subprocess.Popen, base: str) -> httpx.Response | None:
    """``/health`` of a server process once it answers; None if it died or never did."""
    deadline = time.monotonic() + 120  # a deadline for start-up, not a timing assertion
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            return httpx.get(f"{base}/health", timeout=5)
        except httpx.TransportError:
            time.sleep(0.2)
    return None


def test_serve_answers_on_loopback_until_interrupted(index_path):
    port = _free_port()
    proc = subprocess.Popen([*CLI, "--index", str(index_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_for_health(proc, base)
        assert health is not None and health.json()["status"] == "ok", proc.poll()
        chat = httpx.post(f"{base}/v1/chat/completions", timeout=60, json={
            "model": "mmrag", "messages": [{"role": "user", "content": "zeppelin hangar"}]})
        assert "report.pdf, page 2" in chat.json()["choices"][0]["message"]["content"]
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/v1" in output and "Traceback" not in output


def test_serve_a_data_folder_of_collections(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([*CLI, "--data", str(tmp_path / "data"), "--port", str(port),
                             "--max-upload-mb", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "MMRAG_ENCODE__TEXT_ENCODER": "hashing",
                                 "MMRAG_INGEST__OCR": "never"})
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_for_health(proc, base)
        assert health is not None and health.json()["collections"] == 0, proc.poll()
        with httpx.Client(base_url=base, timeout=60) as c:
            assert c.put("/collections/notes").status_code == 201
            job = upload(c, "notes", {"owls.md": b"# Owls\n\nBarn owls hunt at night.\n"})
            assert job["added"] == ["owls.md"]
            hits = c.get("/collections/notes/search", params={"q": "barn owls"}).json()
            assert hits["hits"][0]["name"] == "owls.md"
            big = c.post("/collections/notes/items", files=[
                ("files", ("big.md", b"x" * (2 << 20), "text/plain"))])
            assert big.status_code == 413  # --max-upload-mb 1
    finally:
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, output
    assert f"http://127.0.0.1:{port}/" in output and "Traceback" not in output
    assert (tmp_path / "data" / "notes" / "mmrag.json").is_file()
