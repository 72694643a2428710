from __future__ import annotations

import io
import time

import pytest
from PIL import Image, ImageFile

from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load
from mmrag.ingest.images import load_image, name_words
from mmrag.types import Blob
from tests.factories import (
    make_bmp,
    make_bomb_png,
    make_gif,
    make_jpeg,
    make_multiframe_tiff,
    make_png,
    make_truncated_jpeg,
    make_webp,
    one_line,
)


def blob(data: bytes, name: str = "", mime: str = "image/png") -> Blob:
    return Blob(uri=f"mem:{name or 'x'}", data=data, name=name, mime=mime)


@pytest.mark.parametrize(("make", "fmt", "ext"), [
    (make_png, "PNG", "png"), (make_jpeg, "JPEG", "jpg"), (make_webp, "WEBP", "webp"),
    (make_bmp, "BMP", "bmp"),
])
def test_single_frame_formats(make, fmt, ext, settings):
    data = make("red", (40, 30))
    [piece] = list(load_image(blob(data), settings))
    assert piece.modality == "image" and piece.page == 1
    assert piece.image.mode == "RGB" and piece.image.size == (40, 30)
    assert piece.media == data and piece.media_ext == ext
    assert piece.metadata == {"width": 40, "height": 30, "format": fmt, "frames": 1}
    r, g, b = piece.image.getpixel((20, 15))
    assert b < 60
    assert r > 200 and g < 60


def test_gif_first_frame_only(settings):
    [piece] = list(load_image(blob(make_gif(3)), settings))
    assert piece.metadata["frames"] == 3
    r, g, b = piece.image.getpixel((5, 5))
    assert r > 200 and g < 60  # the first frame is red


def test_tiff_every_frame(settings):
    pieces = list(load_image(blob(make_multiframe_tiff(3), "scan.tiff"), settings))
    assert [p.page for p in pieces] == [1, 2, 3]
    colors = [p.image.getpixel((3, 3)) for p in pieces]
    assert colors[0][0] > 200 and colors[1][1] > 100 and colors[2][2] > 200
    for p in pieces:
        assert p.media_ext == "png"
        assert Image.open(io.BytesIO(p.media)).size == (32, 24)
        assert p.text == "scan"


def test_text_from_name_and_exif(settings):
    [piece] = list(load_image(blob(make_png(), "quarterly_revenue-chart.png"), settings))
    assert piece.text == "quarterly revenue chart"
    data = make_jpeg(description="Sales by region")
    [piece] = list(load_image(blob(data, "IMG-2024.jpg"), settings))
    assert piece.text == "IMG 2024 Sales by region"


def test_png_text_and_xmp_titles(settings):
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Title", "Harbour at dusk")
    xmp = (b'<x:xmpmeta><rdf:RDF><rdf:Description><dc:title><rdf:Alt>'
           b'<rdf:li xml:lang="x-default">Boats</rdf:li></rdf:Alt></dc:title>'
           b'</rdf:Description></rdf:RDF></x:xmpmeta>')
    info.add_itxt("XML:com.adobe.xmp", xmp.decode())
    data = make_png("red", (8, 8), pnginfo=info)
    [piece] = list(load_image(blob(data, "img_01.png"), settings))
    assert piece.text == "img 01 Boats Harbour at dusk"


def test_avif_if_supported(settings):
    from PIL import features

    if not features.check("avif"):
        pytest.skip("Pillow built without AVIF")
    buf = io.BytesIO()
    Image.new("RGB", (16, 12), "red").save(buf, format="AVIF")
    from mmrag.ingest.sniff import sniff

    assert sniff(buf.getvalue()) == "image/avif"
    [piece] = list(load(blob(buf.getvalue(), "x.avif", "image/avif"), settings))
    assert piece.image.size == (16, 12) and piece.media_ext == "avif"


def test_exif_orientation_applied(settings):
    data = make_jpeg("red", (40, 20), orientation=6)
    [piece] = list(load_image(blob(data), settings))
    assert piece.image.size == (20, 40)
    assert piece.media == data  # original bytes are kept byte-exact


def test_transparent_becomes_white(settings):
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    [piece] = list(load_image(blob(buf.getvalue()), settings))
    assert piece.image.getpixel((1, 1)) == (255, 255, 255)


def test_name_words():
    assert name_words("quarterly_revenue-chart.png") == "quarterly revenue chart"
    assert name_words("dir/sub/helloWorld.v2.jpeg") == "hello World v2"
    assert name_words("") == ""


def test_pixel_limit_checked_before_decoding(monkeypatch):
    def no_decode(self, *a, **k):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decode)
    data = make_png("red", (200, 100))
    with pytest.raises(IngestError) as err:
        list(load_image(blob(data), IngestSettings(max_image_pixels=10_000)))
    assert err.value.reason == "image too large: 200x100 px exceeds ingest.max_image_pixels"


def test_decompression_bomb_refused_fast(monkeypatch, recwarn):
    data = make_bomb_png()
    calls = []
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self, *a, **k: calls.append(1))
    start = time.monotonic()
    with pytest.raises(IngestError) as err:
        list(load(blob(data, "bomb.png"), IngestSettings()))
    assert time.monotonic() - start < 2
    assert "image too large: 30000x30000 px exceeds ingest.max_image_pixels" in \
        one_line(err.value)
    assert calls == []
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's own guard is left in place


def test_allowed_beyond_pillow_warning_limit(monkeypatch, recwarn, settings):
    # Pillow would warn (or refuse) for images over its limit; our setting decides.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    [piece] = list(load_image(blob(make_png("red", (30, 20))), settings))  # > 2x limit
    assert piece.image.size == (30, 20)
    assert Image.MAX_IMAGE_PIXELS == 100
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_truncated_and_garbage(settings):
    with pytest.raises(IngestError) as err:
        list(load_image(blob(make_truncated_jpeg(), "cut.jpg"), settings))
    assert "corrupt or truncated image" in one_line(err.value)
    with pytest.raises(IngestError) as err:
        list(load_image(blob(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40), settings))
    one_line(err.value)
