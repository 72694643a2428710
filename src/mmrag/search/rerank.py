"""Second-stage rerankers: a stronger model re-scores only the fused top candidates.

Why: the first stage must be cheap over every item (BM25, and ANN over whatever vectors
ingest produced); a reranker spends model time on the ``search.rerank_candidates`` best
only. Chosen by name in ``search.rerank``:

``cross-encoder``  a sentence-transformers ``CrossEncoder`` (e.g.
                   ``cross-encoder/ms-marco-MiniLM-L6-v2``, ``BAAI/bge-reranker-base``) reads
                   query and passage together: the usual precision step, by id or folder.
``bi-encoder``     a sentence-transformers embedding model (default: the bundled MiniLM,
                   offline) embeds the candidates' text; the score is the cosine to the
                   query. It pairs with the static ``model2vec`` ingest encoder: ingest stays
                   ~40x cheaper per chunk and the contextual model reads only what a query
                   retrieved. Candidate vectors do not depend on the query, so they are
                   cached by item id and repeated or overlapping queries cost less.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..encode._util import first_line, resolve_model
from ..errors import ConfigError
from ..registry import Registry

__all__ = ["BiEncoderReranker", "CrossEncoderReranker", "Reranker", "rerankers"]


class Reranker(Protocol):
    """Scores (query, passage) pairs; higher is more relevant. Only order matters."""

    name: str

    def score(self, query: str, texts: Sequence[str],
              keys: Sequence[str] | None = None) -> np.ndarray: ...


rerankers: Registry[Reranker] = Registry("reranker")


@rerankers.register("bi-encoder")
class BiEncoderReranker:
    """Cosine between the query and each candidate text, both embedded by ``model``."""

    name = "bi-encoder"

    def __init__(self, model: str = "", cache_size: int = 20_000, **kwargs: Any):
        from ..encode.text import SentenceTransformerEncoder

        self.encoder = SentenceTransformerEncoder(model=model, **kwargs)
        self.model_name = self.encoder.model_name
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._size = cache_size
        self._lock = threading.Lock()  # the server searches from several threads

    def score(self, query: str, texts: Sequence[str],
              keys: Sequence[str] | None = None) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        vecs = self._vectors(texts, keys)
        return vecs @ self.encoder.encode_text([query])[0]

    def _vectors(self, texts: Sequence[str], keys: Sequence[str] | None) -> np.ndarray:
        """Candidate vectors: cached ones by key, the rest embedded in one batch."""
        if keys is None:
            return self.encoder.encode_text(texts)
        out = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        missing: list[int] = []
        with self._lock:
            for i, key in enumerate(keys):
                vec = self._cache.get(key)
                if vec is None:
                    missing.append(i)
                else:
                    self._cache.move_to_end(key)
                    out[i] = vec
        if missing:
            fresh = self.encoder.encode_text([texts[i] for i in missing])
            with self._lock:
                for i, vec in zip(missing, fresh, strict=True):
                    out[i] = vec
                    self._cache[keys[i]] = vec
                while len(self._cache) > self._size:
                    self._cache.popitem(last=False)
        return out

    def describe(self) -> dict[str, Any]:
        return {"reranker": self.name, "model": self.model_name}


@rerankers.register("cross-encoder")
class CrossEncoderReranker:
    """A sentence-transformers cross-encoder; ``model`` is required (no bundled one)."""

    name = "cross-encoder"

    def __init__(self, model: str = "", device: str = "cpu", batch_size: int = 32,
                 **_: Any):
        if not model:
            raise ConfigError("the cross-encoder reranker needs search.rerank_model: a "
                              "sentence-transformers CrossEncoder id or local folder")
        from sentence_transformers import CrossEncoder

        self.model_name = model
        self.batch_size = batch_size
        try:
            self._model = CrossEncoder(resolve_model(model, "cross-encoder model"),
                                       device=device)
        except ConfigError:
            raise
        except Exception as exc:  # HF raises many types; one line naming the model
            raise ConfigError(f"cannot load cross-encoder {model!r}: {first_line(exc)}"
                              ) from None

    def score(self, query: str, texts: Sequence[str],
              keys: Sequence[str] | None = None) -> np.ndarray:
        if not texts:
            return np.zeros(0, dtype=np.float32)
        scores = self._model.predict([(query, t) for t in texts], batch_size=self.batch_size,
                                     show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(len(texts), -1)[:, -1]

    def describe(self) -> dict[str, Any]:
        return {"reranker": self.name, "model": self.model_name}
