"""Adding items over HTTP: uploads and URLs become background jobs with per-file progress."""

from __future__ import annotations

import base64
import itertools
import json
import threading

import httpx
import pytest

from mmrag.config import ServerSettings
from mmrag.server import create_app
from tests.factories import make_png, make_text_pdf, serve_directory
from tests.server.conftest import FAST, serve_in_thread, upload, wait_for_job

PDF = make_text_pdf(["Quarterly revenue rose to 42 million euros.",
                     "The zeppelin hangar was rebuilt in aluminium."])


@pytest.fixture(scope="module", autouse=True)
def collection(http) -> None:
    assert http.put("/collections/jobs").status_code == 201


def test_multipart_upload_runs_as_a_job_with_per_file_results(http):
    resp = http.post("/collections/jobs/items", files=[
        ("files", ("report.pdf", PDF, "application/pdf")),
        ("files", ("boat.png", make_png("boat", (64, 48)), "image/png")),
        ("files", ("notes.md", b"# Garden\n\nTomatoes need full sun.\n", "text/markdown"))],
        data={"metadata": json.dumps({"team": "blue"})})
    assert resp.status_code == 202
    body = resp.json()
    assert body["status_url"] == f"/jobs/{body['job_id']}"
    job = wait_for_job(http, body["status_url"])
    assert job["status"] == "done" and job["collection"] == "jobs"
    assert (job["total"], job["done"], job["progress"]) == (3, 3, 1.0)
    assert sorted(job["added"]) == ["boat.png", "notes.md", "report.pdf"]
    assert job["failed"] == [] and job["items"] == sum(f["items"] for f in job["files"]) > 3
    assert all(f["status"] == "done" and len(f["doc_id"]) == 16 for f in job["files"])
    assert job["finished"] >= job["created"]
    hits = http.get("/collections/jobs/search", params={"q": "tomatoes full sun"}).json()
    assert hits["hits"][0]["name"] == "notes.md"
    by_team = http.post("/collections/jobs/search", json={
        "q": "zeppelin", "filters": {"metadata": {"team": "blue"}}}).json()["hits"]
    assert by_team and by_team[0]["name"] == "report.pdf"


def test_the_same_file_again_is_skipped(http):
    first = upload(http, "jobs", {"again.md": b"# Again\n\nSame bytes twice.\n"})
    second = upload(http, "jobs", {"again.md": b"# Again\n\nSame bytes twice.\n"})
    assert first["added"] == ["again.md"]
    assert second["skipped"] == ["again.md"] and second["files"][0]["status"] == "skipped"


def test_json_base64_upload(http):
    data = base64.b64encode(b"# Kites\n\nBox kites fly in steady wind.\n").decode()
    resp = http.post("/collections/jobs/items", json={
        "base64": [{"name": "kites.md", "data": data}], "metadata": {"source": "json"}})
    job = wait_for_job(http, resp.json()["status_url"])
    assert job["added"] == ["kites.md"]
    hits = http.get("/collections/jobs/search", params={"q": "box kites"}).json()["hits"]
    assert hits[0]["name"] == "kites.md"


def test_types_come_from_bytes_not_names(http):
    job = upload(http, "jobs", {"scan.png": make_text_pdf(["Gannets dive at sixty miles."]),
                                "photo.pdf": b"\x00\x01binary junk" * 50})
    files = {f["name"]: f for f in job["files"]}
    assert files["scan.png"]["status"] == "done" and files["scan.png"]["items"] >= 2
    assert files["photo.pdf"]["status"] == "failed"
    assert "unsupported file type" in files["photo.pdf"]["reason"]
    assert job["failed"] == [{"source": "photo.pdf",
                              "reason": files["photo.pdf"]["reason"]}]
    docs = http.get("/collections/jobs/documents").json()["documents"]
    assert next(d for d in docs if d["name"] == "scan.png")["mime"] == "application/pdf"


@pytest.mark.parametrize("name", ["../../escape.md", "/etc/passwd.md", "..\\..\\win.md",
                                  "a/b/../../../c.md"])
