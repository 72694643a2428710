"""Small valid files of every type the loaders accept, built in code for the fuzzer.

Each seed is the starting point of byte-level mutations (:mod:`tests.ingest.fuzz`), so
it is kept tiny: a mutation then lands in a header, a table or a stream often enough
to reach the parsers' error paths instead of bulk pixel data.
"""

from __future__ import annotations

import io
import math
import re
import time
import wave
import zipfile
from collections.abc import Callable
from email.message import EmailMessage
from functools import cache

import numpy as np
from PIL import Image

from tests.factories import (
    make_bmp,
    make_gif,
    make_jpeg,
    make_multiframe_tiff,
    make_png,
    make_text_pdf,
    make_webp,
)

__all__ = ["SEEDS", "seed_bytes"]


def _wav(seconds: float = 0.4, rate: int = 8_000) -> bytes:
    """A tone, loud enough that audio clips are not skipped as silence."""
    t = np.arange(int(seconds * rate)) / rate
    pcm = (0.4 * np.sin(2 * math.pi * 440 * t) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def _audio(fmt: str, codec: str, rate: int = 16_000) -> bytes:
    """The tone re-encoded by PyAV (mp3, flac, ogg...)."""
    import av

    t = np.arange(int(0.6 * rate)) / rate
    pcm = (0.4 * np.sin(2 * math.pi * 440 * t) * 32767).astype("<i2").reshape(1, -1)
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        ctx = stream.codec_context
        resampler = av.AudioResampler(format=ctx.format.name, layout="mono", rate=rate,
                                      frame_size=ctx.frame_size or None)
        for chunk in [*resampler.resample(frame), *resampler.resample(None), None]:
            for packet in stream.encode(chunk):
                out.mux(packet)
    return buf.getvalue()


def _mp4() -> bytes:
    """Ten 32x32 H.264 frames (two scenes) at 10 fps: the smallest real video."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        for n in range(10):
            arr = np.full((32, 32, 3), (200, 30, 30) if n < 5 else (30, 30, 200), np.uint8)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = n
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return buf.getvalue()


def _scan_pdf() -> bytes:
    """A PDF whose one page is an image (Pillow's writer, its dates fixed)."""
    buf = io.BytesIO()
    when = time.gmtime(1_704_067_200)  # 2024-01-01
    Image.new("RGB", (40, 20), "red").save(buf, format="PDF", resolution=72.0,
                                           creationDate=when, modDate=when)
    return buf.getvalue()


def _heic() -> bytes:
    import pillow_heif

    pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, format="HEIF", quality=50)
    return buf.getvalue()


def _zip(members: list[tuple[str, bytes]]) -> bytes:
    """A zip whose first member (the ODF/EPUB ``mimetype``) is stored, the rest deflated;
    fixed member dates, so a seed (and every mutant of it) is the same bytes each run."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, (name, data) in enumerate(members):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            zf.writestr(info, data, zipfile.ZIP_STORED if i == 0 else zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _restamped(data: bytes) -> bytes:
    """An office library's zip rewritten by :func:`_zip`, with the creation times that
    the library wrote into docProps fixed too."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return _zip([(i.filename, re.sub(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z?",
                                         b"2024-01-01T00:00:00Z", zf.read(i)))
                     for i in zf.infolist()])


_ODF_NS = ('xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
           'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
           'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
           'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" '
           'xmlns:presentation="urn:oasis:names:tc:opendocument:xmlns:presentation:1.0"')


def _odf(kind: str, body: str) -> bytes:
    content = (f'<?xml version="1.0" encoding="UTF-8"?><office:document-content {_ODF_NS}>'
               f"<office:body>{body}</office:body></office:document-content>")
    return _zip([("mimetype", f"application/vnd.oasis.opendocument.{kind}".encode()),
                 ("content.xml", content.encode())])


def _odp() -> bytes:
    return _odf("presentation", "<office:presentation><draw:page draw:name=\"s1\">"
                "<draw:frame><draw:text-box><text:p>Harbour lights</text:p></draw:text-box>"
                "</draw:frame></draw:page></office:presentation>")


def _ods() -> bytes:
    return _odf("spreadsheet", "<office:spreadsheet><table:table table:name=\"Tides\">"
                "<table:table-row><table:table-cell><text:p>Port</text:p></table:table-cell>"
                "<table:table-cell><text:p>Brest</text:p></table:table-cell>"
                "</table:table-row></table:table></office:spreadsheet>")


_CONTAINER = ('<?xml version="1.0"?><container version="1.0" '
              'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
              '<rootfile full-path="OEBPS/content.opf" '
              'media-type="application/oebps-package+xml"/></rootfiles></container>')


