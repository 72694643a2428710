"""Bad office input: one line naming the input, the run goes on, nothing half-added."""

from __future__ import annotations

import io
import os
import stat
import time
import zipfile

import pytest

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import containers as c
from mmrag.ingest import load
from mmrag.types import Blob
from tests.ingest.office_docs import (
    make_docx,
    make_encrypted_ooxml,
    make_fake_doc,
    make_zip_bomb_docx,
    needs_libreoffice,
)

FAST = {"encode": {"text_encoder": "hashing", "image_descriptor": False},
        "ingest": {"ocr": "never", "office_renders": False}}


def load_all(data: bytes, mime: str, settings: IngestSettings | None = None):
    settings = settings or IngestSettings(office_renders=False)
    return list(load(Blob(uri="/in/doc.docx", data=data, mime=mime), settings))


def test_truncated_docx_is_one_line():
    data = make_docx()[:20_000]
    with pytest.raises(IngestError) as err:
        load_all(data, c.DOCX)
    assert str(err.value).startswith("/in/doc.docx: corrupt")
    assert "\n" not in str(err.value)


def test_malformed_ooxml_part():
    buf = io.BytesIO()
    with zipfile.ZipFile(make_docx_io()) as src, zipfile.ZipFile(buf, "w") as out:
        for name in src.namelist():
            body = b"<w:document><unclosed" if name == "word/document.xml" else src.read(name)
            out.writestr(name, body)
    with pytest.raises(IngestError, match="corrupt DOCX"):
        load_all(buf.getvalue(), c.DOCX)


def make_docx_io() -> io.BytesIO:
    return io.BytesIO(make_docx())


def test_zip_bomb_refused_from_the_directory():
    data = make_zip_bomb_docx(64 << 20)
    assert len(data) < 200_000
    t0 = time.perf_counter()
    with pytest.raises(IngestError, match="zip bomb refused") as err:
        load_all(data, c.DOCX)
    assert time.perf_counter() - t0 < 2  # nothing was inflated
    assert "office_max_zip_ratio" in str(err.value)
    small = IngestSettings(office_renders=False, office_max_unzipped_bytes=1 << 20,
                           office_max_zip_ratio=1e9)
    with pytest.raises(IngestError, match="unpacks to more than"):
        load_all(data, c.DOCX, small)


def test_encrypted_ooxml_names_the_problem():
    with pytest.raises(IngestError, match="password-protected"):
        load_all(make_encrypted_ooxml(), c.ENCRYPTED)


def test_legacy_without_libreoffice_fails_in_one_line():
    settings = IngestSettings(office_soffice="/nonexistent/soffice")
    with pytest.raises(IngestError, match=r"legacy \.doc needs LibreOffice"):
        load_all(make_fake_doc(), c.DOC, settings)


@pytest.fixture
def hanging_soffice(tmp_path):
    script = tmp_path / "soffice"
    script.write_text("#!/bin/sh\nsleep 30\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_libreoffice_hang_times_out(hanging_soffice):
    settings = IngestSettings(office_soffice=hanging_soffice, office_timeout=1)
    t0 = time.perf_counter()
    with pytest.raises(IngestError, match="timed out after 1 s"):
        load_all(make_docx(), c.DOCX, settings)
    assert time.perf_counter() - t0 < 10


def test_index_add_goes_on_and_adds_nothing_half(tmp_path, hanging_soffice):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "bomb.docx").write_bytes(make_zip_bomb_docx(64 << 20))
    (docs / "locked.xlsx").write_bytes(make_encrypted_ooxml())
    (docs / "cut.docx").write_bytes(make_docx()[:20_000])
    (docs / "hang.docx").write_bytes(make_docx(pages=3))
    (docs / "good.docx").write_bytes(make_docx())
    ingest = {**FAST["ingest"], "office_renders": True, "office_soffice": hanging_soffice,
              "office_timeout": 1}
    with Index(tmp_path / "idx", encode=FAST["encode"], ingest=ingest) as index:
        report = index.add(docs)
        failed = {os.path.basename(f.source): f.reason for f in report.failed}
        assert set(failed) == {"bomb.docx", "locked.xlsx", "cut.docx", "hang.docx",
                               "good.docx"}  # the fake soffice hangs on every file
        assert "zip bomb" in failed["bomb.docx"]
        assert "password-protected" in failed["locked.xlsx"]
        assert "timed out" in failed["hang.docx"]
        assert all("\n" not in r for r in failed.values())
        assert not report.added and index.search("trawlers", k=3) == []
    with Index(tmp_path / "idx", encode=FAST["encode"], ingest=FAST["ingest"]) as index:
        report = index.add(docs)  # without renders the good one goes in, the rest fail
        assert [os.path.basename(a) for a in report.added] == ["good.docx", "hang.docx"]
        assert len(report.failed) == 3


@needs_libreoffice
def test_damaged_legacy_file_fails_with_libreoffice():
    with pytest.raises(IngestError, match=r"no content found in the \.doc file"):
        load_all(make_fake_doc(), c.DOC, IngestSettings(office_timeout=60))
