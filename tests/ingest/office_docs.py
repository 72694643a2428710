"""Small office documents built in code for the office loader tests: DOCX, PPTX, XLSX
(python-docx, python-pptx, openpyxl), a minimal ODT/EPUB zip, and OLE2 compound files
(legacy and password-protected Office) from a tiny CFB writer."""

from __future__ import annotations

import io
import struct
import zipfile
from datetime import datetime

from tests.factories import make_png

PICTURE_WORDS = "ZEBRA 42"


def picture() -> bytes:
    """A PNG with large dark text on white, so OCR has something to read."""
    from PIL import Image, ImageDraw, ImageFont

    img = Image.new("RGB", (360, 120), "white")
    draw = ImageDraw.Draw(img)
    try:
        font = ImageFont.load_default(size=56)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    draw.text((20, 25), PICTURE_WORDS, fill="black", font=font)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_docx(pages: int = 2) -> bytes:
    """Title/author metadata; a header and footer; Heading 1 "Introduction" with text and
    a 3x3 table whose first header cell is merged across two columns; a picture; a page
    break; Heading 1 "Appendix" / Heading 2 "Glossary" on page 2; a comment."""
    import docx
    from docx.shared import Inches

    doc = docx.Document()
    props = doc.core_properties
    props.author, props.title = "Ada Lovelace", "Quarterly Report"
    props.created = datetime(2024, 3, 1, 9, 30)
    section = doc.sections[0]
    section.header.paragraphs[0].text = "ACME Confidential letterhead"
    section.footer.paragraphs[0].text = "Printed on recycled tundra paper"
    doc.add_heading("Introduction", level=1)
    para = doc.add_paragraph("The harbour authority counted vessels in every quarter.")
    doc.add_comment(para.runs, text="Check the vessel numbers", author="Grace Hopper")
    table = doc.add_table(rows=3, cols=3)
    table.cell(0, 0).merge(table.cell(0, 1)).text = "Fleet size"
    table.cell(0, 2).text = "Region"
    for r, row in enumerate([["trawlers", "114", "North"], ["ferries", "37", "South"]], 1):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    doc.add_picture(io.BytesIO(picture()), width=Inches(3))
    for n in range(2, pages + 1):
        doc.add_page_break()
        doc.add_heading("Appendix" if n == 2 else f"Annex {n}", level=1)
        doc.add_heading("Glossary", level=2)
        doc.add_paragraph(f"Marmalade cormorant appendix text on page {n}.")
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def make_pptx(hidden: int | None = None) -> bytes:
    """Slide 1 title "Welcome Deck"; slide 2 "Sales Figures" with a 3x3 table (header
    cell merged over two columns) and speaker notes; slide 3 "Lighthouse Photo" with a
    picture and a text box. ``hidden`` marks that slide hidden."""
    import pptx
    from pptx.util import Inches

    prs = pptx.Presentation()
    prs.core_properties.author = "Ada Lovelace"
    title_only = prs.slide_layouts[5]
    s1 = prs.slides.add_slide(prs.slide_layouts[0])
    s1.shapes.title.text = "Welcome Deck"
    s1.placeholders[1].text = "An opening subtitle about quinces"
    s2 = prs.slides.add_slide(title_only)
    s2.shapes.title.text = "Sales Figures"
    table = s2.shapes.add_table(3, 3, Inches(1), Inches(2), Inches(6), Inches(2)).table
    table.cell(0, 0).merge(table.cell(0, 1))
    table.cell(0, 0).text = "Product line"
    table.cell(0, 2).text = "Units"
    for r, row in enumerate([["kayaks", "red", "310"], ["canoes", "green", "95"]], 1):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    s2.notes_slide.notes_text_frame.text = "Mention the pelican pilot programme."
    s3 = prs.slides.add_slide(title_only)
    s3.shapes.title.text = "Lighthouse Photo"
    s3.shapes.add_picture(io.BytesIO(picture()), Inches(1), Inches(2), width=Inches(4))
    box = s3.shapes.add_textbox(Inches(1), Inches(5), Inches(6), Inches(1))
    box.text_frame.text = "Granite tower on the northern cape"
    if hidden:
        prs.slides[hidden - 1]._element.set("show", "0")
    buf = io.BytesIO()
    prs.save(buf)
    return buf.getvalue()