def _epub() -> bytes:
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
           '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Airships'
           '</dc:title></metadata><manifest>'
           '<item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/>'
           '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
           'properties="nav"/><item id="p" href="p.png" media-type="image/png"/>'
           '</manifest><spine><itemref idref="c1"/></spine></package>')
    page = ('<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml" '
            'xmlns:epub="http://www.idpf.org/2007/ops"><body>{}</body></html>')
    return _zip([("mimetype", b"application/epub+zip"),
                 ("META-INF/container.xml", _CONTAINER.encode()),
                 ("OEBPS/content.opf", opf.encode()),
                 ("OEBPS/nav.xhtml", page.format('<nav epub:type="toc"><ol><li>'
                                                 '<a href="c1.xhtml">Voyage</a></li></ol>'
                                                 "</nav>").encode()),
                 ("OEBPS/c1.xhtml", page.format("<h1>Voyage</h1><p>The airship left at "
                                                'dawn.</p><img src="p.png" alt="map"/>'
                                                ).encode()),
                 ("OEBPS/p.png", make_png("navy", (16, 16)))])


def _eml() -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann <ann@example.com>"
    msg["To"] = "Bob <bob@example.com>"
    msg["Subject"] = "Zeppelin budget"
    msg["Date"] = "Tue, 04 Mar 2025 09:30:00 +0000"
    msg.set_content("The airship budget is attached.\n")
    msg.add_alternative("<p>The airship <b>budget</b> is attached.</p>", subtype="html")
    msg.add_attachment(make_png("blue", (16, 16)), maintype="image", subtype="png",
                       filename="logo.png")
    msg.add_attachment(b"Port,Height\nBrest,7\n", maintype="text", subtype="csv",
                       filename="tides.csv")
    for n, part in enumerate(msg.walk()):  # random by default: same bytes every run
        if part.is_multipart():
            part.set_boundary(f"==boundary{n}==")
    return msg.as_bytes()


def _msg() -> bytes:
    from tests.cfb import make_msg

    return make_msg(subject="Zeppelin budget", body="The airship budget is attached.")


def _office(name: str) -> Callable[[], bytes]:
    def make() -> bytes:
        from tests.ingest import office_docs

        if name == "docx":
            return _restamped(office_docs.make_docx(pages=1))
        if name == "xlsx":
            return _restamped(office_docs.make_xlsx(long_rows=3))
        return _restamped(office_docs.make_pptx())
    return make


_HTML = (b"<!doctype html><html><head><title>Tides</title></head><body><h1>Tides</h1>"
         b"<p>High water at <a href='x'>dawn</a>.</p><table><tr><td>Brest</td><td>7</td>"
         b"</tr></table><img src='data:image/png;base64,AAAA' alt='map'></body></html>")
_MD = b"# Tides\n\nHigh water at *dawn*.\n\n## Ports\n\n| Port | m |\n|---|---|\n| Brest | 7 |\n"

# kind -> (file name the mutant is saved under, maker). Names give the text loaders
# their only hint (Markdown vs text); every other type is sniffed from the bytes.
SEEDS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "pdf": ("doc.pdf", lambda: make_text_pdf(["Tide tables for Brest", "Second page"])),
    "pdf-scan": ("scan.pdf", _scan_pdf),
    "png": ("img.png", lambda: make_png("chart", (32, 24))),
    "jpeg": ("img.jpg", lambda: make_jpeg("red", (32, 24), orientation=6)),
    "webp": ("img.webp", lambda: make_webp("blue", (32, 24))),
    "bmp": ("img.bmp", lambda: make_bmp("green", (16, 12))),
    "gif": ("anim.gif", lambda: make_gif(2, (16, 12))),
    "tiff": ("scan.tiff", lambda: make_multiframe_tiff(2, (16, 12))),
    "heic": ("img.heic", _heic),
    "txt": ("notes.txt", lambda: b"Tide tables.\nHigh water at dawn near Brest.\n"),
    "md": ("notes.md", lambda: _MD),
    "html": ("page.html", lambda: _HTML),
    "csv": ("tides.csv", lambda: b"Port,Height,Time\nBrest,7.1,06:10\nCork,4.2,07:00\n"),
    "wav": ("tone.wav", _wav),
    "mp3": ("tone.mp3", lambda: _audio("mp3", "libmp3lame")),
    "flac": ("tone.flac", lambda: _audio("flac", "flac")),
    "mp4": ("clip.mp4", _mp4),
    "docx": ("doc.docx", _office("docx")),
    "pptx": ("deck.pptx", _office("pptx")),
    "xlsx": ("book.xlsx", _office("xlsx")),
    "odt": ("doc.odt", lambda: _odf("text", "<office:text><text:h text:outline-level=\"1\">"
                                            "Tides</text:h><text:p>High water at dawn.</text:p>"
                                            "</office:text>")),
    "odp": ("deck.odp", _odp),
    "ods": ("book.ods", _ods),
    "epub": ("book.epub", _epub),
    "eml": ("mail.eml", _eml),
    "msg": ("mail.msg", _msg),
}


@cache
def seed_bytes(kind: str) -> bytes:
    """The seed of ``kind``, built once per process (the makers are deterministic enough
    for mutation: the fuzzer records the seed's hash with every case)."""
    return SEEDS[kind][1]()
