"""Image loader: jpg, png, webp, gif (first frame), bmp, tiff (every frame) and HEIC/HEIF
(with the ``heif`` extra, pillow-heif; stored as JPEG).

Pixel counts are checked against ``ingest.max_image_pixels`` from the header, before any
decoding, so a 40000x40000 PNG of zeros is refused without allocating gigabytes. Pillow's
own bomb guard is kept out of the way: its warning is silenced and its error is replaced
by ours, which names the setting to change.

Unless ``ingest.ocr`` is ``"never"``, every image (sides ≥ 32 px) is OCR'd and the text
read is appended to the piece text after the file-name words, so charts and screenshots
are found by their labels and numbers; it is also kept in ``metadata["ocr_text"]``.

Images whose longest side exceeds ``ingest.max_image_side`` are downscaled to it for the
encoders and OCR (``metadata["original_width"/"original_height"]`` keep the full size; the
stored media stays the original bytes). JPEGs are decoded at 1/2, 1/4 or 1/8 scale
(``draft``), so a 20000x20000 photo never exists at full size in memory; other formats are
decoded in full once, then reduced before the RGB conversion.
"""

from __future__ import annotations

import io
import logging
import re
import struct
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from ..config import IngestSettings
from ..errors import IngestError, MissingDependencyError, MmragError
from ..timing import stage
from ..types import Blob
from .base import Piece, loaders
from .ocr import OCRResult, ocr_image

__all__ = ["EXTENSIONS", "load_image", "name_words", "to_rgb"]

# Pillow format → file extension used when storing the original bytes.
EXTENSIONS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "GIF": "gif", "WEBP": "webp",
              "BMP": "bmp", "DIB": "bmp", "TIFF": "tiff", "AVIF": "avif"}
_ALL_FRAMES = {"TIFF"}  # multi-page scans; animations only keep their first frame
# Stored as a JPEG of the decoded picture: browsers and a Pillow without pillow-heif (the
# web page's thumbnails) cannot show the original.
_STORED_AS_JPEG = {"HEIF"}
_HEIF_MIMES = {"image/heic", "image/heif"}
_heif_registered = False
# RuntimeError: pillow_heif's for every libheif error (a damaged HEIC, its size limits).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  KeyError, ZeroDivisionError, MemoryError, struct.error, RuntimeError)
_pil_limit_lock = threading.Lock()
log = logging.getLogger(__name__)