def make_xlsx(long_rows: int = 80) -> bytes:
    """Sheets in order: "Summary" (a table with merged cells, a formula, a picture),
    "Secrets" (hidden), "Ledger" (a long table: header + ``long_rows`` rows)."""
    import openpyxl
    from openpyxl.drawing.image import Image as XLImage

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Summary"
    ws.append(["Harbour", "Tonnage", "Year"])
    ws.append(["Rotterdam", 436.8, 2023])
    ws.append(["Antwerp", 271, 2023])
    ws.append(["Total", "=B2+B3", None])
    ws["A6"] = "Merged note about herring quotas"
    ws.merge_cells("A6:C6")
    ws.add_image(XLImage(io.BytesIO(picture())), "E2")
    secret = wb.create_sheet("Secrets")
    secret.append(["codeword", "walrus-omega"])
    secret.sheet_state = "hidden"
    ledger = wb.create_sheet("Ledger")
    ledger.append(["Entry", "Account", "Amount"])
    for n in range(1, long_rows + 1):
        ledger.append([f"entry-{n}", f"account {n % 7}", n * 10])
    wb.properties.creator = "Ada Lovelace"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def make_odt() -> bytes:
    """A minimal ODT: stored ``mimetype`` first, a heading, a paragraph and a table."""
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"><office:body>'
        '<office:text><text:h text:outline-level="1">Tide Tables</text:h>'
        '<text:p>High water at dawn near the estuary.</text:p>'
        '<table:table><table:table-row><table:table-cell><text:p>Port</text:p>'
        '</table:table-cell><table:table-cell><text:p>Height</text:p></table:table-cell>'
        '</table:table-row><table:table-row><table:table-cell table:number-columns-spanned='
        '"2"><text:p>Brest spring tide</text:p></table:table-cell><table:covered-table-cell/>'
        '</table:table-row></table:table></office:text></office:body>'
        '</office:document-content>')
    return _zip([("mimetype", b"application/vnd.oasis.opendocument.text", True),
                 ("content.xml", content.encode(), False)])


def make_epub_zip() -> bytes:
    """Just enough EPUB to be sniffed: the stored ``mimetype`` member first."""
    return _zip([("mimetype", b"application/epub+zip", True),
                 ("META-INF/container.xml", b"<container/>", False)])


