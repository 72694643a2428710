"""The encode stage's contract: an encoder maps text and/or images into one vector space.

Each encoder owns a named space (``text``, ``clip``); the store keeps one vector column
per space and search queries every space that can embed the query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

from ..registry import Registry


@runtime_checkable
class Encoder(Protocol):
    """Vectors are float32, L2-normalised (so inner product = cosine), shape (n, dim)."""

    space: str
    dim: int
    supports_text: bool
    supports_images: bool

    def encode_text(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]:
        """Model identity saved in the index manifest to refuse mismatched reopen."""
        ...


encoders: Registry[Encoder] = Registry("encoder")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
