"""Synthetic data and store factories shared by the store contract tests."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np
import pytest

SPACES = {"text": 16, "image": 32}
N_ROWS = 200
N_DOCS = 20
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
         "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa")
RARE_ROW = 137
RARE_WORD = "xylophone"

HAVE_MILVUS = (importlib.util.find_spec("pymilvus") is not None
               and importlib.util.find_spec("milvus_lite") is not None)

BACKENDS = [
    pytest.param("lancedb", id="lancedb"),
    pytest.param("milvus", id="milvus", marks=[
        pytest.mark.milvus,
        pytest.mark.skipif(not HAVE_MILVUS, reason="pymilvus/milvus-lite not installed")]),
]


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@dataclass
class Data:
    items: list
    vectors: dict[str, np.ndarray]
    present: dict[str, np.ndarray] = field(default_factory=dict)

    def by_id(self, item_id: str):
        return next(it for it in self.items if it.id == item_id)


def make_data(seed: int = 7) -> Data:
    """200 items over 20 docs and 3 modalities; text rows have no image vector and
    every 5th row no text vector, so "absent" is exercised in both spaces."""
    from mmrag.types import Item

    rng = np.random.default_rng(seed)
    items, modalities = [], ("text", "image", "page")
    for i in range(N_ROWS):
        doc = i % N_DOCS
        modality = modalities[i % 3]
        ext = {"text": "txt", "image": "png", "page": "pdf"}[modality]
        words = " ".join(rng.choice(WORDS, size=8))
        text = f"alpha {words}" + (f" {RARE_WORD} rare" if i == RARE_ROW else "")
        items.append(Item(
            id=f"doc{doc}-{i}", doc_id=f"doc{doc}", modality=modality,
            source=f"/data/{'reports' if doc % 2 else 'photos'}/file{doc}.{ext}",
            name=f"file{doc}.{ext}", text=text, page=1 + i % 4, chunk_start=i,
            chunk_end=i + 10, section=f"s{i % 5}", created=1000.0 + i,
            bbox=(0.0, 0.0, 1.0, 0.5) if modality == "image" else None,
            mime=f"type/{ext}", size=100 + i, media=f"hash{i}" if modality != "text" else "",
            metadata={"lang": "en" if i % 2 else "de", "n": i % 3}))
    vectors = {s: unit(rng, N_ROWS, d) for s, d in SPACES.items()}
    present = {
        "image": np.array([it.modality != "text" for it in items]),
        "text": np.array([i % 5 != 0 for i in range(N_ROWS)]),
    }
    for space, mask in present.items():
        vectors[space][~mask] = np.nan
    return Data(items, vectors, present)


@pytest.fixture(scope="session")
def data() -> Data:
    return make_data()


@pytest.fixture
def open_store(tmp_path):
    """Factory ``open_store(backend, spaces=SPACES, **options)`` on one tmp location;
    stores are closed at teardown."""
    from mmrag.store import stores

    opened = []

    def factory(backend: str, spaces=None, **options):
        uri = str(tmp_path / ("milvus.db" if backend == "milvus" else "lance"))
        store = stores.create(backend, uri, "items", spaces=dict(spaces or SPACES), **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def filled(open_store, data, backend):
    store = open_store(backend)
    store.add(data.items, data.vectors)
    return store
