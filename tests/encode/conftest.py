"""Fixtures for the encode tests; the tiny CLIP/SigLIP checkpoints live in tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def minilm():
    from mmrag.encode.text import SentenceTransformerEncoder

    return SentenceTransformerEncoder()
