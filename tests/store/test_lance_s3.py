"""An index whose LanceDB store lives on s3:// (a moto S3 server on loopback).

The catalog stays in the writer's local index folder (SQLite cannot live on S3), so the
commit protocol is unchanged: store rows first, catalog row last. A writer killed in
between leaves rows of no catalogued document on S3; reopening that folder or `mmrag
check --repair` removes them, while another machine's folder (which never wrote) leaves
the shared store alone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmrag import Index
from mmrag.cli import app
from mmrag.store.lance import LanceStore
from tests.store.conftest import HAVE_MOTO, s3_env, s3_uri

pytestmark = pytest.mark.skipif(not HAVE_MOTO, reason="moto[server] not installed")

ROOT = Path(__file__).resolve().parents[2]
FAST = {"encode": {"text_encoder": "hashing"}, "ingest": {"ocr": "never"}}

# Adds fox.md (unless told not to), then dies by SIGKILL inside the catalog commit of
# owl.md: after the store write, before the catalog row. Keys and endpoint come from
# the AWS_* environment only, as on a real machine.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from mmrag import Index
    from mmrag.catalog import Catalog
    where, uri, docs, first = sys.argv[1:5]
    fast = {"encode": {"text_encoder": "hashing"}, "ingest": {"ocr": "never"}}
    with Index(where, store={"uri": uri}, **fast) as index:
        if first == "1":
            index.add(os.path.join(docs, "fox.md"), show_progress=False)
            print("committed", flush=True)
        Catalog.commit = lambda self, records: os.kill(os.getpid(), signal.SIGKILL)
        index.add(os.path.join(docs, "owl.md"), show_progress=False)
""")


@pytest.fixture()
def docs(tmp_path: Path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "fox.md").write_text("# Foxes\n\nThe red fox hunts voles in snowy meadows.\n")
    (d / "owl.md").write_text("# Owls\n\nBarn owls swallow mice whole at night.\n")
    return d


