"""Zip and OLE2 containers: what is inside, read from their directories, never unpacked.

Office documents are containers, so their type is told by their parts, not their name:
an OOXML zip has ``[Content_Types].xml`` and ``word/``, ``ppt/`` or ``xl/``; an
OpenDocument or EPUB zip starts with a stored ``mimetype`` member; a legacy Word,
PowerPoint or Excel file (and an encrypted OOXML one, and an Outlook message) is an OLE2
compound file whose stream names say which.

:func:`sniff_head` answers from a file's first bytes (what :func:`~mmrag.ingest.sniff.sniff`
sees); when they do not tell, it answers the generic :data:`ZIP` or :data:`OLE2`, and
:func:`sniff_file` decides from the zip central directory or the OLE2 directory, which
it reads by seeking, so a 500 MB file costs a few reads. :func:`check_zip` refuses zip
bombs from the declared sizes before any member is decompressed (``zipfile`` never
inflates past a member's declared size, so the directory bounds the memory).
"""

from __future__ import annotations

import io
import logging
import struct
import zipfile
import zlib
from collections.abc import Iterable
from typing import BinaryIO

from ..errors import IngestError

__all__ = ["DOC", "DOCX", "ENCRYPTED", "EPUB", "MSG", "ODP", "ODS", "ODT", "OLE2", "PPT",
           "PPTX", "RTF", "XLS", "XLSX", "ZIP", "check_zip", "open_zip", "sniff_file",
           "sniff_head"]

log = logging.getLogger(__name__)

ZIP = "application/zip"
OLE2 = "application/x-ole-storage"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ODT = "application/vnd.oasis.opendocument.text"
ODP = "application/vnd.oasis.opendocument.presentation"
ODS = "application/vnd.oasis.opendocument.spreadsheet"
EPUB = "application/epub+zip"
DOC = "application/msword"
PPT = "application/vnd.ms-powerpoint"
XLS = "application/vnd.ms-excel"
RTF = "application/rtf"
MSG = "application/vnd.ms-outlook"
# An OOXML file saved with a password is an OLE2 file holding the encrypted zip.
ENCRYPTED = "application/x-ms-office-encrypted"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# OOXML main part → type; macro-enabled and template variants read the same way.
_OOXML_DIRS = {"word/": DOCX, "ppt/": PPTX, "xl/": XLSX}
_OOXML_MAIN = (("wordprocessingml", DOCX), ("ms-word.", DOCX), ("presentationml", PPTX),
               ("ms-powerpoint.", PPTX), ("spreadsheetml", XLSX), ("ms-excel.", XLSX))
_ODF = {"application/vnd.oasis.opendocument.text": ODT,
        "application/vnd.oasis.opendocument.text-template": ODT,
        "application/vnd.oasis.opendocument.presentation": ODP,
        "application/vnd.oasis.opendocument.presentation-template": ODP,
        "application/vnd.oasis.opendocument.spreadsheet": ODS,
        "application/vnd.oasis.opendocument.spreadsheet-template": ODS,
        "application/epub+zip": EPUB}
_TYPES_XML = "[Content_Types].xml"
_SMALL_PART = 1 << 20  # [Content_Types].xml and mimetype are tiny; more is not one


def sniff_head(head: bytes) -> str | None:
    """The container type from a file's first bytes: a specific office type when the
    leading members tell, :data:`ZIP`/:data:`OLE2` when only the directory can, None for
    anything that is not a zip or OLE2 file (RTF is told by its ``{\\rtf`` start)."""
    if head.startswith(b"{\\rtf"):
        return RTF
    if head.startswith(_OLE_MAGIC):
        return _ole_kind(_ole_names_from_head(head)) or OLE2
    if head.startswith(_ZIP_MAGIC):
        return _zip_kind_from_head(head) or ZIP
    return None


def sniff_file(fh: BinaryIO, generic: str) -> str:
    """Decide a generic :data:`ZIP`/:data:`OLE2` type from the container's directory
    (seeks, reads only the directory and at most one tiny member); ``generic`` back when
    it is neither an office document nor readable."""
    try:
        if generic == ZIP:
            with zipfile.ZipFile(fh) as zf:
                return _zip_kind(zf) or ZIP
        if generic == OLE2:
            return _ole_kind(_ole_names(fh)) or OLE2
    except Exception:  # a damaged container stays generic; its loader says why
        log.debug("container directory unreadable", exc_info=True)
    return generic


