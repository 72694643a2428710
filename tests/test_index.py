"""End-to-end behaviour of `Index`: add → search → replace → delete → reopen."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from mmrag import Index
from mmrag.errors import ConfigError, QueryError
from tests.factories import make_png, make_text_pdf

FAST = {"encode": {"text_encoder": "hashing"}}


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.md").write_text(
        "# Gardening\n\nTomatoes need full sun and deep watering twice a week.\n\n"
        "## Pests\n\nAphids are controlled with ladybirds and neem oil.\n")
    (docs / "page.html").write_text(
        "<html><head><title>Volcanoes</title></head><body><h1>Volcanoes</h1>"
        "<p>Basaltic lava flows from shield volcanoes such as Mauna Loa.</p></body></html>")
    (docs / "sailing_boat_harbour.png").write_bytes(make_png("boat", (64, 48)))
    (docs / "report.pdf").write_bytes(make_text_pdf([
        "Quarterly revenue rose to 42 million euros.",
        "The zeppelin hangar was rebuilt in aluminium.",
        "Staff turnover fell by three percent."]))
    return docs


def test_add_and_search_offline_default_profile(tmp_path, corpus):
    with Index(tmp_path / "idx") as index:
        assert index.profile == "offline"
        report = index.add(corpus)
        assert len(report.added) == 4 and not report.failed, report.failed
        hits = index.search("zeppelin hangar aluminium", k=3)
        top = hits[0]
        assert top.item.name == "report.pdf" and top.page == 2
        assert top.media_path and Path(top.media_path).exists()  # the page render
        assert "zeppelin" in top.snippet.lower()
        boat = index.search("sailing boat in a harbour", k=5)
        assert any(h.modality == "image" and h.item.name == "sailing_boat_harbour.png"
                   for h in boat)
        assert index.get(top.id).doc_id == top.doc_id


def test_items_carry_metadata(tmp_path, corpus):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(corpus, metadata={"project": "demo"})
        page = index.search("zeppelin", k=1, filters={"modality": "page"})[0].item
        assert page.modality == "page" and page.page == 2 and page.mime == "application/pdf"
        assert page.metadata["project"] == "demo" and page.size > 0 and page.created > 0
        md = index.search("aphids ladybirds", k=1, group_by="item")[0].item
        assert md.section.endswith("Pests") and md.chunk_end > md.chunk_start


def test_readd_unchanged_is_noop_and_changed_file_replaces(tmp_path, corpus):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(corpus)
        count = index.store.count()
        again = index.add(corpus)
        assert len(again.skipped) == 4 and not again.added and index.store.count() == count
        (corpus / "notes.md").write_text("# Beekeeping\n\nHoney bees swarm in late spring.\n")
        changed = index.add(corpus)
        assert [Path(s).name for s in changed.replaced] == ["notes.md"]
        assert len(changed.skipped) == 3
        assert not index.search("aphids ladybirds neem", k=5, mode="bm25")
        assert index.search("honey bees swarm", k=1)[0].item.name == "notes.md"
        assert len(index.documents()) == 4


def test_delete_by_path_folder_and_doc_id(tmp_path, corpus):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(corpus)
        assert index.delete(corpus / "page.html") == 1
        assert not index.search("basaltic lava mauna", k=5, mode="bm25")
        doc_id = index.search("zeppelin", k=1)[0].doc_id
        assert index.delete(doc_id) == 1
        assert not index.search("zeppelin", k=5, mode="bm25")
        assert index.delete(corpus) == 2
        assert index.store.count() == 0 and index.documents() == []
        assert index.delete("no-such-thing") == 0


def test_same_content_twice_is_stored_once(tmp_path, corpus):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(corpus / "notes.md")
        copy = tmp_path / "copy.md"
        copy.write_bytes((corpus / "notes.md").read_bytes())
        report = index.add(copy)
        assert report.skipped == [str(copy.resolve())]
        assert len(index.documents()) == 2
        index.delete(corpus / "notes.md")  # the copy still refers to the items
        assert index.search("aphids", k=1, mode="bm25")


def test_filters_grouping_and_modes(tmp_path, corpus):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(corpus)
        pages = index.search("revenue zeppelin turnover", k=10, filters={"modality": "page"})
        assert pages and all(h.modality == "page" for h in pages)
        by_item = index.search("revenue zeppelin turnover", k=20, group_by="item")
        by_doc = index.search("revenue zeppelin turnover", k=20, group_by="doc")
        assert len({h.doc_id for h in by_doc}) == len(by_doc)
        assert len(by_item) > len(by_doc)
        only_pdf = index.search("lava tomatoes zeppelin", k=10, filters={"path": "*.pdf"})
        assert only_pdf and all(h.item.name == "report.pdf" for h in only_pdf)
        dense = index.search("zeppelin hangar", k=3, mode="dense")
        assert dense and all(set(h.scores) <= {"text:text"} for h in dense)
    with Index(tmp_path / "idx", search={"fusion": "weighted", "alpha": 0.3}, **FAST) as idx2:
        assert idx2.search("zeppelin hangar", k=1)[0].item.name == "report.pdf"


def test_bytes_base64_and_data_uri_sources(tmp_path):
    png = make_png("red", (16, 16))
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add([b"plain bytes about walruses",
                            base64.b64encode(b"base64 text about narwhals").decode(),
                            "data:image/png;base64," + base64.b64encode(png).decode()])
        assert len(report.added) == 3, report.failed
        assert index.search("walruses", k=1)[0].item.source.startswith("bytes:")
        assert index.search("narwhals", k=1, mode="bm25")


def test_reopen_keeps_profile_and_refuses_another(tmp_path, corpus):
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(corpus)
        n = index.store.count()
    with Index(tmp_path / "idx") as again:  # settings come back from the manifest
        assert again.settings.encode.text_encoder == "hashing"
        assert again.store.count() == n
        assert again.search("zeppelin", k=1)[0].item.name == "report.pdf"
    with pytest.raises(ConfigError, match="built with"):
        Index(tmp_path / "idx", encode={"text_encoder": "sentence-transformers"})


def test_offline_image_query_uses_the_descriptor_space(tmp_path, corpus):
    boat = corpus / "sailing_boat_harbour.png"
    with Index(tmp_path / "idx", **FAST) as index:
        index.add(corpus)
        hits = index.search(boat, k=3, group_by="item")
        assert hits[0].item.name == "sailing_boat_harbour.png"
        assert set(hits[0].scores) == {"visual:image"}
        # text + image: the text part goes to text/BM25, the image part to the descriptor
        both = index.search("zeppelin", image=boat, k=5)
        assert {"bm25", "visual:image"} <= {n for h in both for n in h.scores}
        with pytest.raises(QueryError):
            index.search("   ")


def test_image_query_without_any_image_space_is_a_clear_error(tmp_path, corpus):
    settings = {"encode": {"text_encoder": "hashing", "image_descriptor": False}}
    with Index(tmp_path / "idx", **settings) as index:
        index.add(corpus)
        with pytest.raises(QueryError, match="vision encoder"):
            index.search(corpus / "sailing_boat_harbour.png")
        # text + image falls back to the text part
        hits = index.search("zeppelin", image=corpus / "sailing_boat_harbour.png")
        assert hits[0].item.name == "report.pdf"


@pytest.mark.milvus
def test_same_index_code_on_milvus_lite(tmp_path, corpus):
    pytest.importorskip("milvus_lite")
    with Index(tmp_path / "idx", store={"backend": "milvus"}, **FAST) as index:
        report = index.add(corpus)
        assert len(report.added) == 4, report.failed
        assert (tmp_path / "idx" / "milvus.db").exists()
        assert index.search("zeppelin hangar", k=1)[0].item.name == "report.pdf"
        assert index.search("zeppelin", k=3, mode="bm25")[0].page == 2
        index.delete(corpus / "report.pdf")
        assert not index.search("zeppelin", k=3, mode="bm25")
    with Index(tmp_path / "idx") as again:  # backend comes back from the manifest
        assert again.settings.store.backend == "milvus"
        assert again.search("basaltic lava", k=1)[0].item.name == "page.html"


def test_duplicate_content_within_one_run_is_recorded_once(tmp_path):
    docs = tmp_path / "dup"
    docs.mkdir()
    for name in ("a.md", "b.md"):
        (docs / name).write_text("# Same\n\nidentical words about kestrels\n")
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(docs)
        assert len(report.added) == 1 and len(report.skipped) == 1
        assert {Path(r.source).name for r in index.documents()} == {"a.md", "b.md"}
        assert len({r.doc_id for r in index.documents()}) == 1
        assert index.delete(docs / "a.md") == 1
        assert index.search("kestrels", k=1, mode="bm25")  # b.md still holds it


def test_urls_and_fsspec_sources_end_to_end(tmp_path, corpus):
    import fsspec

    from tests.factories import serve_directory

    mem = fsspec.filesystem("memory")
    mem.pipe("/mmrag-test/notes/owls.md", b"# Owls\n\nBarn owls hunt by hearing alone.\n")
    with serve_directory(corpus) as base:
        with Index(tmp_path / "idx", **FAST) as index:
            blocked = index.add(f"{base}/report.pdf")  # loopback refused by default
            assert blocked.failed and "private" in blocked.failed[0].reason.lower()
        with Index(tmp_path / "idx", ingest={"allow_private_urls": True}, **FAST) as index:
            report = index.add([f"{base}/report.pdf", "memory://mmrag-test/notes/"])
            assert len(report.added) == 2, report.failed
            hit = index.search("zeppelin hangar", k=1)[0]
            assert hit.item.source == f"{base}/report.pdf" and hit.page == 2
            assert index.search("barn owls hearing", k=1)[0].item.source.startswith("memory://")


def test_pdf_figures_become_captioned_image_items(tmp_path):
    from tests.ingest.test_figures import FIG_AT, PageSpec, bar_chart, build_pdf, picture

    pdf = build_pdf([PageSpec(
        images=[(picture("red"), *FIG_AT)],
        texts=[(100, 432, 10, "Figure 1: A red circle on white paper."),
               (72, 720, 12, "Quarterly report body text."),
               (100, 130, 10, "Fig. 2. Growth of green bars over time.")],
        paths=[bar_chart(80, 150)])])
    (tmp_path / "report.pdf").write_bytes(pdf)
    with Index(tmp_path / "idx", **FAST) as index:
        assert not index.add(tmp_path / "report.pdf").failed
        hit = index.search("red circle figure", k=3, group_by="item",
                           filters={"modality": "image"})[0]
        assert hit.item.metadata["caption"] == "Figure 1: A red circle on white paper."
        assert hit.item.page == 1 and hit.item.bbox and hit.media_path
        assert Path(hit.media_path).exists()
        kinds = {h.item.metadata.get("origin") for h in index.search(
            "figure", k=10, group_by="item", filters={"modality": "image"})}
        assert {"pdf-image", "pdf-vector"} <= kinds
    with Index(tmp_path / "off", ingest={"pdf_figures": False}, **FAST) as index:
        index.add(tmp_path / "report.pdf")
        assert not index.search("red circle", k=5, filters={"modality": "image"})
