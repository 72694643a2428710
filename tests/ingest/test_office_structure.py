"""What the DOCX, PPTX, XLSX and ODT loaders find, and where, from structure alone
(``office_renders = False``: no LibreOffice involved)."""

from __future__ import annotations

import pytest

from mmrag.config import IngestSettings
from mmrag.ingest import load
from mmrag.ingest import containers as c
from mmrag.types import Blob
from tests.ingest.office_docs import (
    PICTURE_WORDS,
    make_docx,
    make_odt,
    make_pptx,
    make_xlsx,
)


@pytest.fixture
def plain() -> IngestSettings:
    return IngestSettings(office_renders=False)


def pieces_of(data: bytes, mime: str, settings: IngestSettings, name: str = "doc"):
    return list(load(Blob(uri=f"/tmp/{name}", data=data, name=name, mime=mime), settings))


def tables(pieces):
    return [p for p in pieces if p.metadata.get("table")]


def test_docx_sections_tables_pictures_and_pages(plain):
    pieces = pieces_of(make_docx(), c.DOCX, plain)
    assert not [p for p in pieces if p.modality == "page"]  # no renders asked for
    intro = next(p for p in pieces if "harbour authority" in p.text)
    assert intro.section == "Introduction" and intro.page == 1
    appendix = next(p for p in pieces if "Marmalade cormorant" in p.text)
    assert appendix.section == "Appendix > Glossary" and appendix.page == 2  # page break
    [table] = tables(pieces)
    lines = table.text.splitlines()
    assert lines[0] == "| Fleet size | Fleet size | Region |"  # merged cell resolved
    assert lines[1] == "|---|---|---|" and "| trawlers | 114 | North |" in lines
    assert table.section == "Introduction" and table.page == 1
    assert table.metadata["columns"] == 3 and table.metadata["part"] == "body"
    [image] = [p for p in pieces if p.modality == "image"]
    assert image.image is not None and image.page == 1 and image.section == "Introduction"
    assert PICTURE_WORDS in image.text and image.metadata["embedded"]
    meta = intro.metadata
    assert meta["author"] == "Ada Lovelace" and meta["title"] == "Quarterly Report"
    assert meta["created"].startswith("2024-03-01")
    header = next(p for p in pieces if p.metadata.get("part") == "header")
    footer = next(p for p in pieces if p.metadata.get("part") == "footer")
    assert "ACME Confidential" in header.text and "tundra paper" in footer.text
    comment = next(p for p in pieces if p.metadata.get("part") == "comment")
    assert "vessel numbers" in comment.text
    assert comment.metadata["comment_author"] == "Grace Hopper"


def test_long_table_repeats_its_header_in_every_chunk():
    settings = IngestSettings(office_renders=False, chunk_size=300)
    pieces = pieces_of(make_xlsx(long_rows=80), c.XLSX, settings)
    ledger = [p for p in tables(pieces) if p.metadata["sheet"] == "Ledger"]
    assert len(ledger) > 3
    for chunk in ledger:
        assert chunk.text.startswith("Sheet Ledger\n\n| Entry | Account | Amount |\n|---|")
        assert len(chunk.text) <= 300
    body = [ln for p in ledger for ln in p.text.splitlines()[4:]]
    assert len(body) == 80 and body[0] == "| entry-1 | account 1 | 10 |"  # each row once
    assert ledger[1].metadata["rows"].split("-")[0] == str(int(
        ledger[0].metadata["rows"].split("-")[1]) + 1)


def test_pptx_slides_are_pages(plain):
    pieces = pieces_of(make_pptx(), c.PPTX, plain)
    first = next(p for p in pieces if "quinces" in p.text)
    assert first.page == 1 and first.section == "Welcome Deck"
    assert first.metadata["slide_title"] == "Welcome Deck" and first.metadata["slides"] == 3
    [table] = tables(pieces)
    assert table.page == 2 and table.section == "Sales Figures"
    assert table.text.splitlines()[0] == "| Product line | Product line | Units |"
    assert "| kayaks | red | 310 |" in table.text
    notes = next(p for p in pieces if p.metadata.get("part") == "notes")
    assert notes.page == 2 and "pelican pilot" in notes.text
    [image] = [p for p in pieces if p.modality == "image"]
    assert image.page == 3 and image.section == "Lighthouse Photo"
    assert PICTURE_WORDS in image.text
    box = next(p for p in pieces if "Granite tower" in p.text)
    assert box.page == 3 and box.metadata["part"] == "slide"


