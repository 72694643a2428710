"""Which model and which vector column a space uses once `mmrag tune` has switched it.

A tuned text model embeds into a column of its own (``text_t1``, ``text_t2``, ...), so the
vectors of the model in use keep answering queries while the new ones are written, and
the switch is one atomic manifest write. The manifest's ``active`` section maps a space
of the profile to ``{"column": ..., "model": ...}``; ``model`` is a folder relative to the
index (so the index can move), empty for the profile's own model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Settings
from .base import Encoder, encoders


def apply_active(built: dict[str, Encoder], active: Mapping[str, Mapping[str, Any]],
                 root: Path, settings: Settings) -> dict[str, Encoder]:
    """``built`` (space → encoder) with each switched space's encoder loaded from its
    tuned model and keyed (and ``space``-named) by its column."""
    out = dict(built)
    for space, entry in active.items():
        column = str(entry.get("column") or space)
        model = str(entry.get("model") or "")
        if space not in out or (column == space and not model):
            continue
        enc = out.pop(space)
        if model:
            e = settings.encode
            enc = encoders.create(e.text_encoder, model=str(root / model), device=e.device,
                                  batch_size=e.batch_size, threads=e.threads,
                                  precision=e.precision, cache_dir=e.cache_dir)
        enc.space = column  # the store column it reads and writes
        out[column] = enc
    return out
