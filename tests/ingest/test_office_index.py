"""End to end: Index.add of a made DOCX and PPTX, search finds a table cell's words on
the right page, and the page has its render."""

from __future__ import annotations

from pathlib import Path

from mmrag import Index
from tests.ingest.office_docs import make_docx, make_pptx, needs_libreoffice

FAST = {"encode": {"text_encoder": "hashing", "image_descriptor": False},
        "ingest": {"ocr": "never"}}


def _docs(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "report.docx").write_bytes(make_docx(pages=3))
    (docs / "deck.pptx").write_bytes(make_pptx())
    return docs


def test_search_finds_table_cells_on_their_page(tmp_path):
    with Index(tmp_path / "idx", encode=FAST["encode"],
               ingest={**FAST["ingest"], "office_renders": False}) as index:
        report = index.add(_docs(tmp_path))
        assert len(report.added) == 2 and not report.failed, report.failed
        hit = index.search("canoes green", k=3)[0]
        assert hit.item.name == "deck.pptx" and hit.page == 2
        assert hit.item.metadata["table"] is True
        hit = index.search("trawlers fleet size", k=3)[0]
        assert hit.item.name == "report.docx" and hit.page == 1


@needs_libreoffice
def test_rendered_pages_are_found_and_shown(tmp_path):
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(_docs(tmp_path))
        assert len(report.added) == 2 and not report.failed, report.failed
        hit = index.search("kayaks red 310", k=3)[0]
        assert hit.item.name == "deck.pptx" and hit.page == 2
        hit = index.search("marmalade cormorant appendix text on page 3", k=3)[0]
        assert hit.item.name == "report.docx" and hit.page == 3
        rendered = index.search("Lighthouse Photo granite", k=5,
                                filters={"modality": "page"})
        assert rendered[0].item.name == "deck.pptx" and rendered[0].page == 3
        assert rendered[0].media_path and Path(rendered[0].media_path).exists()


def test_info_says_how_office_pages_are_rendered(tmp_path):
    with Index(tmp_path / "a", encode=FAST["encode"],
               ingest={"office_soffice": "/nonexistent/soffice"}) as index:
        assert index.info()["office_renders"].startswith("none: LibreOffice")
    with Index(tmp_path / "b", encode=FAST["encode"],
               ingest={"office_renders": False}) as index:
        assert index.info()["office_renders"].startswith("off")
