"""EPUB e-books written in code: reading order, sections, pictures, metadata, bad input."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load, sniff
from mmrag.types import Blob
from tests.factories import make_png

FAST = {"encode": {"text_encoder": "hashing"}, "ingest": {"ocr": "never"}}
CONTAINER = ('<?xml version="1.0"?><container version="1.0" '
             'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
             '<rootfile full-path="OEBPS/content.opf" '
             'media-type="application/oebps-package+xml"/></rootfiles></container>')


def _xhtml(body: str, title: str = "") -> str:
    return ('<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{title}</title></head><body>{body}</body></html>")


def make_epub(*, chapters: list[tuple[str, str, str]] | None = None,
              extra: dict[str, bytes] | None = None, opf: str | None = None,
              epub2: bool = False) -> bytes:
    """A small EPUB; ``chapters`` are ``(file, toc label, body)`` in reading order. The
    manifest lists them in reverse, so reading order must come from the spine."""
    chapters = chapters if chapters is not None else [
        ("text/ch1.xhtml", "The Voyage",
         "<h1>The Voyage</h1><p>The airship left the harbour at dawn.</p>"
         "<h2>Provisions</h2><p>Forty jars of marmalade were loaded.</p>"
         "<p><img src=\"../images/map.png\" alt=\"map of the route\"/></p>"),
        ("text/ch2.xhtml", "Arrival",
         "<p>They landed on the glacier after three days.</p>"),
    ]
    items = [f'<item id="c{i}" href="{f}" media-type="application/xhtml+xml"/>'
             for i, (f, _, _) in enumerate(chapters)][::-1]
    items += ['<item id="map" href="images/map.png" media-type="image/png"/>',
              '<item id="cov" href="images/cover.png" media-type="image/png" '
              'properties="cover-image"/>']
    if epub2:
        items.append('<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>')
    else:
        items.append('<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
                     'properties="nav"/>')
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters)))
    opf = opf or (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        "<dc:title>Polar Airships</dc:title><dc:creator>Ada Byron</dc:creator>"
        "<dc:creator>Carl Nansen</dc:creator><dc:language>en</dc:language></metadata>"
        f"<manifest>{''.join(items)}</manifest><spine>{spine}</spine></package>")
    nav = _xhtml("<nav epub:type=\"toc\"><ol>" + "".join(
        f'<li><a href="{f}#top">{label}</a></li>' for f, label, _ in chapters) + "</ol></nav>")
    ncx = ('<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/"><navMap>'
           + "".join(f'<navPoint id="n{i}"><navLabel><text>{label}</text></navLabel>'
                     f'<content src="{f}"/></navPoint>'
                     for i, (f, label, _) in enumerate(chapters)) + "</navMap></ncx>")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip",
                    compress_type=zipfile.ZIP_STORED)
        zf.writestr("META-INF/container.xml", CONTAINER)
        zf.writestr("OEBPS/content.opf", opf)
        zf.writestr("OEBPS/toc.ncx" if epub2 else "OEBPS/nav.xhtml", ncx if epub2 else nav)
        for f, _, body in chapters:
            zf.writestr(f"OEBPS/{f}", _xhtml(body, title=f))
        zf.writestr("OEBPS/images/map.png", make_png("route", (80, 40)))
        zf.writestr("OEBPS/images/cover.png", make_png("navy", (30, 40)))
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def _load(data: bytes, uri: str = "book.epub") -> list:
    return list(load(Blob(uri=uri, data=data, name=uri, mime=sniff(data, uri)),
                     IngestSettings(ocr="never")))


def test_sniffed_by_its_parts():
    assert sniff(make_epub(), "book.zip") == "application/epub+zip"


@pytest.mark.parametrize("epub2", [False, True])
def test_reading_order_sections_metadata(epub2):
    pieces = _load(make_epub(epub2=epub2))
    texts = [p for p in pieces if p.modality == "text"]
    full = " ".join(p.text for p in texts)
    assert full.index("left the harbour") < full.index("landed on the glacier")  # spine order
    sections = {p.section for p in texts}
    assert "The Voyage" in sections and "The Voyage > Provisions" in sections
    # a chapter without headings is named by its table-of-contents label
    assert next(p for p in texts if "glacier" in p.text).section == "Arrival"
    meta = texts[0].metadata
    assert meta == {"title": "Polar Airships", "author": "Ada Byron; Carl Nansen",
                    "language": "en"}
    assert all(p.page == 1 for p in pieces)


def test_pictures_are_images_with_their_section():
    images = [p for p in _load(make_epub()) if p.modality == "image"]
    assert [p.metadata["part_name"] for p in images] == ["OEBPS/images/cover.png",
                                                         "OEBPS/images/map.png"]
    route = images[1]
    assert route.section == "The Voyage" and "map of the route" in route.text
    assert route.metadata["title"] == "Polar Airships" and route.metadata["embedded"]


def test_added_and_searched(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "airships.epub").write_bytes(make_epub())
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(tmp_path / "docs")
        assert not report.failed, report.failed
        hit = index.search("marmalade jars", k=1)[0]
        assert hit.item.name == "airships.epub" and hit.item.section == \
            "The Voyage > Provisions"
        assert index.search("glacier", k=1, filters={"author": "Ada Byron; Carl Nansen"})


def _bomb() -> bytes:
    """A member that claims (and holds) 64 MiB of zeros: ~64 KiB compressed."""
    return b"\0" * (64 << 20)


def test_bad_books_fail_in_one_line_and_the_run_goes_on(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a_bomb.epub").write_bytes(make_epub(extra={"OEBPS/zeros.bin": _bomb()}))
    (docs / "b_no_container.epub").write_bytes(_without(make_epub(), "META-INF/container.xml"))
    (docs / "c_drm.epub").write_bytes(make_epub(extra={"META-INF/encryption.xml": (
        b'<encryption><EncryptedData><EncryptionMethod '
        b'Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/></EncryptedData>'
        b"</encryption>")}))
    (docs / "d_fonts_only.epub").write_bytes(make_epub(extra={"META-INF/encryption.xml": (
        b'<encryption><EncryptedData><EncryptionMethod '
        b'Algorithm="http://www.idpf.org/2008/embedding"/></EncryptedData>'
        b"</encryption>")}))
    (docs / "e_good.epub").write_bytes(make_epub())
    with Index(tmp_path / "idx", **FAST) as index:
        report = index.add(docs)
        failed = {Path(f.source).name: f.reason for f in report.failed}
        assert set(failed) == {"a_bomb.epub", "b_no_container.epub", "c_drm.epub"}
        assert "zip bomb refused" in failed["a_bomb.epub"]
        assert "container.xml" in failed["b_no_container.epub"]
        assert "DRM" in failed["c_drm.epub"]
        assert all("\n" not in r for r in failed.values())
        assert {d.name for d in index.documents()} == {"d_fonts_only.epub", "e_good.epub"}


def _without(data: bytes, member: str) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as out:
        for info in src.infolist():
            if info.filename != member:
                out.writestr(info, src.read(info))
    return buf.getvalue()


def test_bomb_refused_before_decompressing(monkeypatch):
    data = make_epub(extra={"OEBPS/zeros.bin": _bomb()})
    read = []
    monkeypatch.setattr(zipfile.ZipFile, "read",
                        lambda self, name, pwd=None: read.append(name) or b"")
    with pytest.raises(IngestError, match="zip bomb refused"):
        _load(data)
    assert read == []  # refused from the directory alone
