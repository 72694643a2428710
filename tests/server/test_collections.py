"""Collections and documents over real HTTP: create, list, delete; ids that are checked."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from mmrag.server import create_app
from tests.factories import make_png, make_text_pdf
from tests.server.conftest import upload


@pytest.fixture(scope="module")
def filled(http) -> dict:
    """Collection ``lib`` with a two-page PDF and a picture; returns the finished job."""
    assert http.put("/collections/lib").status_code == 201
    job = upload(http, "lib", {
        "report.pdf": make_text_pdf(["Quarterly revenue rose to 42 million euros.",
                                     "The zeppelin hangar was rebuilt in aluminium."]),
        "boat.png": make_png("boat", (64, 48))})
    assert job["status"] == "done" and not job["failed"], job
    return job


def test_put_creates_once_then_reports_it(http, data_dir):
    first = http.put("/collections/fresh", json={"profile": "offline"})
    assert first.status_code == 201
    body = first.json()
    assert {k: body[k] for k in ("name", "items", "documents", "profile")} == {
        "name": "fresh", "items": 0, "documents": 0, "profile": "offline"}
    assert body["privacy"]["strip_exif"] and not body["privacy"]["mask_pii"]
    again = http.put("/collections/fresh")
    assert again.status_code == 200 and again.json()["name"] == "fresh"
    assert (data_dir / "fresh" / "mmrag.json").is_file()
    clash = http.put("/collections/fresh", json={"profile": "clip"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "conflict"
    unknown = http.put("/collections/odd", json={"profile": "no-such-profile"})
    assert unknown.status_code == 400 and unknown.json()["error"]["message"]
    assert not (data_dir / "odd").exists()


def test_privacy_is_set_per_collection_and_applied_to_uploads(http, filled):
    made = http.put("/collections/private", json={"privacy": {"mask_pii": True}})
    assert made.status_code == 201 and made.json()["privacy"]["mask_pii"] is True
    job = upload(http, "private", {"note.txt": b"Call me, mail carol@example.com today."})
    assert job["status"] == "done" and not job["failed"], job
    hits = http.get("/collections/private/search", params={"q": "call mail today"}).json()
    assert hits["hits"] and all("carol@example.com" not in h["snippet"] for h in hits["hits"])
    # other collections keep the server's defaults
    assert http.get("/collections/lib").json()["privacy"]["mask_pii"] is False


def test_list_counts_items_and_documents(http, filled):
    listed = {c["name"]: c for c in http.get("/collections").json()["collections"]}
    assert listed["lib"]["documents"] == 2 and listed["lib"]["items"] == filled["items"]
    assert listed["lib"]["profile"] == "offline"
    assert http.get("/collections/lib").json() == listed["lib"]


def test_documents_list_and_delete_by_doc_id(http):
    http.put("/collections/docdel")
    job = upload(http, "docdel", {"a.md": b"# Alpha\n\nAlpha text about owls.\n",
                                  "b.md": b"# Beta\n\nBeta text about newts.\n"})
    docs = http.get("/collections/docdel/documents").json()["documents"]
    assert sorted(d["name"] for d in docs) == ["a.md", "b.md"]
    doc_a = next(d["doc_id"] for d in docs if d["name"] == "a.md")
    assert doc_a == next(f["doc_id"] for f in job["files"] if f["name"] == "a.md")
    resp = http.delete(f"/collections/docdel/documents/{doc_a}")
    assert resp.status_code == 200 and resp.json() == {"deleted": 1}
    left = http.get("/collections/docdel/documents").json()["documents"]
    assert [d["name"] for d in left] == ["b.md"]
    hits = http.get("/collections/docdel/search", params={"q": "owls"}).json()["hits"]
    assert all(h["doc_id"] != doc_a for h in hits)
    again = http.delete(f"/collections/docdel/documents/{doc_a}")
    assert again.status_code == 404 and again.json()["error"]["code"] == "not_found"


def test_deleting_an_item_deletes_its_document(http, filled):
    hit = http.get("/collections/lib/search", params={"q": "zeppelin hangar"}).json()["hits"][0]
    assert hit["name"] == "report.pdf"
    resp = http.delete(f"/collections/lib/items/{hit['id']}")
    assert resp.json() == {"deleted": 1, "doc_id": hit["doc_id"]}
    names = [d["name"] for d in http.get("/collections/lib/documents").json()["documents"]]
    assert names == ["boat.png"]
    gone = http.delete(f"/collections/lib/items/{hit['id']}")
    assert gone.status_code == 404


def test_delete_collection_removes_its_folder(http, data_dir):
    assert http.put("/collections/doomed").status_code == 201
    upload(http, "doomed", {"n.md": b"# Note\n\nTo be deleted.\n"})
    resp = http.delete("/collections/doomed")
    assert resp.status_code == 200 and resp.json() == {"name": "doomed", "deleted": True}
    assert not (data_dir / "doomed").exists()
    assert http.get("/collections/doomed/search", params={"q": "note"}).status_code == 404
    assert "doomed" not in [c["name"] for c in http.get("/collections").json()["collections"]]


@pytest.mark.parametrize("name", ["UPPER", "has.dot", "-lead", "a" * 65, "%2e%2e", "_x",
                                  "sp ace", "semi;colon"])
def test_invalid_collection_names_are_400(http, name):
    resp = http.put(f"/collections/{name}")
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "invalid_collection"


@pytest.mark.parametrize("path", [
    "/collections/../keys.json", "/collections/..%2F..%2Fetc/search?q=x",
    "/collections/%2e%2e/documents", "/collections/lib/documents/..%2F..%2Fcatalog.sqlite",
    "/collections/lib/documents/%2Fetc%2Fpasswd", "/collections/lib/items/..%2Fx",
    "/collections/lib/documents/0123456789abcdef%00",
])
def test_traversal_attempts_never_reach_files(http, filled, data_dir, path):
    before = sorted(p.name for p in data_dir.iterdir())
    resp = http.delete(path) if "/documents/" in path or "/items/" in path else http.get(path)
    assert resp.status_code in (400, 404, 405), (path, resp.status_code, resp.text)
    assert "error" in resp.json() and resp.json()["error"]["message"]
    assert sorted(p.name for p in data_dir.iterdir()) == before


def test_bad_ids_are_400_with_a_stable_code(http, filled):
    bad_doc = http.delete("/collections/lib/documents/not-a-doc-id")
    assert bad_doc.status_code == 400 and bad_doc.json()["error"]["code"] == "invalid_id"
    bad_item = http.delete("/collections/lib/items/abc")
    assert bad_item.status_code == 400 and bad_item.json()["error"]["code"] == "invalid_id"


def test_missing_collection_is_404(http):
    for resp in (http.get("/collections/nowhere/search", params={"q": "x"}),
                 http.get("/collections/nowhere/documents"),
                 http.post("/collections/nowhere/items", json={"urls": ["https://a.b/c"]})):
        assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"


def test_an_index_server_serves_its_index_as_default(index_path):
    with TestClient(create_app(index_path)) as c:
        listed = c.get("/collections").json()["collections"]
        assert [x["name"] for x in listed] == ["default"] and listed[0]["documents"] == 3
        hits = c.get("/collections/default/search", params={"q": "zeppelin"}).json()["hits"]
        assert hits[0]["name"] == "report.pdf"
        refused = c.put("/collections/other")
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "not_supported"
        kept = c.delete("/collections/default")
        assert kept.status_code == 409 and kept.json()["error"]["code"] == "conflict"
        assert c.get("/collections/other/documents").status_code == 404


def test_health_of_a_data_server(http):
    data = http.get("/health").json()
    assert data["status"] == "ok" and data["auth"] is False
    assert data["collections"] >= 1 and "index" not in data


def test_errors_always_carry_code_and_message(api_url):
    for resp in (httpx.get(f"{api_url}/nope"), httpx.put(f"{api_url}/collections/Bad"),
                 httpx.post(f"{api_url}/collections/lib/search", content=b"{",
                            headers={"content-type": "application/json"})):
        error = resp.json()["error"]
        assert error["code"] and error["message"] and "\n" not in error["message"]