def test_file_names_are_display_names_only(http, data_dir, tmp_path_factory, name):
    before = {p for p in data_dir.parent.rglob("*") if p.suffix == ".md"}
    job = upload(http, "jobs", {name: f"# Doc\n\nUploaded as {name!r}.\n".encode()})
    shown = job["files"][0]["name"]
    assert "/" not in shown and "\\" not in shown and shown.endswith(".md")
    assert job["status"] == "done"
    assert {p for p in data_dir.parent.rglob("*") if p.suffix == ".md"} == before


def test_private_urls_are_refused_by_the_ssrf_guard(http, api_url):
    for url in (f"{api_url}/health", "http://169.254.169.254/latest/meta-data",
                "http://10.0.0.7/a.pdf", "http://[::1]/x.png"):
        resp = http.post("/collections/jobs/items", json={"urls": [url]})
        assert resp.status_code == 400, url
        assert resp.json()["error"]["code"] == "blocked_url"


@pytest.mark.parametrize("url", ["/etc/passwd", "file:///etc/passwd", "s3://bucket/x.pdf",
                                 "memory://x", "ftp://example.org/a.pdf"])
def test_only_http_urls_are_taken(http, url):
    resp = http.post("/collections/jobs/items", json={"urls": [url]})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "urls"


def test_url_ingestion_when_private_urls_are_allowed(tmp_path):
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "page.md").write_text("# Lighthouse\n\nThe keeper used whale oil.\n")
    app = create_app(data=tmp_path / "data", ingest__allow_private_urls=True, **FAST)
    with serve_directory(tmp_path / "site") as site, serve_in_thread(app) as url, \
            httpx.Client(base_url=url, timeout=60) as c:
        c.put("/collections/web")
        resp = c.post("/collections/web/items", json={"urls": [f"{site}/page.md"]})
        job = wait_for_job(c, resp.json()["status_url"])
        assert job["added"] == [f"{site}/page.md"] and job["files"][0]["doc_id"]
        hits = c.get("/collections/web/search", params={"q": "whale oil"}).json()["hits"]
        assert hits[0]["source"] == f"{site}/page.md"


@pytest.mark.parametrize("body", [{}, {"urls": []}, {"urls": "http://x"}, {"other": 1},
                                  {"base64": [{"name": "a", "data": "!!!"}]}, [1, 2]])
def test_bad_json_bodies_are_400(http, body):
    resp = http.post("/collections/jobs/items", json=body)
    assert resp.status_code == 400 and resp.json()["error"]["message"]


def test_other_content_types_are_415(http):
    resp = http.post("/collections/jobs/items", content=b"hello",
                     headers={"content-type": "text/plain"})
    assert resp.status_code == 415 and resp.json()["error"]["code"] == "unsupported_media_type"


def test_multipart_without_files_is_400(http):
    resp = http.post("/collections/jobs/items", files={"metadata": (None, "{}")})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "files"
    bad_meta = http.post("/collections/jobs/items", data={"metadata": "[1]"},
                         files=[("files", ("a.md", b"# A\n\nText.\n", "text/plain"))])
    assert bad_meta.status_code == 400 and bad_meta.json()["error"]["param"] == "metadata"