def _zip(members: list[tuple[str, bytes, bool]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, stored in members:
            zf.writestr(name, data, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def reorder_zip(data: bytes, last: str, filler: int = 0) -> bytes:
    """The same zip with member ``last`` written last, after ``filler`` bytes of an
    incompressible member, so its first bytes no longer tell what it is."""
    import os

    src = zipfile.ZipFile(io.BytesIO(data))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
        if filler:
            out.writestr("zz/filler.bin", os.urandom(filler), zipfile.ZIP_STORED)
        for name in src.namelist():
            if name != last:
                out.writestr(name, src.read(name))
        out.writestr(last, src.read(last))
    return buf.getvalue()


def make_zip_bomb_docx(unpacked: int = 64 << 20) -> bytes:
    """A DOCX-looking zip whose document.xml inflates ``unpacked`` bytes of zeros
    (~1000x): refused from the directory, before decompression."""
    types = (b'<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/'
             b'2006/content-types"><Override PartName="/word/document.xml" ContentType="'
             b'application/vnd.openxmlformats-officedocument.wordprocessingml.document.main'
             b'+xml"/></Types>')
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("[Content_Types].xml", types)
        with zf.open("word/document.xml", "w", force_zip64=True) as fh:
            block = b"\x00" * (1 << 20)
            for _ in range(unpacked >> 20):
                fh.write(block)
    return buf.getvalue()


# --- OLE2 compound files ----------------------------------------------------------------

_FREE, _END, _FATSECT, _NOSTREAM = 0xFFFFFFFF, 0xFFFFFFFE, 0xFFFFFFFD, 0xFFFFFFFF


def make_ole(streams: dict[str, bytes]) -> bytes:
    """A version-3 compound file (512-byte sectors) holding ``streams`` (at most 3, each
    padded to 4096 bytes so none lives in the mini stream)."""
    names = list(streams)
    assert len(names) <= 3
    datas = [streams[n].ljust(4096, b"\x00") for n in names]
    fat = [_FATSECT, _END]  # sector 0: the FAT; sector 1: the directory
    starts = []
    for data in datas:
        count = len(data) // 512
        first = len(fat)
        starts.append(first)
        fat += [first + i + 1 for i in range(count - 1)] + [_END]
    fat += [_FREE] * (128 - len(fat))
    header = bytearray(512)
    header[0:8] = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
    struct.pack_into("<HHHHH", header, 24, 0x3E, 3, 0xFFFE, 9, 6)
    struct.pack_into("<IIIIIIIII", header, 40, 0, 1, 1, 0, 4096, _END, 0, _END, 0)
    struct.pack_into("<I", header, 76, 0)  # DIFAT[0]: the FAT is sector 0
    for i in range(1, 109):
        struct.pack_into("<I", header, 76 + 4 * i, _FREE)
    entries = [_dir_entry("Root Entry", 5, _NOSTREAM, 1 if names else _NOSTREAM, _END, 0)]
    for i, (name, data) in enumerate(zip(names, datas, strict=True)):
        right = i + 2 if i + 1 < len(names) else _NOSTREAM
        entries.append(_dir_entry(name, 2, right, _NOSTREAM, starts[i], len(data)))
    while len(entries) < 4:
        entries.append(b"\x00" * 64 + struct.pack("<HBBIII", 0, 0, 0, _NOSTREAM, _NOSTREAM,
                                                  _NOSTREAM) + b"\x00" * 48)
    fat_sector = struct.pack("<128I", *fat)
    return bytes(header) + fat_sector + b"".join(entries) + b"".join(datas)


def _dir_entry(name: str, kind: int, right: int, child: int, start: int, size: int) -> bytes:
    raw = name.encode("utf-16-le") + b"\x00\x00"
    entry = raw.ljust(64, b"\x00")
    entry += struct.pack("<HBBIII", len(raw), kind, 1, _NOSTREAM, right, child)
    entry += b"\x00" * 16 + b"\x00" * 4 + b"\x00" * 16  # clsid, state, times
    entry += struct.pack("<IQ", start, size)
    assert len(entry) == 128
    return entry


def make_encrypted_ooxml() -> bytes:
    """What Office writes for a password-protected DOCX/XLSX: an OLE2 file with the
    ``EncryptionInfo`` and ``EncryptedPackage`` streams."""
    return make_ole({"EncryptionInfo": b"\x04\x00\x04\x00" + b"\x40" * 60,
                     "EncryptedPackage": b"\x00" * 64})


def make_fake_doc() -> bytes:
    """An OLE2 file with a ``WordDocument`` stream (what a legacy .doc is told by)."""
    return make_ole({"WordDocument": b"\xec\xa5" + b"\x00" * 100, "1Table": b"\x00" * 64})


__all__ = ["PICTURE_WORDS", "make_docx", "make_encrypted_ooxml", "make_epub_zip",
           "make_fake_doc", "make_ole", "make_odt", "make_png", "make_pptx", "make_xlsx",
           "make_zip_bomb_docx", "needs_libreoffice", "picture", "reorder_zip"]


def _soffice() -> bool:
    import shutil

    return bool(shutil.which("soffice") or shutil.which("libreoffice"))


# LibreOffice tests skip cleanly where it is not installed (make install installs it)
needs_libreoffice = __import__("pytest").mark.skipif(
    not _soffice(), reason="LibreOffice (soffice) not installed")
