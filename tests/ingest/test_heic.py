"""HEIC/HEIF photos: sniffed by their ``ftyp`` brands, read through pillow-heif by the
image loader, stored as JPEG."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from mmrag import Index
from mmrag.config import IngestSettings
from mmrag.ingest import load, loader_for, sniff
from mmrag.types import Blob

pillow_heif = pytest.importorskip("pillow_heif", reason="the heif extra is not installed")


def make_heic(color: str = "red", size: tuple[int, int] = (96, 64)) -> bytes:
    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="HEIF", quality=90)
    return buf.getvalue()


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\0\0\0\0" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\0" * 32


def test_sniffed_by_brand():
    assert sniff(make_heic(), "photo.jpg") == "image/heic"
    assert sniff(_ftyp(b"mif1", b"mif1", b"heic"), "") == "image/heic"
    assert sniff(_ftyp(b"mif1", b"mif1"), "") == "image/heif"
    assert sniff(_ftyp(b"mif1", b"mif1", b"avif"), "") == "image/avif"
    assert sniff(_ftyp(b"isom", b"isom", b"mp41"), "") == "video/mp4"  # not stolen
    assert loader_for("image/heic") == loader_for("image/heif") == "image"


def test_loaded_as_an_image_and_stored_as_jpeg():
    data = make_heic("blue")
    blob = Blob(uri="IMG_0001.HEIC", data=data, name="IMG_0001.HEIC", mime=sniff(data))
    [piece] = list(load(blob, IngestSettings(ocr="never")))
    assert piece.modality == "image" and piece.image.size == (96, 64)
    assert piece.metadata["format"] == "HEIF"
    assert piece.media_ext == "jpg" and piece.media.startswith(b"\xff\xd8\xff")
    r, g, b = piece.image.getpixel((48, 32))
    assert b > 200 and r < 60


def test_added_to_an_index(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "harbour_sunset.heic").write_bytes(make_heic("orange"))
    with Index(tmp_path / "idx", encode={"text_encoder": "hashing"},
               ingest={"ocr": "never"}) as index:
        report = index.add(tmp_path / "docs")
        assert not report.failed, report.failed
        hit = index.search("harbour sunset", k=1)[0]
        assert hit.modality == "image" and hit.item.mime == "image/heic"
        assert hit.media_path and hit.media_path.endswith(".jpg")