# --- zip --------------------------------------------------------------------------------


def _zip_kind(zf: zipfile.ZipFile) -> str | None:
    names = zf.namelist()
    if "mimetype" in names:
        info = zf.getinfo("mimetype")
        if info.file_size <= _SMALL_PART:
            found = _ODF.get(zf.read(info).decode("ascii", "replace").strip())
            if found:
                return found
    if _TYPES_XML in names:
        info = zf.getinfo(_TYPES_XML)
        if info.file_size <= _SMALL_PART:
            found = _ooxml_from_types(zf.read(info))
            if found:
                return found
        return _ooxml_from_names(names)
    return None


def _zip_kind_from_head(head: bytes) -> str | None:
    """Walk the local file headers that lie inside ``head`` (Word, PowerPoint, Excel,
    LibreOffice and python-docx all write ``mimetype`` or ``[Content_Types].xml`` first)."""
    names: list[str] = []
    offset = 0
    while offset + 30 <= len(head) and head[offset:offset + 4] == _ZIP_MAGIC:
        (flags, method, csize, usize, nlen, elen) = struct.unpack_from(
            "<6xHH8xIIHH", head, offset)
        name = head[offset + 30:offset + 30 + nlen].decode("utf-8", "replace")
        start = offset + 30 + nlen + elen
        names.append(name)
        inflated: bytes | None
        if flags & 0x08 and not csize:
            # sizes follow the data (a streaming writer): inflate to the stream's end
            streamed = _streamed(head, start, method)
            if streamed is None:
                break
            inflated, end = streamed
        else:
            body = head[start:start + csize] if start + csize <= len(head) else None
            inflated = None if body is None else (
                body if method == 0 else _inflate(body, method, min(usize, _SMALL_PART)))
            end = start + csize
        if name == "mimetype" and inflated is not None and method == 0:
            found = _ODF.get(inflated.decode("ascii", "replace").strip())
            if found:
                return found
        if name == _TYPES_XML and inflated is not None:
            found = _ooxml_from_types(inflated)
            if found:
                return found
        offset = end
    return _ooxml_from_names(names) if _TYPES_XML in names else None


def _streamed(head: bytes, start: int, method: int) -> tuple[bytes, int] | None:
    """A deflated member with a trailing data descriptor: its first bytes inflated (at
    most 1 MiB) and the offset of the next local header, or None when it does not end
    inside ``head``."""
    if method != 8:
        return None
    inflater = zlib.decompressobj(-15)
    try:
        out = inflater.decompress(head[start:], _SMALL_PART)
    except zlib.error:
        return None
    if not inflater.eof:
        return None
    end = len(head) - len(inflater.unused_data)
    end += 16 if head[end:end + 4] == b"PK\x07\x08" else 12  # optional signature
    return out, end


def _inflate(body: bytes, method: int, usize: int) -> bytes:
    if method != 8:
        return b""
    try:
        return zlib.decompressobj(-15).decompress(body, usize or _SMALL_PART)
    except zlib.error:
        return b""


def _ooxml_from_types(xml: bytes) -> str | None:
    """The main part's content type in ``[Content_Types].xml`` names the kind."""
    text = xml.decode("utf-8", "replace")
    for token in ('.main+xml"', ".main+xml'"):
        at = text.find(token)
        while at >= 0:
            lead = text[max(0, at - 120):at]
            for marker, kind in _OOXML_MAIN:
                if marker in lead.rsplit("=", 1)[-1]:
                    return kind
            at = text.find(token, at + 1)
    return None


def _ooxml_from_names(names: Iterable[str]) -> str | None:
    for name in names:
        for prefix, kind in _OOXML_DIRS.items():
            if name.startswith(prefix):
                return kind
    return None


# What zipfile raises on damaged bytes besides BadZipFile: a header offset before the
# file's start ("negative seek value"), an unknown version or compression method
# (NotImplementedError), a broken deflate stream (zlib.error), a cut one (EOFError).
ZIP_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, OSError, ValueError, EOFError,
                                           NotImplementedError, zlib.error)
