"""Encode stage: text and images into named vector spaces (see ``base.py``)."""

from __future__ import annotations

from . import clap, clip, colpali, descriptor, hashing, static, text  # noqa: F401  (importing registers the backends)
from .base import Encoder, encoders, l2_normalize
from .clip import CLIPEncoder
from .colpali import ColPaliEncoder
from .descriptor import DescriptorEncoder
from .hashing import HashingEncoder
from .profiles import PROFILES, build_encoders, encoder_spaces
from .static import StaticEncoder
from .text import SentenceTransformerEncoder

__all__ = [
    "CLIPEncoder",
    "ColPaliEncoder",
    "DescriptorEncoder",
    "Encoder",
    "HashingEncoder",
    "PROFILES",
    "SentenceTransformerEncoder",
    "StaticEncoder",
    "build_encoders",
    "encoder_spaces",
    "encoders",
    "l2_normalize",
]
