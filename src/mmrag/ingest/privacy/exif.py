"""Removing location and device metadata from stored image files.

A phone photo's EXIF says where it was taken (GPS IFD) and by whose camera (make, model,
serial numbers, owner name, maker notes). Orientation, size and colour tags are kept so the
stored copy still displays the same. JPEG is rewritten at the byte level (only the EXIF
segment changes, the compressed pixels are copied as they are); PNG, WebP and TIFF are
re-saved losslessly by Pillow (a lossy WebP grows, but loses nothing more).
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator

from PIL import Image

__all__ = ["strip"]

_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
# IFD0: Make, Model, Software, Artist, HostComputer, Copyright (owner).
_IFD0_TAGS = (0x010F, 0x0110, 0x0131, 0x013B, 0x013C, 0x8298, _GPS_IFD)
# Exif IFD: MakerNote, UserComment, ImageUniqueID, CameraOwnerName, BodySerialNumber,
# LensSpecification, LensMake, LensModel, LensSerialNumber.
_EXIF_TAGS = (0x927C, 0x9286, 0xA420, 0xA430, 0xA431, 0xA432, 0xA433, 0xA434, 0xA435)
_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF",
            "tiff": "TIFF"}


def _cleaned(exif: Image.Exif) -> bool:
    """Drop sensitive tags from ``exif`` in place; whether anything was dropped."""
    inner = exif.get_ifd(_EXIF_IFD)  # read before edits: Pillow loads sub-IFDs lazily
    dropped = False
    for tag in _IFD0_TAGS:
        if tag in exif:
            del exif[tag]
            dropped = True
    for tag in _EXIF_TAGS:
        if tag in inner:
            del inner[tag]
            dropped = True
    return dropped


def strip(data: bytes, ext: str) -> bytes | None:
    """``data`` without GPS and device tags, or ``None`` when there was nothing to remove
    (or the format is not one we rewrite), so clean files stay byte-identical."""
    fmt = _FORMATS.get(ext.lower().lstrip("."))
    if fmt is None:
        return None
    # Pillow warns (UserWarning, printed on the user's terminal naming no input) about
    # damaged tags it skips, as the image loader already heard (found by the fuzzer).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        return _strip(data, fmt)


def _strip(data: bytes, fmt: str) -> bytes | None:
    with Image.open(io.BytesIO(data)) as img:
        exif = img.getexif()
        xmp = fmt == "JPEG" and _has_xmp(data)
        if not _cleaned(exif) and not xmp:
            return None
        if fmt == "JPEG":
            return _jpeg(data, exif.tobytes())
        return _resave(img, fmt, exif.tobytes())


def _resave(img: Image.Image, fmt: str, exif: bytes) -> bytes:
    buf = io.BytesIO()
    extra: dict[str, object] = {}
    if fmt == "WEBP":  # lossless: a privacy rewrite must not cost a generation of quality
        extra = {"lossless": True}
    elif fmt == "TIFF":
        extra = {"compression": img.info.get("compression", "raw")}
    if "icc_profile" in img.info:
        extra["icc_profile"] = img.info["icc_profile"]
    img.save(buf, format=fmt, exif=exif, **extra)
    return buf.getvalue()


def _segments(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each JPEG header segment up to the start of scan."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the rest is entropy-coded data
            return
        (length,) = struct.unpack(">H", data[pos + 2:pos + 4])
        yield marker, pos, pos + 2 + length
        pos += 2 + length


def _is_exif(data: bytes, start: int) -> bool:
    return data[start + 1] == 0xE1 and data[start + 4:start + 10] == b"Exif\0\0"


def _is_xmp(data: bytes, start: int) -> bool:
    return data[start + 1] == 0xE1 and data[start + 4:start + 33] == b"http://ns.adobe.com/xap/1.0/"


def _has_xmp(data: bytes) -> bool:
    return any(_is_xmp(data, s) for _, s, _ in _segments(data))


def _jpeg(data: bytes, exif: bytes) -> bytes:
    """The JPEG with its EXIF segment replaced by ``exif`` and XMP packets (which repeat
    GPS and camera fields) dropped; every other byte is copied."""
    if not exif.startswith(b"Exif\0\0"):
        exif = b"Exif\0\0" + exif
    out = bytearray(data[:2])
    pos = 2
    for _, start, end in _segments(data):
        if _is_exif(data, start):
            if len(exif) > 6 + 8:  # more than an empty TIFF header: keep what is left
                out += b"\xff\xe1" + struct.pack(">H", len(exif) + 2) + exif
        elif not _is_xmp(data, start):
            out += data[start:end]
        pos = end
    out += data[pos:]
    return bytes(out)