# ... and reading a member by name, which may also be absent.
ZIP_MEMBER_ERRORS: tuple[type[Exception], ...] = (KeyError, *ZIP_ERRORS)


def open_zip(data: bytes | BinaryIO, uri: str, *, max_bytes: int, max_ratio: float,
             max_members: int = 10_000) -> zipfile.ZipFile:
    """A checked :class:`zipfile.ZipFile` over ``data``: IngestError (one line) when it is
    not a zip or :func:`check_zip` refuses it."""
    fh = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        zf = zipfile.ZipFile(fh)
    except ZIP_ERRORS as exc:
        raise IngestError(uri, f"corrupt document (not a readable zip: {exc})") from None
    try:
        check_zip(zf, uri, max_bytes=max_bytes, max_ratio=max_ratio, max_members=max_members)
    except BaseException:
        zf.close()
        raise
    return zf


def check_zip(zf: zipfile.ZipFile, uri: str, *, max_bytes: int, max_ratio: float,
              max_members: int = 10_000) -> None:
    """Refuse a decompression bomb from the central directory alone: too many members,
    a total or a member larger than ``max_bytes`` unpacked, or a member over 1 MiB that
    claims to expand more than ``max_ratio`` times."""
    infos = zf.infolist()
    if len(infos) > max_members:
        raise IngestError(uri, f"zip bomb refused: {len(infos)} members (limit {max_members})")
    total = 0
    for info in infos:
        total += info.file_size
        if info.file_size > max_bytes or total > max_bytes:
            raise IngestError(uri, f"zip bomb refused: unpacks to more than {max_bytes} "
                                   "bytes (ingest.office_max_unzipped_bytes)")
        if info.file_size > _SMALL_PART and \
                info.file_size > max_ratio * max(info.compress_size, 1):
            ratio = info.file_size / max(info.compress_size, 1)
            raise IngestError(uri, f"zip bomb refused: member {info.filename!r} expands "
                                   f"{ratio:.0f}x (ingest.office_max_zip_ratio "
                                   f"{max_ratio:g})")


# --- OLE2 compound files ----------------------------------------------------------------

_OLE_WORD = "worddocument"
_OLE_PPT = "powerpoint document"
_OLE_XLS = ("workbook", "book")


def _ole_kind(names: list[str] | None) -> str | None:
    if not names:
        return None
    low = {n.lower() for n in names}
    if "encryptioninfo" in low and "encryptedpackage" in low:
        return ENCRYPTED
    if _OLE_WORD in low:
        return DOC
    if _OLE_PPT in low:
        return PPT
    if low & set(_OLE_XLS):
        return XLS
    if "__properties_version1.0" in low or any(n.startswith("__substg1.0_") for n in low):
        return MSG
    return None


def _ole_names(fh: BinaryIO) -> list[str]:
    """Stream and storage names of an OLE2 file, through olefile when it is installed
    (follows the FAT chain), else from the first directory sector."""
    try:
        import olefile
    except ImportError:
        fh.seek(0)
        return _ole_names_from_head(fh.read(1 << 20)) or []
    fh.seek(0)
    ole = olefile.OleFileIO(fh)
    try:
        return [entry[-1] for entry in ole.listdir(streams=True, storages=True)]
    finally:
        ole.close()


def _ole_names_from_head(head: bytes) -> list[str] | None:
    """Names in the first directory sector, when it lies inside ``head`` (the directory
    of a small file usually does); None when it does not."""
    if len(head) < 512:
        return None
    shift = struct.unpack_from("<H", head, 30)[0]
    first = struct.unpack_from("<I", head, 48)[0]
    if shift not in (9, 12) or first >= 0xFFFFFFFA:
        return None
    size = 1 << shift
    start = (first + 1) * size
    if start + size > len(head):
        return None
    names = []
    for at in range(start, start + size, 128):
        nlen = struct.unpack_from("<H", head, at + 64)[0]
        if 2 <= nlen <= 64 and head[at + 66] in (1, 2, 5):
            names.append(head[at:at + nlen - 2].decode("utf-16-le", "replace"))
    return names
