"""Large inputs (issue #3): huge images are downscaled with bounded memory, long PDFs
stream with flat memory.

Peak memory of an image load is measured in a child process (``VmHWM`` after the
imports and the file read, against the peak after the load), so the fixture's own
build and pytest's heap don't blur it. Linux only, like the CI.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from PIL import Image, ImageFile

from mmrag.config import IngestSettings
from mmrag.errors import IngestError
from mmrag.ingest import load
from mmrag.ingest.images import load_image
from mmrag.types import Blob
from tests.factories import make_bomb_png, make_large_jpeg, make_large_png, make_text_pdf

MB = 2**20

_PROBE = textwrap.dedent("""
    import json, sys, time
    from mmrag.config import IngestSettings
    from mmrag.ingest.images import load_image
    from mmrag.types import Blob

    def status(field):
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024

    def peak():
        # VmHWM, not ru_maxrss: the latter keeps the parent's RSS from before the exec.
        return status("VmHWM:")

    data = open(sys.argv[1], "rb").read()
    blob = Blob(uri="mem:big", data=data, name="big", mime="image/x")
    settings = IngestSettings(ocr="never")
    base = peak()
    start = time.perf_counter()
    pieces = load_image(blob, settings)
    piece = next(pieces)  # the generator is suspended here while a consumer encodes
    seconds = time.perf_counter() - start
    held = status("VmRSS:") - base
    assert next(pieces, None) is None
    print(json.dumps({"seconds": seconds, "base": base, "held": held,
                      "peak": peak(), "size": piece.image.size, "meta": piece.metadata,
                      "left": piece.image.getpixel((10, 10)),
                      "right": piece.image.getpixel((piece.image.width - 10, 10))}))
