"""A real mmrag server on a loopback port, over an index of a few made-up documents.

The app runs under uvicorn in a background thread (as ``mmrag serve`` runs it), so tests
talk HTTP to it with the real ``openai`` client. Fake generators are registered under
``test-*`` names, the way the store tests register a fake embedder.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from mmrag import Index
from tests.factories import make_png, make_text_pdf

# Hashing text vectors and no OCR: the server is under test, not retrieval quality.
FAST = {"encode__text_encoder": "hashing", "ingest__ocr": "never"}


@contextmanager
def serve_in_thread(app) -> Iterator[str]:
    """Run ``app`` with uvicorn on a free 127.0.0.1 port; yields ``http://127.0.0.1:PORT``."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the test server failed to start")
            threading.Event().wait(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def write_docs(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.pdf").write_bytes(make_text_pdf([
        "Quarterly revenue rose to 42 million euros.",
        "The zeppelin hangar was rebuilt in aluminium in 1931.",
        "Staff turnover fell by three percent."]))
    (folder / "notes.md").write_text(
        "# Gardening\n\nTomatoes need full sun and deep watering twice a week.\n\n"
        "## Pests\n\nAphids are controlled with ladybirds and neem oil.\n")
    (folder / "sailing_boat_harbour.png").write_bytes(make_png("boat", (64, 48)))
    return folder


@pytest.fixture(scope="session")
def index_path(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("server")
    with Index(root / "idx", **FAST) as index:
        report = index.add(write_docs(root / "docs"))
        assert not report.failed, report.failed
    return root / "idx"


@pytest.fixture(scope="session")
def server_url(index_path) -> Iterator[str]:
    """The shared server (extractive generator): ``http://127.0.0.1:PORT``."""
    from mmrag.server import create_app

    with serve_in_thread(create_app(index_path)) as url:
        yield url


@pytest.fixture()
def client(server_url):
    from openai import OpenAI

    with OpenAI(base_url=f"{server_url}/v1", api_key="x", max_retries=0, timeout=60) as c:
        yield c


# -- the collections API (``create_app(data=...)``) ------------------------------------

def wait_for_job(http, status_url: str, deadline_s: float = 120) -> dict:
    """Poll a job until it is done or failed (a deadline against hangs, not a timing
    assertion)."""
    import time

    end = time.monotonic() + deadline_s
    while True:
        job = http.get(status_url).json()
        if job["status"] in ("done", "failed"):
            return job
        assert time.monotonic() < end, f"job still {job['status']}: {job}"
        time.sleep(0.05)


def upload(http, collection: str, files: dict[str, bytes], **form) -> dict:
    """POST files as multipart and wait for the job; returns the finished job."""
    parts = [("files", (name, data, "application/octet-stream"))
             for name, data in files.items()]
    resp = http.post(f"/collections/{collection}/items", files=parts, data=form)
    assert resp.status_code == 202, resp.text
    return wait_for_job(http, resp.json()["status_url"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def data_app(data_dir):
    """An app over a data folder of collections (hashing vectors, no OCR)."""
    from mmrag.server import create_app

    return create_app(data=data_dir, **FAST)


@pytest.fixture(scope="module")
def api_url(data_app) -> Iterator[str]:
    with serve_in_thread(data_app) as url:
        yield url


@pytest.fixture(scope="module")
def http(api_url):
    import httpx

    with httpx.Client(base_url=api_url, timeout=60) as c:
        yield c
