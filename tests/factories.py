"""Fixture makers: every test file is built in code, nothing is downloaded.

    from tests.factories import make_png, make_text_pdf, serve_directory
"""

from __future__ import annotations

import functools
import http.server
import io
import struct
import threading
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

__all__ = [
    "ServedURL", "make_bmp", "make_bomb_png", "make_broken_xref_pdf", "make_encrypted_pdf",
    "make_gif", "make_image", "make_image_pdf", "make_jpeg", "make_multiframe_tiff",
    "make_png", "make_text_pdf", "make_truncated_jpeg", "make_webp", "one_line",
    "serve_directory",
]

Color = str | tuple[int, int, int]
_NAMED = {"red", "green", "blue", "white", "black", "yellow", "orange", "purple", "gray",
          "grey", "cyan", "magenta", "pink", "brown", "navy", "teal", "silver", "gold"}


def make_image(text_or_color: Color = "red", size: tuple[int, int] = (64, 48),
               mode: str = "RGB") -> Image.Image:
    """A solid colour (name or RGB tuple) or black text drawn on white."""
    if isinstance(text_or_color, tuple) or text_or_color.lower() in _NAMED:
        return Image.new(mode, size, text_or_color)
    img = Image.new(mode, size, "white")
    ImageDraw.Draw(img).text((4, 4), text_or_color, fill="black")
    return img


def _encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def make_png(text_or_color: Color = "red", size: tuple[int, int] = (64, 48),
             **save: Any) -> bytes:
    return _encode(make_image(text_or_color, size), "PNG", **save)


def make_jpeg(text_or_color: Color = "red", size: tuple[int, int] = (64, 48),
              quality: int = 90, orientation: int | None = None,
              description: str | None = None) -> bytes:
    """A JPEG, optionally with EXIF Orientation and ImageDescription tags."""
    img = make_image(text_or_color, size)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    if description is not None:
        exif[0x010E] = description
    extra = {"exif": exif.tobytes()} if len(exif) else {}
    return _encode(img, "JPEG", quality=quality, **extra)


def make_webp(text_or_color: Color = "blue", size: tuple[int, int] = (64, 48)) -> bytes:
    return _encode(make_image(text_or_color, size), "WEBP")


def make_bmp(text_or_color: Color = "green", size: tuple[int, int] = (64, 48)) -> bytes:
    return _encode(make_image(text_or_color, size), "BMP")


_FRAME_COLORS = ["red", "green", "blue", "yellow", "cyan", "magenta", "white", "black"]


def make_gif(n_frames: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    """An animated GIF whose frame i is colour ``_FRAME_COLORS[i % 8]`` (first is red)."""
    frames = [Image.new("RGB", size, _FRAME_COLORS[i % 8]) for i in range(n_frames)]
    return _encode(frames[0], "GIF", save_all=n_frames > 1, append_images=frames[1:],
                   duration=100, loop=0)


def make_multiframe_tiff(n: int = 3, size: tuple[int, int] = (32, 24)) -> bytes:
    """A multi-page TIFF; page i is colour ``_FRAME_COLORS[i % 8]``."""
    frames = [Image.new("RGB", size, _FRAME_COLORS[i % 8]) for i in range(n)]
    return _encode(frames[0], "TIFF", save_all=n > 1, append_images=frames[1:])


def make_truncated_jpeg(size: tuple[int, int] = (256, 256), keep: float = 0.5) -> bytes:
    """A noisy JPEG cut after ``keep`` of its bytes: the header reads, the pixels don't."""
    img = Image.effect_noise(size, 64).convert("RGB")
    data = _encode(img, "JPEG", quality=95)
    return data[: int(len(data) * keep)]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return (struct.pack(">I", len(payload)) + kind + payload
            + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))