""")


def _measure(data: bytes, tmp_path: Path) -> dict:
    """Load ``data`` in a fresh interpreter; seconds, peak RSS growth and the piece."""
    path = tmp_path / "big.img"
    path.write_bytes(data)
    out = subprocess.run([sys.executable, "-c", _PROBE, str(path)], capture_output=True,
                         text=True, timeout=300, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["growth"] = result["peak"] - result["base"]
    print(f"{len(data)} B: {result['seconds']:.2f} s, peak {result['peak'] / MB:.0f} MB, "
          f"growth {result['growth'] / MB:.0f} MB, held at yield {result['held'] / MB:.0f} MB")
    return result


def _check_piece(result: dict, side: int, original: int) -> None:
    assert result["size"] == [side, side]
    assert result["meta"]["original_width"] == original
    assert result["meta"]["original_height"] == original
    assert result["meta"]["width"] == side and result["meta"]["height"] == side
    lr, lg, lb = result["left"]
    rr, rg, rb = result["right"]
    assert lr > 200 and lb < 60  # red half still red
    assert rb > 200 and rr < 60  # blue half still blue


def _blob(data: bytes, name: str = "big.png") -> Blob:
    return Blob(uri=f"mem:{name}", data=data, name=name, mime="image/x")


def test_max_image_side_default():
    assert IngestSettings().max_image_side == 4096
    with pytest.raises(ValueError):
        IngestSettings(max_image_side=10)


def test_8k_jpeg_downscaled(tmp_path):
    # 8000 // 4096 = 1: draft can't go below the target, so this one decodes in full.
    result = _measure(make_large_jpeg(8000, 8000), tmp_path)
    _check_piece(result, 4096, 8000)
    # one full decode (4 bytes a pixel) plus the resize's half-size intermediate
    assert result["growth"] < 8000 * 8000 * 4 * 2
    assert result["held"] < 100 * MB  # only the 4096 px RGB piece outlives the call
    assert result["seconds"] < 10


def test_8k_png_downscaled(tmp_path):
    result = _measure(make_large_png(8000, 8000), tmp_path)
    _check_piece(result, 4096, 8000)
    full = 8000 * 8000 * 4  # one full decode is unavoidable for PNG
    assert result["growth"] < full * 2  # see test_8k_jpeg_downscaled
    assert result["held"] < 100 * MB  # the full decode is freed before the yield
    assert result["seconds"] < 15


def test_jpeg_draft_scale_then_resize(monkeypatch):
    # 10000 px: draft to 1/2 = 5000 (the smallest scale >= 4096), then resized to 4096.
    from mmrag.ingest import images

    decoded = []
    real = images._shrink

    def spy(img, size):
        decoded.append(img.size)
        return real(img, size)

    monkeypatch.setattr(images, "_shrink", spy)
    data = make_large_jpeg(10000, 5000)
    [piece] = list(load_image(_blob(data, "wide.jpg"), IngestSettings(ocr="never")))
    assert decoded == [(5000, 2500)]  # never decoded at full size
    assert piece.image.size == (4096, 2048)
    assert piece.image.mode == "RGB"
    assert (piece.metadata["original_width"], piece.metadata["original_height"]) \
        == (10000, 5000)
    assert piece.media == data  # the stored original is untouched
    assert piece.media_ext == "jpg"


def test_small_images_untouched():
    data = make_large_png(4096, 100)
    [piece] = list(load_image(_blob(data), IngestSettings(ocr="never")))
    assert piece.image.size == (4096, 100)
    assert "original_width" not in piece.metadata


def test_max_image_side_setting_and_orientation():
    img = Image.new("RGB", (3000, 1000), "red")
    img.paste("blue", (0, 0, 1000, 1000))  # left third blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    buf = io.BytesIO()
    img.save(buf, format="JPEG", exif=exif.tobytes())
    [piece] = list(load_image(_blob(buf.getvalue(), "rot.jpg"),
                              IngestSettings(ocr="never", max_image_side=600)))
    assert piece.image.size == (200, 600)
    assert (piece.metadata["original_width"], piece.metadata["original_height"]) \
        == (1000, 3000)
    r, g, b = piece.image.getpixel((100, 20))  # the blue third is now on top
    assert b > 200 and r < 60


@pytest.mark.parametrize("mode", ["1", "P", "L"])
def test_png_modes_downscaled(mode):
    # 1-bit and palette images are widened before resizing, so text stays grey-levelled
    # rather than nearest-neighbour sampled.
    img = Image.new(mode, (2000, 1000), 0)
    img.paste(1 if mode == "1" else 255, (0, 0, 2000, 500))  # top half white/bright
    if mode == "P":
        img.putpalette([0, 0, 0] + [0] * 762 + [255, 255, 255])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    [piece] = list(load_image(_blob(buf.getvalue()),
                              IngestSettings(ocr="never", max_image_side=500)))
    assert piece.image.size == (500, 250)
    assert piece.image.mode == "RGB"
    assert piece.image.getpixel((250, 20)) == (255, 255, 255)
    assert piece.image.getpixel((250, 230)) == (0, 0, 0)
    edge = piece.image.getpixel((250, 125))
    assert edge[0] == edge[1] == edge[2]


def test_tiff_frames_downscaled():
    frames = [Image.new("L", (5000, 500), v) for v in (0, 255)]
    buf = io.BytesIO()
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:])
    pieces = list(load_image(_blob(buf.getvalue(), "scan.tiff"),
                             IngestSettings(ocr="never", max_image_side=1000)))
    assert [p.image.size for p in pieces] == [(1000, 100), (1000, 100)]
    assert [p.image.getpixel((5, 5)) for p in pieces] == [(0, 0, 0), (255, 255, 255)]
    assert all(p.metadata["original_width"] == 5000 for p in pieces)
    assert Image.open(io.BytesIO(pieces[1].media)).size == (1000, 100)


def test_ocr_gets_bounded_image(monkeypatch):
    seen = []

    def fake_ocr(img, settings):
        seen.append(img.size)
        raise RuntimeError("engine down")  # the image is kept without OCR

    monkeypatch.setattr("mmrag.ingest.images.ocr_image", fake_ocr)
    data = make_large_png(6000, 3000)
    [piece] = list(load_image(_blob(data), IngestSettings(ocr="auto", max_image_side=1024)))
    assert seen == [(1024, 512)]
    assert piece.image.size == (1024, 512)


def test_bomb_still_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(ImageFile.ImageFile, "load",
                        lambda self, *a, **k: pytest.fail("pixels were decoded"))
    with pytest.raises(IngestError) as err:
        list(load_image(_blob(make_bomb_png()), IngestSettings(ocr="never")))
    assert "exceeds ingest.max_image_pixels" in str(err.value)


@pytest.mark.slow
def test_20k_jpeg_bounded(tmp_path):
    result = _measure(make_large_jpeg(), tmp_path)
    _check_piece(result, 4096, 20000)
    # draft at 1/4 = 5000 px (the smallest scale still >= 4096), then resized.
    assert result["growth"] < 300 * MB  # a full decode would be 1.6 GB
    assert result["held"] < 100 * MB
    assert result["seconds"] < 20


@pytest.mark.slow
def test_20k_png_bounded(tmp_path):
    result = _measure(make_large_png(), tmp_path)
    _check_piece(result, 4096, 20000)
    full = 20000 * 20000 * 4
    assert result["growth"] < full * 1.3  # one full decode, no second full-size copy
    assert result["held"] < 100 * MB  # the full decode is freed before the yield
    assert result["seconds"] < 60


def test_300_page_pdf_streams_flat():
    pages = [f"Page {i}\n" + "lorem ipsum dolor sit amet " * 40 for i in range(300)]
    data = make_text_pdf(pages)
    settings = IngestSettings(pdf_dpi=72, ocr="never")
    proc = psutil.Process()
    rss: dict[int, int] = {}
    seen = 0
    start = time.monotonic()
    for piece in load(Blob(uri="mem:long.pdf", data=data, name="long.pdf",
                           mime="application/pdf"), settings):
        if piece.modality != "page":
            continue
        seen += 1
        render = piece.image.width * piece.image.height * 4  # Pillow keeps RGB as RGBX
        if seen % 20 == 0 or seen == 50:
            rss[seen] = proc.memory_info().rss
    elapsed = time.monotonic() - start
    assert seen == 300
    growth = rss[300] - rss[50]
    print(f"300 pages in {elapsed:.1f} s; RSS page 50 {rss[50] / MB:.0f} MB, "
          f"page 300 {rss[300] / MB:.0f} MB, growth {growth / MB:.1f} MB")
    assert growth < 60 * MB
    assert 250 * render > 4 * 60 * MB  # keeping the renders would show up many times over
    assert elapsed < 30
