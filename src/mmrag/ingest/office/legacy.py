"""Legacy DOC, PPT, XLS and RTF: LibreOffice converts them to DOCX, PPTX or XLSX, which
the native loaders read (and render). Without LibreOffice they fail with one line.
"""

from __future__ import annotations

from collections.abc import Iterator

from ...config import IngestSettings
from ...errors import IngestError
from ...types import Blob
from ..base import Piece, loaders
from ..containers import DOC, DOCX, PPT, PPTX, RTF, XLS, XLSX
from .convert import convert, soffice

__all__ = ["load_legacy"]

# legacy type → (its extension, the OOXML extension, type and loader it becomes)
_TARGETS = {DOC: ("doc", "docx", DOCX, "docx"), RTF: ("rtf", "docx", DOCX, "docx"),
            PPT: ("ppt", "pptx", PPTX, "pptx"), XLS: ("xls", "xlsx", XLSX, "xlsx")}


@loaders.register("office-legacy")
def load_legacy(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """Convert, then load the OOXML form; pieces say ``converted_from``."""
    ext, target, mime, loader = _TARGETS[blob.mime]
    if soffice(settings) is None:
        raise IngestError(blob.uri, f"legacy .{ext} needs LibreOffice to be read "
                                    "(soffice not found; install libreoffice-*-nogui)")
    data = convert(blob.data, ext, target, blob.uri, settings)
    modern = Blob(uri=blob.uri, data=data, name=blob.name, mime=mime)
    pieces = list(loaders.get(loader)(modern, settings))
    # LibreOffice opens a damaged file as an empty document rather than failing
    if not any(p.text.strip() or p.modality == "image" for p in pieces):
        raise IngestError(blob.uri, f"no content found in the .{ext} file (damaged?)")
    for piece in pieces:
        piece.metadata["converted_from"] = ext
        yield piece


@loaders.register("office-encrypted")
def load_encrypted(blob: Blob, settings: IngestSettings) -> Iterator[Piece]:
    """A password-protected DOCX/PPTX/XLSX (an OLE2 file holding the encrypted zip)."""
    raise IngestError(blob.uri, "password-protected Office document: remove the password "
                                "to index it")
    yield  # pragma: no cover - a generator, like every loader