@contextmanager
def _quiet_pil() -> Iterator[None]:
    """Pillow warns (UserWarning) about damaged metadata it skips ("Corrupt EXIF data",
    "Tag data larger than file"): printed on the user's terminal with a source line,
    they would name no input; the image loads anyway or fails with one line."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        yield


@contextmanager
def _pil_limit_off() -> Iterator[None]:
    """Lift Pillow's global pixel limit while our own (checked first) is in force.

    Only taken on the rare path where Pillow refuses an image our settings allow, or to
    read a bomb's header for the error message; the lock keeps two threads from
    restoring each other's value.
    """
    with _pil_limit_lock:
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


def _too_large(w: int, h: int, settings: IngestSettings) -> bool:
    return w * h > settings.max_image_pixels


def _refuse(uri: str, w: int, h: int) -> IngestError:
    return IngestError(uri, f"image too large: {w}x{h} px exceeds ingest.max_image_pixels")


def name_words(name: str) -> str:
    """Human words from a file name: ``quarterly_revenue-chart.png`` → ``quarterly revenue
    chart``; camelCase is split too."""
    stem = PurePosixPath(name.replace("\\", "/")).name
    if "." in stem:
        stem = stem.rsplit(".", 1)[0]
    stem = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", stem)
    return " ".join(w for w in re.split(r"[\s_\-.+]+", stem) if w)


def to_rgb(img: Image.Image) -> Image.Image:
    """RGB copy of ``img``; transparent pixels become white, not black."""
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit/float greyscale: scale to 8 bits instead of clipping to white.
        img = img.convert("I").point(lambda v: v / 256).convert("L")
    return img.convert("RGB")


_XMP_FIELD = re.compile(
    rb"<dc:(title|description)>.*?<rdf:li[^>]*>(.*?)</rdf:li>", re.S)


def _described(img: Image.Image) -> list[str]:
    """EXIF ImageDescription, XMP dc:title/description and PNG text chunks."""
    found: list[str] = []
    try:
        with _quiet_pil():
            desc = img.getexif().get(0x010E)
        if isinstance(desc, bytes):
            desc = desc.decode("utf-8", "replace")
        if isinstance(desc, str):
            found.append(desc)
    except Exception:  # broken EXIF must not fail the image
        pass
    xmp = img.info.get("xmp") or img.info.get("XML:com.adobe.xmp")
    if isinstance(xmp, str):
        xmp = xmp.encode("utf-8", "replace")
    if isinstance(xmp, bytes):
        for _, value in _XMP_FIELD.findall(xmp):
            found.append(value.decode("utf-8", "replace"))
    for key in ("Title", "Description", "title", "description"):
        value = img.info.get(key)
        if isinstance(value, str):
            found.append(value)
    out: list[str] = []
    for text in found:
        text = " ".join(text.replace("\x00", " ").split())
        if text and text not in out:
            out.append(text)
    return out


def _heif_support(blob: Blob) -> None:
    """Register pillow-heif's opener for a HEIC/HEIF file (iPhone photos), once, on first
    need: importing it costs every other run for nothing."""
    global _heif_registered
    if _heif_registered or not (blob.mime in _HEIF_MIMES or blob.head(12)[4:8] == b"ftyp"):
        return
    try:
        import pillow_heif
    except ImportError:
        if blob.mime in _HEIF_MIMES:
            raise MissingDependencyError("reading HEIC/HEIF images", "heif") from None
        return
    pillow_heif.register_heif_opener()
    _heif_registered = True


def _open(blob: Blob, settings: IngestSettings) -> tuple[Image.Image, bool]:
    """Open (header only) and apply our pixel limit; the flag says Pillow's must be lifted."""
    _heif_support(blob)
    try:
        with _quiet_pil():
            img = Image.open(io.BytesIO(blob.data))
        unlimited = False
    except Image.DecompressionBombError:
        with _pil_limit_off(), _quiet_pil():
            img = Image.open(io.BytesIO(blob.data))
        unlimited = True
    w, h = img.size
    if _too_large(w, h, settings):
        img.close()
        raise _refuse(blob.uri, w, h)
    return img, unlimited


def _fit(w: int, h: int, side: int) -> tuple[int, int]:
    """``(w, h)`` scaled so that the longest side is ``side`` (never below 1 px)."""
    ratio = side / max(w, h)
    return max(1, round(w * ratio)), max(1, round(h * ratio))


# Modes whose resize would average palette indices or fall back to nearest neighbour:
# widened first, so a downscaled scan keeps legible text.
_WIDEN = {"1": "L", "P": None, "PA": None, "I;16": None, "I;16B": None, "I;16L": None}
_ORIENTATION_INFO = {"exif", "Raw profile type exif", "xmp", "XML:com.adobe.xmp"}