def test_unknown_jobs_are_404(http):
    for job_id in ("0" * 32, "../../etc/passwd", "nothex"):
        resp = http.get(f"/jobs/{job_id}")
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A server taking at most 64 KiB per file and 3 files per request."""
    app = create_app(data=tmp_path_factory.mktemp("small"), **FAST,
                     server=ServerSettings(max_upload_mb=1 / 16, max_files=3))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        c.put("/collections/s")
        yield app, c


def test_a_file_over_the_limit_is_413_and_leaves_nothing(small):
    app, c = small
    big = b"# Big\n\n" + b"word " * 40_000  # ~200 KB, over 64 KiB
    resp = c.post("/collections/s/items", files=[
        ("files", ("ok.md", b"# Ok\n\nFine.\n", "text/plain")),
        ("files", ("big.md", big, "text/plain"))])
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "too_large" and "big.md" in resp.json()["error"][
        "message"]
    assert list(app.state.mmrag.uploads.iterdir()) == []  # no temp file left behind
    assert c.get("/collections/s/documents").json()["documents"] == []
    as_json = c.post("/collections/s/items", json={
        "base64": [{"name": "big.md", "data": base64.b64encode(big).decode()}]})
    assert as_json.status_code == 413 and as_json.json()["error"]["code"] == "too_large"
    image = c.post("/collections/s/search", files={"image": ("q.png", big, "image/png")})
    assert image.status_code == 413


def test_too_many_files_is_413(small):
    _, c = small
    files = [("files", (f"{i}.md", b"# N\n\nText.\n", "text/plain")) for i in range(4)]
    resp = c.post("/collections/s/items", files=files)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "too_many_files"
    as_json = c.post("/collections/s/items", json={"urls": [f"https://example.org/{i}"
                                                            for i in range(4)]})
    assert as_json.status_code == 413 and as_json.json()["error"]["code"] == "too_many_files"


def test_searches_are_answered_while_an_ingest_runs(http, data_app):
    """A job held inside Index.add (as a long OCR run would be) does not stop searches,
    and its progress moves file by file within a batch."""
    http.put("/collections/busy")
    upload(http, "busy", {"first.md": b"# Owls\n\nBarn owls hunt at night.\n"})
    index = data_app.state.mmrag.collections.get("busy").index
    entered, gate = threading.Event(), threading.Event()
    real_add = index.add

    def slow_add(sources, **kwargs):
        pulled = iter(sources)
        head = [next(pulled), next(pulled)]  # the pipeline has moved past the first file
        entered.set()
        assert gate.wait(60), "the test never released the ingest"
        return real_add(itertools.chain(head, pulled), **kwargs)

    index.add = slow_add
    try:
        resp = http.post("/collections/busy/items", files=[
            ("files", (f"{name}.md", f"# {name}\n\n{name} live in ponds.\n".encode(),
                       "text/plain")) for name in ("newts", "frogs", "toads")])
        assert entered.wait(60), "the job never started"
        running = http.get(resp.json()["status_url"]).json()
        assert running["status"] == "running" and running["finished"] is None
        assert (running["done"], running["total"]) == (1, 3)
        assert round(running["progress"], 2) == 0.33
        assert [f["status"] for f in running["files"]] == ["running", "running", "queued"]
        found = http.get("/collections/busy/search", params={"q": "barn owls"})
        assert found.status_code == 200 and found.json()["hits"][0]["name"] == "first.md"
        assert http.get(resp.json()["status_url"]).json()["status"] == "running"
    finally:
        gate.set()
    job = wait_for_job(http, resp.json()["status_url"])
    index.add = real_add
    assert job["status"] == "done" and job["added"] == ["newts.md", "frogs.md", "toads.md"]
    assert all(f["items"] > 0 for f in job["files"])
    hits = http.get("/collections/busy/search", params={"q": "toads ponds"}).json()["hits"]
    assert hits[0]["name"] == "toads.md"


def test_files_are_added_in_batches_with_their_own_results(http):
    same = b"# Twin\n\nIdentical bytes under two names.\n"
    files = {f"n{i:02d}.md": f"# Note {i}\n\nNote number {i} about herons.\n".encode()
             for i in range(20)}  # more than one batch (ingest.batch_size = 16)
    job = upload(http, "jobs", {**files, "twin-a.md": same, "twin-b.md": same,
                                "empty.md": b""})
    status = {f["name"]: f["status"] for f in job["files"]}
    assert all(status[name] == "done" for name in files)
    assert status["twin-a.md"] == "done" and status["twin-b.md"] == "skipped"
    assert status["empty.md"] == "failed" and job["status"] == "done"
    twin = next(f for f in job["files"] if f["name"] == "twin-b.md")
    assert "twin-a.md" in twin["reason"]
    assert job["items"] == sum(f["items"] for f in job["files"]) >= 20


def test_an_uploaded_video_streams_from_its_file(http, monkeypatch):
    """The upload stays on disk and PyAV reads it there: ``Blob.data`` (all bytes in
    memory) is never touched for it."""
    from mmrag.types import Blob
    from tests.ingest.test_video import BLUE, RED, make_video

    reads: list[str] = []
    real = Blob.data
    monkeypatch.setattr(Blob, "data", property(
        lambda blob: reads.append(blob.uri) or real.fget(blob), real.fset))
    job = upload(http, "jobs", {"clip.mp4": make_video([(RED, 3.0), (BLUE, 3.0)])})
    assert job["added"] == ["clip.mp4"] and job["files"][0]["items"] >= 2
    assert reads == []