@functools.lru_cache(maxsize=4)
def _repeated_row_png(row: bytes, width: int, height: int, bit_depth: int, colour_type: int,
                      block_rows: int = 256) -> bytes:
    """A PNG whose every scanline is ``row`` (filter byte included), built in a few MB.

    Each deflate segment ends with a full flush, on a byte boundary with no
    back-references, so identical segments can simply be repeated inside one stream.
    """
    full, rest = divmod(height, block_rows)

    def segment(rows: int) -> bytes:
        comp = zlib.compressobj(9, zlib.DEFLATED, -15)
        return comp.compress(row * rows) + comp.flush(zlib.Z_FULL_FLUSH)

    block = row * block_rows
    adler = 1
    for _ in range(full):
        adler = zlib.adler32(block, adler)
    adler = zlib.adler32(row * rest, adler)
    stream = (b"\x78\xda" + segment(block_rows) * full + (segment(rest) if rest else b"")
              + b"\x03\x00" + struct.pack(">I", adler))  # empty final block + checksum
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)
            + _png_chunk(b"IDAT", stream) + _png_chunk(b"IEND", b""))


def make_bomb_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid 1-bit greyscale PNG of ``width`` x ``height`` zeros: ~100 KB on disk, ~900 MB
    (~2.7 GB as RGB) once decoded. Built in a few MB of memory and well under a second."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    return _repeated_row_png(row, width, height, bit_depth=1, colour_type=0)


# --- PDF -------------------------------------------------------------------------------


def _pdf_escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def _pdf(objects: Sequence[bytes], info: bytes | None = None) -> bytes:
    """Serialise numbered objects (1-based) with a correct xref table."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for num, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n" % (len(objects) + 1)
    out += b"0000000000 65535 f \n"
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    trailer = b"<< /Size %d /Root 1 0 R" % (len(objects) + 1)
    if info is not None:
        trailer += b" /Info %d 0 R" % len(objects)
    out += b"trailer\n" + trailer + b" >>\nstartxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


def make_text_pdf(pages: Sequence[str], title: str | None = None,
                  size: tuple[int, int] = (612, 792), font_size: int = 12) -> bytes:
    """A real PDF with a Helvetica text layer; ``\\n`` in a page's text starts a new line.

    pypdfium2 extracts the text back (tested in tests/ingest/test_factories.py).
    """
    n = len(pages)
    # 1 catalog, 2 pages, 3 font, then per page: page object, content stream; then info.
    font = 3
    kids = [4 + 2 * i for i in range(n)]
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids)
        + b"] /Count %d >>" % n,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    w, h = size
    for i, text in enumerate(pages):
        lines = text.split("\n")
        ops = [b"BT", b"/F1 %d Tf" % font_size, b"%d TL" % int(font_size * 1.4),
               b"72 %d Td" % (h - 72)]
        for j, line in enumerate(lines):
            ops.append((b"T* " if j else b"") + b"(" + _pdf_escape(line) + b") Tj")
        ops.append(b"ET")
        stream = b"\n".join(ops)
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % (w, h)
                       + b"/Resources << /Font << /F1 %d 0 R >> >> " % font
                       + b"/Contents %d 0 R >>" % (kids[i] + 1))
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream
                       + b"\nendstream")
    info = None
    if title is not None:
        info = b"<< /Title (" + _pdf_escape(title) + b") /Producer (mmrag tests) >>"
        objects.append(info)
    return _pdf(objects, info)


def make_image_pdf(n_pages: int = 1, size: tuple[int, int] = (200, 100),
                   color: Color = "red") -> bytes:
    """A scanned-looking PDF: each page one image, no text layer."""
    frames = [make_image(_FRAME_COLORS[i % 8] if color == "cycle" else color, size)
              for i in range(n_pages)]
    return _encode(frames[0], "PDF", save_all=n_pages > 1, append_images=frames[1:],
                   resolution=72.0)


def make_raster_figure_pdf(img: Image.Image, content: bytes,
                           page_pt: tuple[int, int] = (612, 792)) -> bytes:
    """One page with ``img`` as image XObject ``/Im0`` and Helvetica as ``/F1``; ``content``
    is the page's drawing stream (where the image goes, caption text)."""
    pixels = zlib.compress(img.convert("RGB").tobytes())
    return _pdf([
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [6 0 R] /Count 1 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Filter /FlateDecode /Length %d >>\nstream\n"
        % (*img.size, len(pixels)) + pixels + b"\nendstream",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] " % page_pt
        + b"/Resources << /Font << /F1 3 0 R >> /XObject << /Im0 4 0 R >> >> "
        b"/Contents 5 0 R >>",
    ])


