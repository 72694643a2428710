from __future__ import annotations

import hashlib
import io
import os

import pytest
from PIL import Image

from mmrag.config import MediaSettings
from mmrag.ingest.base import Piece
from mmrag.ingest.media import MediaStore
from tests.factories import make_png


def test_put_bytes_content_addressed(tmp_path):
    store = MediaStore(tmp_path / "media", MediaSettings())
    data = make_png("red")
    key = store.put_bytes(data, "png")
    digest = hashlib.sha256(data).hexdigest()
    assert key == f"{digest}.png"
    path = store.path(key)
    assert path == tmp_path / "media" / digest[:2] / digest[2:4] / key
    assert path.read_bytes() == data and store.exists(key)
    mtime = path.stat().st_mtime_ns
    assert store.put_bytes(data, ".PNG") == key  # existing key: no rewrite
    assert path.stat().st_mtime_ns == mtime
    assert not list(path.parent.glob(".tmp-*"))


def test_bad_keys_rejected(tmp_path):
    store = MediaStore(tmp_path)
    for key in ("../../etc/passwd", "abc.png", "0" * 64 + ".p/ng", ""):
        with pytest.raises(ValueError):
            store.path(key)
        assert not store.exists(key)
    with pytest.raises(ValueError):
        store.put_bytes(b"x", "../x")


@pytest.mark.parametrize(("fmt", "ext", "pil"), [
    ("png", "png", "PNG"), ("jpeg", "jpg", "JPEG"), ("webp", "webp", "WEBP")])
def test_put_image_formats(tmp_path, fmt, ext, pil):
    store = MediaStore(tmp_path, MediaSettings(page_format=fmt))
    key = store.put_image(Image.new("RGB", (50, 40), "blue"))
    assert key.endswith("." + ext)
    assert Image.open(store.path(key)).format == pil
    key2 = store.put_image(Image.new("RGB", (50, 40), "blue"), fmt="png")
    assert key2.endswith(".png")


def test_resized_keeps_aspect(tmp_path):
    big = Image.new("RGB", (400, 100), "green")
    resized = MediaStore(tmp_path / "r", MediaSettings(keep="resized", max_side=100,
                                                       page_format="png"))
    key = resized.put_image(big)
    assert Image.open(resized.path(key)).size == (100, 25)
    original = MediaStore(tmp_path / "o", MediaSettings(page_format="png"))
    assert Image.open(original.path(original.put_image(big))).size == (400, 100)


def test_put_media_picks_original_or_resized(tmp_path):
    data = make_png("red", (300, 200))
    img = Image.open(io.BytesIO(data)).convert("RGB")
    piece = Piece(modality="image", image=img, media=data, media_ext="png")
    keep = MediaStore(tmp_path / "k", MediaSettings())
    key = keep.put_media(piece)
    assert keep.path(key).read_bytes() == data  # byte-exact original
    small = MediaStore(tmp_path / "s", MediaSettings(keep="resized", max_side=100,
                                                     page_format="jpeg"))
    key = small.put_media(piece)
    assert key.endswith(".jpg") and Image.open(small.path(key)).size == (100, 67)
    tiny = Piece(modality="image", image=img.resize((50, 30)), media=b"orig", media_ext="png")
    assert small.path(small.put_media(tiny)).read_bytes() == b"orig"
    page = Piece(modality="page", image=img, media_ext="png")
    assert small.put_media(page).endswith(".jpg")
    assert keep.put_media(Piece(modality="text", text="hi")) == ""


def test_remove_unreferenced(tmp_path):
    store = MediaStore(tmp_path)
    keys = [store.put_bytes(f"item {i}".encode(), "bin") for i in range(5)]
    stale = store.path(keys[0]).parent / ".tmp-crashed"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    removed = store.remove_unreferenced({keys[1], keys[3]})
    assert removed == 3
    assert sorted(store.keys()) == sorted([keys[1], keys[3]])
    assert not stale.exists()
    assert all(not store.exists(k) for k in (keys[0], keys[2], keys[4]))
    # empty shard folders are cleaned up too
    dirs = [p for p in tmp_path.rglob("*") if p.is_dir()]
    assert all(any(d.iterdir()) for d in dirs)
    assert store.remove_unreferenced(set()) == 2
    assert list(tmp_path.iterdir()) == []
