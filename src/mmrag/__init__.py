"""mmrag: multimodal retrieval-augmented generation.

Public API: :class:`Index` plus the data types :class:`Item`, :class:`Hit`,
:class:`Answer`, :class:`AddReport`, :class:`Filters` and :class:`Settings`.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import MmragError
from .types import AddReport, Answer, Citation, Failure, Filters, Hit, Item

if TYPE_CHECKING:
    from .index import Index

__all__ = ["AddReport", "Answer", "Citation", "Failure", "Filters", "Hit", "Index", "Item",
           "MmragError", "Settings", "__version__"]
__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def __getattr__(name: str) -> Any:
    # Index pulls in torch/lancedb; importing it lazily keeps `import mmrag.types` cheap.
    if name == "Index":
        from .index import Index

        return Index
    raise AttributeError(name)
