"""Office containers are told by their parts, not their names."""

from __future__ import annotations

import io

import pytest

from mmrag.config import IngestSettings
from mmrag.ingest import containers as c
from mmrag.ingest import resolve
from mmrag.ingest.sniff import HEAD_BYTES, loader_for, sniff
from tests.ingest.office_docs import (
    make_docx,
    make_encrypted_ooxml,
    make_epub_zip,
    make_fake_doc,
    make_odt,
    make_pptx,
    make_xlsx,
    reorder_zip,
)


@pytest.mark.parametrize(("make", "mime", "loader"), [
    (make_docx, c.DOCX, "docx"), (make_pptx, c.PPTX, "pptx"), (make_xlsx, c.XLSX, "xlsx"),
    (make_odt, c.ODT, "odf"), (make_epub_zip, c.EPUB, None),
    (make_fake_doc, c.DOC, "office-legacy"), (make_encrypted_ooxml, c.ENCRYPTED,
                                              "office-encrypted"),
])
def test_parts_decide_whatever_the_name(make, mime, loader):
    data = make()
    for name in ("", "report.pdf", "photo.jpg", "notes.md", "x.docx", "x.xlsx"):
        assert sniff(data, name) == mime
    if loader:  # EPUB is routed by the e-book loader's own module
        assert loader_for(mime) == loader


def test_rtf_and_legacy_kinds():
    assert sniff(b"{\\rtf1\\ansi Hello}", "letter.txt") == c.RTF
    assert loader_for(c.RTF) == "office-legacy"
    assert c.sniff_head(c._OLE_MAGIC + b"\x00" * 10) == c.OLE2  # no directory in reach


def test_plain_zip_is_not_an_office_document():
    data = make_epub_zip().replace(b"application/epub+zip", b"application/x-whatever")
    assert sniff(data) == c.ZIP
    assert c.sniff_file(io.BytesIO(data), c.ZIP) == c.ZIP
    assert loader_for(c.ZIP) is None and loader_for(c.OLE2) is None  # "unsupported"


def test_directory_decides_when_the_head_cannot(tmp_path):
    # [Content_Types].xml written last, after 100 KB: the first 64 KiB say only "zip"
    data = reorder_zip(make_docx(), "[Content_Types].xml", filler=100_000)
    assert len(data) > HEAD_BYTES
    assert sniff(data[:HEAD_BYTES]) == c.ZIP
    assert c.sniff_file(io.BytesIO(data), c.ZIP) == c.DOCX
    path = tmp_path / "scan.bin"
    path.write_bytes(data)
    [blob] = list(resolve([str(path)], IngestSettings()))
    assert blob.mime == c.DOCX


def test_ole_kinds_from_stream_names():
    from tests.ingest.office_docs import make_ole

    assert c.sniff_file(io.BytesIO(make_ole({"PowerPoint Document": b"x"})), c.OLE2) == c.PPT
    assert c.sniff_file(io.BytesIO(make_ole({"Workbook": b"x"})), c.OLE2) == c.XLS
    assert c.sniff_file(io.BytesIO(make_ole({"__properties_version1.0": b"x"})),
                        c.OLE2) == c.MSG
    assert c.sniff_file(io.BytesIO(make_ole({"Other": b"x"})), c.OLE2) == c.OLE2


def test_streamed_zip_with_data_descriptors():
    """Writers that stream (sizes after the data, flag bit 3) are still read from the
    head: each deflated member is inflated to its end to find the next one."""
    import zipfile

    class Unseekable(io.RawIOBase):
        def __init__(self):
            self.buf = io.BytesIO()

        def writable(self):
            return True

        def write(self, b):
            return self.buf.write(b)

    out = Unseekable()
    src = zipfile.ZipFile(io.BytesIO(make_pptx()))
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ["_rels/.rels", "docProps/app.xml", "[Content_Types].xml"]:
            zf.writestr(name, src.read(name))
    data = out.buf.getvalue()
    assert zipfile.ZipFile(io.BytesIO(data)).infolist()[0].flag_bits & 0x08
    assert sniff(data) == c.PPTX
