"""Adapting encoders to an index's own content (`mmrag tune`).

``pairs`` builds pseudo-queries, ``negatives`` mines hard negatives, ``text`` trains the
text encoder with sentence-transformers, ``switch`` re-embeds and switches atomically.
"""

from __future__ import annotations

__all__ = ["rollback", "tune_text"]


def __getattr__(name: str):  # torch and the trainer load only when tuning runs
    if name in __all__:
        from . import switch

        return getattr(switch, name)
    raise AttributeError(name)
