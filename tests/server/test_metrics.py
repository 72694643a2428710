"""``/metrics``: Prometheus text with latency by route template, ingest counters, sizes."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from mmrag.server import create_app
from tests.server.conftest import FAST, upload


def _samples(client) -> dict[tuple[str, frozenset], float]:
    resp = client.get("/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def _value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture()
def client(tmp_path):
    with TestClient(create_app(data=tmp_path, **FAST)) as c:
        c.put("/collections/met")
        yield c


def test_ingest_counters_and_index_size_move(client):
    before = _samples(client)
    job = upload(client, "met", {"a.md": b"# A\n\nAlpha owls.\n", "b.md": b"# B\n\nBeta.\n",
                                 "junk.pdf": b"\x00\x01" * 40})
    again = upload(client, "met", {"a.md": b"# A\n\nAlpha owls.\n"})
    after = _samples(client)
    files = "mmrag_ingest_files_total"
    assert _value(after, files, collection="met", result="added") - \
        _value(before, files, collection="met", result="added") == 2
    assert _value(after, files, collection="met", result="failed") == 1
    assert _value(after, files, collection="met", result="skipped") == 1
    assert _value(after, "mmrag_ingest_failures_total", collection="met") == 1
    assert _value(after, "mmrag_ingest_items_total", collection="met") == job["items"] > 0
    assert _value(after, "mmrag_index_items", collection="met") == job["items"]
    assert _value(after, "mmrag_index_documents", collection="met") == 2
    assert _value(after, "mmrag_jobs", status="done") == 2 and again["status"] == "done"


def test_request_latency_is_labelled_by_route_template(client):
    for q in ("owls", "newts", "kites"):
        client.get("/collections/met/search", params={"q": q})
    client.get("/collections/NOPE/search", params={"q": "x"})
    client.get("/no/such/route")
    samples = _samples(client)
    count = "mmrag_http_request_duration_seconds_count"
    route = "/collections/{collection}/search"
    assert _value(samples, count, method="GET", route=route, status="200") == 3
    assert _value(samples, count, method="GET", route=route, status="400") == 1
    assert _value(samples, count, method="GET", route="<unmatched>", status="404") == 1
    assert _value(samples, "mmrag_http_request_duration_seconds_sum", method="GET",
                  route=route, status="200") > 0
    assert not any("met/search" in str(labels) for _, labels in samples)  # no raw paths


def test_each_app_has_its_own_registry(tmp_path):
    with TestClient(create_app(data=tmp_path / "one", **FAST)) as one, \
            TestClient(create_app(data=tmp_path / "two", **FAST)) as two:
        for _ in range(3):
            one.get("/health")
        count = "mmrag_http_request_duration_seconds_count"
        labels = {"method": "GET", "route": "/health", "status": "200"}
        assert _value(_samples(one), count, **labels) == 3
        assert _value(_samples(two), count, **labels) == 0
