"""Search (text, image, both; filters) and ask (SSE) over the collections API."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

from mmrag.generate import generators
from mmrag.server import create_app
from tests.factories import make_png, make_text_pdf
from tests.ingest.test_figures import FIG_AT, PageSpec, build_pdf, picture, to_top_left
from tests.server.conftest import FAST, serve_in_thread, upload

QUESTION = "What was the zeppelin hangar rebuilt in?"
BOAT = make_png("boat", (64, 48))


@pytest.fixture(scope="module", autouse=True)
def filled(http) -> dict:
    assert http.put("/collections/s").status_code == 201
    figure_pdf = build_pdf([PageSpec(
        images=[(picture("red"), *FIG_AT)],
        texts=[(100, 432, 10, "Figure 1: A red circle on white paper."),
               (72, 720, 12, "Annual report of the circle society.")])])
    job = upload(http, "s", {
        "report.pdf": make_text_pdf(["Quarterly revenue rose to 42 million euros.",
                                     "The zeppelin hangar was rebuilt in aluminium in 1931."]),
        "figure.pdf": figure_pdf,
        "sailing_boat_harbour.png": BOAT,
        "notes.md": b"# Gardening\n\nTomatoes need full sun and deep watering.\n"})
    assert not job["failed"], job
    return job


def _sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_text_search_returns_hits_with_urls(http):
    resp = http.get("/collections/s/search", params={"q": "zeppelin hangar", "k": 3})
    assert resp.status_code == 200
    body = resp.json()
    assert body["took_ms"] >= 0 and 1 <= len(body["hits"]) <= 3
    hit = body["hits"][0]
    assert (hit["name"], hit["page"], hit["modality"]) == ("report.pdf", 2, "text")
    assert "zeppelin" in hit["snippet"] and hit["score"] > 0
    assert hit["page_url"].startswith("/media/s.") and hit["page_url"].endswith(".jpg")
    assert hit["media_url"] == hit["page_url"] and hit["thumb_url"] == hit["media_url"] + \
        "?thumb=256"
    assert (hit["page_width"], hit["page_height"]) == (612.0, 792.0)
    assert hit["bbox"] is None and hit["id"].startswith(hit["doc_id"] + ":p2")
    assert "media_path" not in hit and "/tmp" not in json.dumps(body)


def test_figure_hits_carry_a_bbox_in_points_over_their_page(http):
    hits = http.get("/collections/s/search", params={
        "q": "red circle figure", "modality": "image", "path": "figure.pdf"}).json()["hits"]
    fig = hits[0]
    assert fig["modality"] == "image" and fig["name"] == "figure.pdf"
    expected = to_top_left(*FIG_AT)
    assert all(abs(a - b) < 3 for a, b in zip(fig["bbox"], expected, strict=True))
    assert (fig["page_width"], fig["page_height"]) == (612.0, 792.0)
    assert fig["page_url"] and fig["page_url"] != fig["media_url"]  # the page, not the crop
    page = http.get("/collections/s/search", params={
        "q": "annual report circle society", "modality": "page"}).json()["hits"][0]
    assert page["doc_id"] == fig["doc_id"] and page["page_url"] == fig["page_url"]


def test_filters_by_query_string(http):
    only_md = http.get("/collections/s/search", params={"q": "revenue tomatoes",
                                                         "path": "*.md"}).json()["hits"]
    assert {h["name"] for h in only_md} == {"notes.md"}
    images = http.get("/collections/s/search", params={"q": "boat", "modality": "image"}
                      ).json()["hits"]
    assert images and all(h["modality"] == "image" for h in images)
    per_doc = http.get("/collections/s/search", params={"q": "revenue zeppelin",
                                                         "group_by": "doc"}).json()["hits"]
    assert len({h["doc_id"] for h in per_doc}) == len(per_doc)
    bm25 = http.get("/collections/s/search", params={"q": "zeppelin", "mode": "bm25"})
    assert bm25.json()["hits"][0]["name"] == "report.pdf"


def test_filter_values_are_data_not_sql(http):
    for value in ("x' OR '1'='1", "') OR true --", "page'); DROP TABLE items; --"):
        resp = http.post("/collections/s/search", json={"q": "zeppelin",
                                                         "filters": {"doc_id": value}})
        assert resp.status_code == 200 and resp.json()["hits"] == []
        by_kind = http.get("/collections/s/search", params={"q": "zeppelin",
                                                             "modality": value})
        assert by_kind.status_code == 200 and by_kind.json()["hits"] == []
    assert http.get("/collections/s/search", params={"q": "zeppelin"}).json()["hits"]


def test_image_search_by_upload_and_by_base64(http):
    form = http.post("/collections/s/search", files={"image": ("q.png", BOAT, "image/png")},
                     data={"k": "2", "filters": json.dumps({"modality": "image"})})
    assert form.status_code == 200, form.text
    assert form.json()["hits"][0]["name"] == "sailing_boat_harbour.png"
    as_json = http.post("/collections/s/search", json={
        "image_base64": base64.b64encode(BOAT).decode(), "k": 2})
    assert as_json.json()["hits"][0]["name"] == "sailing_boat_harbour.png"
    both = http.post("/collections/s/search", files={"image": ("q.png", BOAT, "image/png")},
                     data={"q": "sailing boat harbour"})
    assert both.json()["hits"][0]["name"] == "sailing_boat_harbour.png"


@pytest.mark.parametrize(("kwargs", "code"), [
    ({"params": {"q": ""}}, "invalid_query"),
    ({"params": {"q": "x", "k": 0}}, "invalid_request"),
    ({"params": {"q": "x", "mode": "magic"}}, "invalid_request"),
    ({"json": {"q": "x", "filters": "modality=page"}}, "invalid_request"),
    ({"json": {"q": "x", "unknown": 1}}, "invalid_request"),
    ({"json": {"q": "x", "filters": {"modality": 5}}}, "invalid_request"),
    ({"json": {"image_base64": "not base64!"}}, "invalid_request"),
    ({"json": {"image_base64": base64.b64encode(b"not an image").decode()}}, "invalid_query"),
    ({"files": {"image": ("q.png", b"not an image", "image/png")}}, "invalid_query"),
    ({"data": {"q": "x", "filters": "{broken"}}, "invalid_request"),
])
def test_bad_searches_are_400(http, kwargs, code):
    method = http.get if "params" in kwargs else http.post
    resp = method("/collections/s/search", **kwargs)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == code


def test_ask_streams_deltas_then_done_with_citations(http):
    with http.stream("POST", "/collections/s/ask", json={"question": QUESTION}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = _sse(resp.read().decode())
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and kinds.count("delta") > 2 and "error" not in kinds
    done = events[-1][1]
    assert "".join(d["text"] for k, d in events if k == "delta") == done["text"]
    assert "aluminium" in done["text"] and done["found"] is True
    assert done["generator"] == "extractive"
    first = done["citations"][0]
    assert (first["number"], first["name"], first["page"]) == (1, "report.pdf", 2)
    assert first["page_url"].startswith("/media/s.") and first["item_id"]


def test_ask_without_streaming_returns_the_done_object(http):
    resp = http.post("/collections/s/ask", params={"stream": "false"},
                     json={"question": QUESTION, "k": 3})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    assert resp.json()["citations"][0]["name"] == "report.pdf"


def test_ask_about_an_image(http):
    resp = http.post("/collections/s/ask", params={"stream": "false"}, json={
        "question": "sailing boat harbour",
        "image_base64": "data:image/png;base64," + base64.b64encode(BOAT).decode()})
    names = {c["name"] for c in resp.json()["citations"]}
    assert "sailing_boat_harbour.png" in names


@pytest.mark.parametrize(("body", "status"), [({}, 400), ({"question": "  "}, 400),
                                              ({"question": "x", "k": 0}, 400),
                                              ({"question": 5}, 400)])
def test_bad_questions_are_refused_before_the_stream(http, body, status):
    resp = http.post("/collections/s/ask", json=body)
    assert resp.status_code == status and resp.json()["error"]["code"]


class _Failing:
    name, supports_images = "test-api-fail", False

    def stream(self, messages, *, max_tokens: int, temperature: float):
        yield "Partial "
        raise RuntimeError("the model fell over")


generators.register("test-api-fail")(lambda s: _Failing())


def test_a_failure_midway_arrives_as_an_error_event(tmp_path):
    app = create_app(data=tmp_path, generate__generator="test-api-fail", **FAST)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        c.put("/collections/f")
        upload(c, "f", {"z.md": b"# Zeppelin\n\nThe zeppelin hangar was rebuilt.\n"})
        with c.stream("POST", "/collections/f/ask", json={"question": "zeppelin"}) as resp:
            events = _sse(resp.read().decode())
    assert events[0] == ("delta", {"text": "Partial "})
    kind, data = events[-1]
    assert kind == "error" and data["code"] == "generation_failed"
    assert "fell over" in data["message"] and "Traceback" not in data["message"]


def test_searches_beyond_search_threads_wait_their_turn(tmp_path):
    """With ``server.search_threads = 2``, four concurrent searches run two at a time."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from mmrag.config import ServerSettings

    app = create_app(data=tmp_path, server=ServerSettings(search_threads=2), **FAST)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        c.put("/collections/t")
        upload(c, "t", {"a.md": b"# Owls\n\nBarn owls hunt at night.\n"})
        index = app.state.mmrag.collections.get("t").index
        real, pair, lock = index.search, threading.Barrier(2, timeout=30), threading.Lock()
        running, peak = [0], [0]

        def paired_search(*args, **kwargs):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
            try:
                pair.wait()  # a second search must be running beside this one
                return real(*args, **kwargs)
            finally:
                with lock:
                    running[0] -= 1

        index.search = paired_search
        with ThreadPoolExecutor(4) as pool:
            codes = list(pool.map(lambda q: c.get("/collections/t/search",
                                                  params={"q": q}).status_code,
                                  ["owls", "barn", "night", "hunt"]))
    assert codes == [200] * 4 and peak[0] == 2
