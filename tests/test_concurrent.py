"""Concurrent use: two `mmrag add` processes and `mmrag serve` on one index at once.

The adds overlap (both add a shared folder) and commit in small groups, so their
commits interleave with each other, with the other's recovery on open and with the
server's searches. Afterwards every file is catalogued once, each item is stored once,
the check is clean, and the server saw the new documents without a restart.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx

from mmrag import Index
from tests.faults import Launcher

N = 24


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notes(folder: Path, prefix: str, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        body = " ".join(f"line {j} of {prefix} note {i}." for j in range(120))
        (folder / f"{prefix}{i:02d}.md").write_text(f"# {prefix} {i}\n\n{prefix}{i}tok {body}\n")
    return folder


def _wait_ready(base: str, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("the server did not come up")


class _Searcher(threading.Thread):
    """Searches the server without pause; records every status."""

    def __init__(self, base: str):
        super().__init__(daemon=True)
        self.base, self.stop, self.statuses = base, threading.Event(), []

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                q = f"{'ab'[i % 2]}{i // 2 % N}tok"
                r = client.get("/collections/default/search", params={"q": q, "k": 3})
                self.statuses.append(r.status_code)
                i += 1


def test_two_adds_and_a_server_on_one_index(tmp_path):
    a = _notes(tmp_path / "a", "a", N)
    b = _notes(tmp_path / "b", "b", N)
    shared = _notes(tmp_path / "shared", "s", N // 2)
    where = tmp_path / "idx"
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"MMRAG_INGEST__BATCH_SIZE": "2"}
    with Launcher(tmp_path, env) as launcher:
        code, output = launcher.run("add", str(shared / "s00.md"), "--index", str(where))
        assert code == 0, output
        server, _ = launcher.start("serve", "--index", str(where), "--port", str(port))
        try:
            _wait_ready(base, time.monotonic() + 60)
            searcher = _Searcher(base)
            searcher.start()
            first = launcher.start("add", str(a), str(shared), "--index", str(where))[0]
            second = launcher.start("add", str(shared), str(b), "--index", str(where))[0]
            assert launcher.wait(first) == 0 and launcher.wait(second) == 0
            searcher.stop.set()
            searcher.join(60)
            for name in ("a05", "b17", "s09"):  # committed by other processes, seen live
                hits = httpx.get(f"{base}/collections/default/search", timeout=30,
                                 params={"q": f"{name[0]}{int(name[1:])}tok", "k": 1})
                assert hits.json()["hits"][0]["name"] == f"{name}.md"
        finally:
            os.kill(server, signal.SIGINT)
            launcher.wait(server)
    assert len(searcher.statuses) >= 3 and set(searcher.statuses) == {200}

    files = sorted(str(p) for d in (a, b, shared) for p in d.iterdir())
    with Index(where) as index:
        report = index.check()
        assert report.ok, [p.line() for p in report.problems]
        records = index.documents()
        assert sorted(r.source for r in records) == files  # each once, none lost
        ids = [i for r in records for i in r.item_ids]
        assert len(ids) == len(set(ids)) == index.store.count()  # none stored twice
        for name in ("a07", "b11", "s03"):
            hit = index.search(f"{name[0]}{int(name[1:])}tok", k=1, mode="bm25")[0]
            assert hit.item.name == f"{name}.md"