def _shrink(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` (decoded) resized to ``size``, orientation tags kept for exif_transpose."""
    src: Image.Image = img
    if src.mode in _WIDEN:
        target = _WIDEN[src.mode]
        src = src.convert(target) if target else to_rgb(src)
    # reducing_gap: box-average by an integer factor first (fast, antialiased), then a
    # LANCZOS pass over the last <3x, as good as a full LANCZOS at a fraction of the time.
    small = src.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    # JPEG/PNG EXIF and XMP orientation travel in info; a palette "transparency" must not.
    small.info = {k: v for k, v in img.info.items() if k in _ORIENTATION_INFO}
    orientation = img.getexif().get(0x0112)  # TIFF keeps it in its own tags
    if orientation:
        small.getexif()[0x0112] = orientation
    return small


def _frames(img: Image.Image, blob: Blob, settings: IngestSettings, unlimited: bool
            ) -> Iterator[tuple[int, Image.Image, tuple[int, int] | None]]:
    """Each frame as RGB, bounded by ``max_image_side``, with its original (oriented)
    size when it was downscaled."""
    fmt = img.format or ""
    count = getattr(img, "n_frames", 1) if fmt in _ALL_FRAMES else 1
    side = settings.max_image_side
    for index in range(count):
        with _quiet_pil():
            if index:
                img.seek(index)
            w, h = img.size
            if _too_large(w, h, settings):
                raise _refuse(blob.uri, w, h)
            target = _fit(w, h, side) if max(w, h) > side else None
            if target is not None:
                # JPEG: decode at the smallest 1/2..1/8 scale still >= target (no-op for
                # other formats). Must come before load().
                img.draft("RGB", target)
            if unlimited:
                with _pil_limit_off():
                    img.load()
            else:
                img.load()  # decode now, so truncation is reported here
            frame: Image.Image = img
            original = None
            if target is not None:
                frame = _shrink(img, target)
                original = (w, h)
                if count == 1:
                    img.close()  # drop the full-size pixels now, not after the consumer
            oriented = ImageOps.exif_transpose(frame)
            if original is not None and oriented.size != frame.size:
                original = (h, w)  # rotated by 90 degrees like the pixels
            # exif_transpose already copied: skip a second copy of an RGB image.
            rgb = oriented if oriented.mode == "RGB" and oriented is not img \
                else to_rgb(oriented)
            del frame, oriented  # only rgb stays alive while the consumer has it
        yield index, rgb, original


def _frame_count(img: Image.Image, uri: str) -> int:
    """Frames of the image: counting walks every frame header (TIFF IFDs, GIF blocks), so
    a damaged later frame fails here, with whatever Pillow raises for it."""
    try:
        with _quiet_pil():
            return int(getattr(img, "n_frames", 1))
    except _DECODE_ERRORS as exc:
        raise IngestError(uri, f"corrupt or truncated image: {_one_line(exc)}") from None


@loaders.register("image")
def load_image(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """One ``Piece(modality="image")`` per image, or per frame of a multi-page TIFF."""
    try:
        img, unlimited = _open(blob, settings)
    except IngestError:
        raise
    except UnidentifiedImageError:
        raise IngestError(blob.uri, "not a readable image (unknown or damaged format)") from None
    except _DECODE_ERRORS as exc:
        raise IngestError(blob.uri, f"corrupt or truncated image: {_one_line(exc)}") from None
    with img:
        fmt = img.format or ""
        frames = _frame_count(img, blob.uri)
        words = [name_words(blob.name)] if blob.name else []
        words += _described(img)
        text = " ".join(w for w in words if w)
        multi = fmt in _ALL_FRAMES and frames > 1
        it = _frames(img, blob, settings, unlimited)
        while True:
            try:
                item = next(it, None)
            except IngestError:
                raise
            except Image.DecompressionBombError:
                w, h = img.size
                raise _refuse(blob.uri, w, h) from None
            except _DECODE_ERRORS as exc:
                raise IngestError(blob.uri,
                                  f"corrupt or truncated image: {_one_line(exc)}") from None
            if item is None:
                return
            index, rgb, original = item
            meta: dict[str, Any] = {"width": rgb.width, "height": rgb.height, "format": fmt,
                                    "frames": frames}
            if original is not None:
                meta["original_width"], meta["original_height"] = original
            if multi:
                buf = io.BytesIO()
                rgb.save(buf, format="PNG")
                media, ext = buf.getvalue(), "png"
            elif fmt in _STORED_AS_JPEG:
                buf = io.BytesIO()
                rgb.save(buf, format="JPEG", quality=90)
                media, ext = buf.getvalue(), "jpg"
            else:
                media, ext = blob.data, EXTENSIONS.get(fmt, fmt.lower() or "bin")
            piece_text = text
            ocr = _ocr(rgb, settings, blob.uri)
            ocr_text = ocr.text if ocr is not None else ""
            if ocr_text:
                piece_text = f"{text}\n{ocr_text}" if text else ocr_text
                meta["ocr_text"] = ocr_text
                meta["origin"] = "ocr"
            yield Piece(modality="image", text=piece_text, page=index + 1, image=rgb,
                        media=media, media_ext=ext, metadata=meta, ocr=ocr)


def _ocr(img: Image.Image, settings: IngestSettings, uri: str) -> OCRResult | None:
    """The image's OCR lines (None when OCR is off or the engine fails; empty for a tiny
    image); their boxes are kept for the chart reader."""
    if settings.ocr == "never":
        return None
    try:
        with stage("ocr"):
            return ocr_image(img, settings)
    except MmragError:
        raise  # misconfiguration (unknown engine, missing extra) must be seen
    except Exception as exc:  # the image itself is still worth indexing
        log.warning("%s: OCR failed, image kept without it: %s", uri, _one_line(exc))
        return None


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split()) or type(exc).__name__
    return msg[:300]