def make_encrypted_pdf(password: str = "s3cret", pages: Sequence[str] = ("secret text",)
                       ) -> bytes:
    """An AES-256 encrypted PDF that needs ``password`` to open (made with pikepdf)."""
    import pikepdf

    with pikepdf.open(io.BytesIO(make_text_pdf(pages))) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, encryption=pikepdf.Encryption(user=password, owner=password + "-owner",
                                                    R=6))
    return buf.getvalue()


def make_broken_xref_pdf(pages: Sequence[str] = ("broken xref but readable",)) -> bytes:
    """A PDF whose xref offsets and startxref point to the wrong places (repairable)."""
    data = make_text_pdf(pages)
    head, _, tail = data.partition(b"xref\n")
    entries = tail.split(b"\n")
    # shift every in-use offset by 7 bytes and point startxref into the middle of nowhere
    fixed = [b"%010d 00000 n " % (int(e[:10]) + 7) if e.endswith(b" n ") else e
             for e in entries]
    body = b"\n".join(fixed)
    body = body.replace(b"startxref\n", b"startxref\n9").replace(b"%%EOF", b"%%EOF")
    return head + b"xref\n" + body


def one_line(err: object) -> str:
    """``str(err)``, asserting it is a single line (mmrag's rule for every message)."""
    text = str(err)
    assert "\n" not in text and "\r" not in text, f"multi-line message: {text!r}"
    assert text.strip(), "empty message"
    return text


# --- HTTP ------------------------------------------------------------------------------


class ServedURL(str):
    """The base URL (``http://127.0.0.1:PORT``) plus the request log and a redirect map."""

    requests: list[str]
    redirects: dict[str, tuple[int, str]]


@contextmanager
def serve_directory(path: Path | str,
                    redirects: dict[str, str] | None = None) -> Iterator[ServedURL]:
    """Serve ``path`` on 127.0.0.1 (a free port) in a thread; yields the base URL.

    ``redirects`` maps a request path (``/old``) to a Location; ``url.redirects`` may be
    changed while serving. ``url.requests`` lists the paths requested so far.
    """
    requests: list[str] = []
    moved: dict[str, tuple[int, str]] = {k: (302, v) for k, v in (redirects or {}).items()}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, directory=str(path), **kw)

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            requests.append(self.path)
            if self.path in moved:
                code, location = moved[self.path]
                self.send_response(code)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    url = ServedURL(f"http://127.0.0.1:{server.server_address[1]}")
    url.requests = requests
    url.redirects = moved
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- large images ----------------------------------------------------------------------


@functools.lru_cache(maxsize=2)
def make_large_png(width: int = 20000, height: int = 20000,
                   left: tuple[int, int, int] = (255, 0, 0),
                   right: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    """An RGB PNG, left half ``left``, right half ``right``: ~width*height*3 bytes once
    decoded, but built in a few MB and about a second (identical rows, repeated deflate
    segments: :func:`_repeated_row_png`)."""
    half = width // 2
    row = b"\x00" + bytes(left) * half + bytes(right) * (width - half)
    return _repeated_row_png(row, width, height, bit_depth=8, colour_type=2, block_rows=64)


@functools.lru_cache(maxsize=2)
def make_large_jpeg(width: int = 20000, height: int = 20000,
                    left: tuple[int, int, int] = (255, 0, 0),
                    right: tuple[int, int, int] = (0, 0, 255)) -> bytes:
    """An RGB JPEG, left half ``left``, right half ``right`` (quality 50). Pillow holds
    the full image while encoding: ~4 bytes a pixel (1.6 GB for 20000x20000)."""
    img = Image.new("RGB", (width, height), left)
    img.paste(right, (width // 2, 0, width, height))
    data = _encode(img, "JPEG", quality=50)
    img.close()
    return data