def _crash(where: Path, uri: str, docs: Path, s3: dict,
           first: bool) -> subprocess.CompletedProcess:
    env = {**os.environ, **s3_env(s3), "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(where), uri, str(docs),
                           "1" if first else "0"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    return proc


def _store_docs(uri: str, s3: dict) -> set[str]:
    """What the S3 store holds, read without an Index (no recovery runs)."""
    store = LanceStore(uri, storage_options=s3, spaces={}, auto_index=False)
    try:
        return {Path(s).name for _, _, s in _sources(store)}
    finally:
        store.close()


def _sources(store: LanceStore) -> list[tuple[str, str, str]]:
    tbl = store._table.search().select(["id", "doc_id", "source"]).limit(None).to_arrow()
    return list(zip(*(tbl[c].to_pylist() for c in ("id", "doc_id", "source")), strict=True))


def test_index_with_store_on_s3_adds_searches_and_reopens(tmp_path, docs, s3_server):
    uri = s3_uri("lancedb")
    store = {"uri": uri, "options": {"storage_options": s3_server}}
    with Index(tmp_path / "idx", store=store, **FAST) as index:
        index.add(docs, show_progress=False)
        assert index.search("voles", k=1, mode="bm25")[0].item.name == "fox.md"
        assert index.check().ok
        index.optimize()
    assert not any((tmp_path / "idx").rglob("*.lance"))  # the rows are on S3 only
    with Index(tmp_path / "idx", store=store, **FAST) as index:
        assert sorted(Path(r.source).name for r in index.documents()) == ["fox.md", "owl.md"]
        assert index.search("barn owls", k=1)[0].item.name == "owl.md"
    assert _store_docs(uri, s3_server) == {"fox.md", "owl.md"}


def test_crash_between_store_and_catalog_on_s3_leaves_nothing_visible(tmp_path, docs,
                                                                      s3_server):
    uri, where = s3_uri("lancedb"), tmp_path / "idx"
    proc = _crash(where, uri, docs, s3_server, first=True)
    assert "committed" in proc.stdout
    assert _store_docs(uri, s3_server) == {"fox.md", "owl.md"}  # owl: rows, no catalog
    store = {"uri": uri, "options": {"storage_options": s3_server}}
    with Index(where, store=store, **FAST) as index:  # reopening recovers
        assert [Path(r.source).name for r in index.documents()] == ["fox.md"]
        hits = index.search("barn owls swallow mice", k=5, mode="bm25")
        assert all(h.item.name != "owl.md" for h in hits)
        assert index.store.get(["x"]) == [] and index.store.count() == len(
            index.documents()[0].item_ids)
        assert index.check().ok
    assert _store_docs(uri, s3_server) == {"fox.md"}


def test_check_repair_cleans_a_crashed_first_add_on_s3(tmp_path, docs, s3_server,
                                                        monkeypatch):
    uri, where = s3_uri("lancedb"), tmp_path / "idx"
    _crash(where, uri, docs, s3_server, first=False)  # killed in its very first commit
    assert _store_docs(uri, s3_server) == {"owl.md"}
    for key, value in s3_env(s3_server).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MMRAG_ENCODE__TEXT_ENCODER", "hashing")
    monkeypatch.setenv("MMRAG_STORE__URI", uri)
    runner = CliRunner()
    fixed = runner.invoke(app, ["check", "--repair", "--index", str(where)])
    assert fixed.exit_code == 0, fixed.stdout
    assert _store_docs(uri, s3_server) == set()
    ok = runner.invoke(app, ["check", "--json", "--index", str(where)])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["ok"], ok.stdout


def test_a_folder_that_never_wrote_leaves_a_shared_store_alone(tmp_path, docs, s3_server):
    uri = s3_uri("lancedb")
    store = {"uri": uri, "options": {"storage_options": s3_server}}
    with Index(tmp_path / "writer", store=store, **FAST) as index:
        index.add(docs, show_progress=False)
    for _ in range(2):  # the second open finds its own manifest and runs recovery
        with Index(tmp_path / "reader", store=store, **FAST) as reader:
            assert reader.documents() == []
            assert reader.search("voles", k=1, mode="bm25")[0].item.name == "fox.md"
    assert _store_docs(uri, s3_server) == {"fox.md", "owl.md"}


def _s3fs_options(s3: dict) -> dict:
    return {"key": s3["aws_access_key_id"], "secret": s3["aws_secret_access_key"],
            "endpoint_url": s3["endpoint"], "client_kwargs": {"region_name": s3["region"]}}


def _objects(s3: dict, uri: str) -> list[str]:
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3", endpoint_url=s3["endpoint"], region_name=s3["region"],
                          aws_access_key_id=s3["aws_access_key_id"],
                          aws_secret_access_key=s3["aws_secret_access_key"])
    found = client.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return sorted(o["Key"].rsplit("/", 1)[-1] for o in found)


def test_media_on_s3_is_written_there_read_through_a_cache_and_collected(tmp_path, docs,
                                                                         s3_server):
    import shutil

    pytest.importorskip("s3fs", reason="s3fs (mmrag[s3]) not installed")

    from tests.factories import make_png

    png = make_png("kite", (40, 30))
    (docs / "kite.png").write_bytes(png)
    media_uri = s3_uri("media")
    settings = {"store": {"uri": s3_uri("lancedb"),
                          "options": {"storage_options": s3_server}},
                "media": {"uri": media_uri, "storage_options": _s3fs_options(s3_server)},
                **FAST}
    with Index(tmp_path / "idx", **settings) as index:
        index.add(docs, show_progress=False)
        kite = next(r for r in index.documents() if r.source.endswith("kite.png"))
        key = index.store.get(kite.item_ids)[0].media
        assert _objects(s3_server, media_uri) == [key]
        assert index.check().ok
    shutil.rmtree(tmp_path / "idx" / "media")  # a fresh cache: the bytes come from S3
    with Index(tmp_path / "idx", **settings) as index:
        item = index.store.get(kite.item_ids)[0]
        path = index.media_path(item)
        assert path is not None and path.read_bytes() == png
        index.media.put_bytes(b"nobody shows me", "bin")  # e.g. a crashed add's media
        report = index.check()
        assert [p.kind for p in report.problems] == ["unreferenced-media"]
        index.check(repair=True)
        assert index.check().ok and _objects(s3_server, media_uri) == [key]
        assert index.delete(str(docs / "kite.png")) == 1
        assert _objects(s3_server, media_uri) == []  # a delete collects its media