def test_pptx_hidden_slide_is_marked(plain):
    pieces = pieces_of(make_pptx(hidden=2), c.PPTX, plain)
    assert all(p.metadata.get("hidden") for p in pieces if p.page == 2)
    assert not any(p.metadata.get("hidden") for p in pieces if p.page != 2)


def test_xlsx_sheets_are_pages_hidden_skipped(plain):
    pieces = pieces_of(make_xlsx(long_rows=3), c.XLSX, plain)
    summary = next(p for p in tables(pieces) if p.metadata["sheet"] == "Summary")
    assert summary.page == 1 and summary.section == "Summary"
    lines = summary.text.splitlines()
    assert "| Rotterdam | 436.8 | 2023 |" in lines  # values, not repr noise
    assert "| Merged note about herring quotas | Merged note about herring quotas | " \
           "Merged note about herring quotas |" in lines
    assert "=B2+B3" not in summary.text  # formulas are never shown, cached values are
    ledger = next(p for p in tables(pieces) if p.metadata["sheet"] == "Ledger")
    assert ledger.page == 3  # workbook order, the hidden sheet keeps its number
    assert not any("walrus" in p.text for p in pieces)
    [image] = [p for p in pieces if p.modality == "image"]
    assert image.page == 1 and PICTURE_WORDS in image.text
    assert summary.metadata["author"] == "Ada Lovelace"


def test_xlsx_hidden_sheets_by_setting():
    settings = IngestSettings(office_renders=False, office_hidden_sheets=True)
    pieces = pieces_of(make_xlsx(long_rows=3), c.XLSX, settings)
    secret = next(p for p in pieces if "walrus" in p.text)
    assert secret.page == 2 and secret.metadata["hidden"] is True


def test_odt_headings_and_spanned_table(plain):
    pieces = pieces_of(make_odt(), c.ODT, plain)
    prose = next(p for p in pieces if "estuary" in p.text)
    assert prose.section == "Tide Tables"
    [table] = tables(pieces)
    assert "| Brest spring tide | Brest spring tide |" in table.text


def test_pptx_drawn_shapes_are_named(plain):
    """A diagram of shapes is findable by what it is drawn with."""
    import io

    import pptx
    from pptx.enum.shapes import MSO_SHAPE
    from pptx.util import Inches

    prs = pptx.Presentation()
    slide = prs.slides.add_slide(prs.slide_layouts[6])
    oval = slide.shapes.add_shape(MSO_SHAPE.OVAL, Inches(1), Inches(1), Inches(1), Inches(1))
    star = slide.shapes.add_shape(MSO_SHAPE.STAR_5_POINT, Inches(3), Inches(1), Inches(1),
                                  Inches(1))
    slide.shapes.add_group_shape([oval, star])
    buf = io.BytesIO()
    prs.save(buf)
    [piece] = pieces_of(buf.getvalue(), c.PPTX, plain)
    assert piece.page == 1
    assert piece.text.endswith("Drawn shapes: oval, star 5 point; 1 group of shapes")


def test_docx_content_controls_are_read(plain):
    """Text inside a content control (w:sdt: cover pages, tables of contents)."""
    import io

    import docx
    from docx.oxml import parse_xml

    doc = docx.Document()
    doc.add_paragraph("Body text after the cover.")
    sdt = parse_xml(
        '<w:sdt xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        '<w:sdtContent><w:p><w:r><w:t>Cover page of the albatross survey</w:t></w:r></w:p>'
        '</w:sdtContent></w:sdt>')
    doc.element.body.insert(0, sdt)
    buf = io.BytesIO()
    doc.save(buf)
    pieces = pieces_of(buf.getvalue(), c.DOCX, plain)
    text = "\n".join(p.text for p in pieces)
    assert text.index("albatross survey") < text.index("Body text after")
