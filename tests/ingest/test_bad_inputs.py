"""A corpus of bad inputs: every one ends as a one-line IngestError/Failure or loads fine,
never a raw exception, through the same path Index.add takes (resolve → load)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load, resolve
from mmrag.types import Blob, Failure
from tests.factories import (
    make_bomb_png,
    make_broken_xref_pdf,
    make_encrypted_pdf,
    make_png,
    make_text_pdf,
    make_truncated_jpeg,
    one_line,
)


def ingest(path: Path, settings: IngestSettings) -> tuple[str, object]:
    """('ok', pieces) or ('fail', reason) as the lead's Index.add would see it."""
    [result] = list(resolve(path, settings))
    if isinstance(result, Failure):
        return "fail", one_line(result)
    assert isinstance(result, Blob)
    try:
        pieces = list(load(result, settings))
    except IngestError as err:
        return "fail", one_line(err)
    return "ok", pieces


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    files = {
        "truncated.jpg": make_truncated_jpeg(),
        "zero.png": b"",
        "really_png.jpg": make_png("red"),
        "bomb.png": make_bomb_png(),
        "locked.pdf": make_encrypted_pdf("pw"),
        "broken_xref.pdf": make_broken_xref_pdf(),
        "random.pdf": os.urandom(2048),
        "half.pdf": make_text_pdf(["some text"])[:100],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return tmp_path


def test_truncated_jpeg(corpus, settings):
    status, why = ingest(corpus / "truncated.jpg", settings)
    assert status == "fail" and "corrupt or truncated image" in why


def test_zero_byte_file(corpus, settings):
    status, why = ingest(corpus / "zero.png", settings)
    assert status == "fail" and "empty" in why


def test_png_with_jpg_extension_loads(corpus, settings):
    [blob] = list(resolve(corpus / "really_png.jpg", settings))
    assert blob.mime == "image/png"
    status, pieces = ingest(corpus / "really_png.jpg", settings)
    assert status == "ok" and pieces[0].media_ext == "png"


def test_bomb_refused_quickly(corpus, settings):
    start = time.monotonic()
    status, why = ingest(corpus / "bomb.png", settings)
    assert time.monotonic() - start < 2
    assert status == "fail" and "image too large: 30000x30000 px" in why


def test_encrypted_pdf(corpus, settings):
    status, why = ingest(corpus / "locked.pdf", settings)
    assert status == "fail" and "encrypted PDF; set ingest.pdf_password" in why
    status, pieces = ingest(corpus / "locked.pdf", IngestSettings(pdf_password="pw"))
    assert status == "ok" and "secret text" in pieces[0].text


def test_broken_xref_pdf(corpus, settings):
    status, result = ingest(corpus / "broken_xref.pdf", settings)
    if status == "ok":
        assert "broken xref but readable" in result[0].text
    else:
        assert "corrupt PDF" in result


def test_random_bytes_named_pdf(corpus, settings):
    status, why = ingest(corpus / "random.pdf", settings)
    assert status == "fail" and "unsupported file type application/octet-stream" in why


def test_truncated_pdf(corpus, settings):
    status, why = ingest(corpus / "half.pdf", settings)
    assert status == "fail" and "corrupt PDF" in why


def test_whole_corpus_as_folder(corpus, settings):
    results = list(resolve(corpus, settings))
    assert len(results) == 8
    ok = 0
    for r in results:
        if isinstance(r, Failure):
            one_line(r)
            continue
        try:
            list(load(r, settings))
            ok += 1
        except IngestError as err:
            one_line(err)
    assert ok >= 1


def test_unsupported_blob_in_load(settings):
    blob = Blob(uri="mem:x", data=b"\x00\x01", name="x", mime="application/zip")
    with pytest.raises(IngestError) as err:
        load(blob, settings)
    assert one_line(err.value) == "mem:x: unsupported file type application/zip"
