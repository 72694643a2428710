"""Feature-hashing bag-of-words: no weights, deterministic, for tests and as a fallback.

Word unigrams and bigrams are hashed (blake2b, so stable across processes unlike ``hash``)
into ``dim`` buckets with a sign bit to cancel collisions on average; counts are
sublinear (1 + log tf) and the vector is L2-normalised so inner product = cosine.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, QueryError
from .base import encoders, l2_normalize

_WORD = re.compile(r"\w+", re.UNICODE)


def _features(text: str) -> Counter[str]:
    words = _WORD.findall(text.lower())
    feats = Counter(words)
    feats.update(f"{a} {b}" for a, b in zip(words, words[1:], strict=False))
    return feats


@encoders.register("hashing")
class HashingEncoder:
    space = "text"
    supports_text = True
    supports_images = False

    def __init__(self, dim: int = 256, **_: Any):
        if dim < 2:
            raise ConfigError(f"hashing encoder dim must be >= 2, got {dim!r}")
        self.dim = int(dim)
        self._cache: dict[str, tuple[int, float]] = {}

    def _bucket(self, feat: str) -> tuple[int, float]:
        hit = self._cache.get(feat)
        if hit is None:
            h = int.from_bytes(hashlib.blake2b(feat.encode("utf-8"), digest_size=8).digest(),
                               "little")
            hit = (h >> 1) % self.dim, (1.0 if h & 1 else -1.0)
            if len(self._cache) < 1_000_000:
                self._cache[feat] = hit
        return hit

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for feat, tf in _features(text).items():
                col, sign = self._bucket(feat)
                out[row, col] += sign * (1.0 + math.log(tf))
        return l2_normalize(out)

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise QueryError("the hashing encoder cannot embed images")

    def describe(self) -> dict[str, Any]:
        return {"encoder": "hashing", "model": "blake2b-uni+bigram", "dim": self.dim}
