"""Office documents: DOCX, PPTX, XLSX (python-docx, python-pptx, openpyxl), OpenDocument
ODT/ODP/ODS (their content.xml), and legacy DOC/PPT/XLS and RTF through LibreOffice.

Each format's loader parses the document's structure (headings, slides, sheets, tables
as Markdown, embedded pictures, notes, headers and footers) and, when LibreOffice is
installed, adds page renders from its PDF (:mod:`.document`, :mod:`.convert`). Importing
this package registers the loaders and routes the sniffed types to them.
"""

from __future__ import annotations

from ..containers import DOC, DOCX, ENCRYPTED, ODP, ODS, ODT, PPT, PPTX, RTF, XLS, XLSX
from ..sniff import mime_loaders
from . import docx, legacy, odf, pptx, xlsx  # noqa: F401 - registers loaders

__all__ = ["OFFICE_LOADERS"]

# sniffed type → loader; EPUB and Outlook MSG (also zip / OLE2) have their own loaders.
# A zip or OLE2 file still generic after its directory was read is no office document.
OFFICE_LOADERS = {DOCX: "docx", PPTX: "pptx", XLSX: "xlsx", ODT: "odf", ODP: "odf",
                  ODS: "odf", DOC: "office-legacy", PPT: "office-legacy",
                  XLS: "office-legacy", RTF: "office-legacy", ENCRYPTED: "office-encrypted"}
mime_loaders.update(OFFICE_LOADERS)
