"""Static text embeddings (Model2Vec): a vector per token, averaged; no transformer runs.

Why: on 2 CPU cores the bundled MiniLM spends ~70 ms per dense PDF page (4–5 chunks of
~230 tokens), which caps text-layer ingest near 10 pages/s. A static model embeds the same
page in well under 1 ms. With no ``model`` set, the static model is *distilled* from the
bundled MiniLM (its vocabulary is passed through MiniLM once, ~20 s, then PCA), so it works
offline and shares MiniLM's tokenizer; the result is cached on disk. Any Model2Vec model
by hub id or folder (e.g. ``minishlab/potion-base-8M``) loads instead when one is set.

Quality is below MiniLM's (token vectors ignore context); BM25 in hybrid search covers much
of the gap. ``benchmarks/RESULTS.md`` has both on the eval sample.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError, MissingDependencyError
from ._util import first_line, resolve_model
from .base import encoders, l2_normalize
from .text import BUNDLED_MODEL, bundled_model_path, refuse_images

log = logging.getLogger(__name__)

DISTILL_DIMS = 256
_LOCK = threading.Lock()


def default_cache() -> Path:
    return Path(os.path.expanduser("~/.cache/mmrag/models"))


def distilled_path(cache_dir: str = "") -> Path:
    """Where the static model distilled from the bundled MiniLM lives."""
    root = Path(os.path.expanduser(cache_dir)) if cache_dir else default_cache()
    return root / f"model2vec-{BUNDLED_MODEL}-pca{DISTILL_DIMS}"


def _distill(folder: Path) -> None:
    """Distil once, atomically: two processes distilling at once end with one complete
    folder (the loser's ``os.replace`` fails and its copy is dropped)."""
    from model2vec.distill import distill
    from transformers.utils import logging as hf_logging

    log.info("distilling a static text model from %s (once; ~20 s)", BUNDLED_MODEL)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
    quiet = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # its load report lists pooler weights distill drops
    try:
        model = distill(model_name=bundled_model_path(), pca_dims=DISTILL_DIMS)
        model.save_pretrained(str(tmp))
        tmp.chmod(0o755)
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / "config.json").is_file():
                raise
    finally:
        hf_logging.set_verbosity(quiet)
        shutil.rmtree(tmp, ignore_errors=True)


def _load(model: str, cache_dir: str) -> Any:
    try:
        from model2vec import StaticModel
    except ImportError as exc:
        raise MissingDependencyError("the 'model2vec' text encoder", "static") from exc
    if model:
        return StaticModel.from_pretrained(resolve_model(model, "model2vec model"))
    folder = distilled_path(cache_dir)
    with _LOCK:
        if not (folder / "config.json").is_file():
            try:
                _distill(folder)
            except ImportError as exc:
                raise MissingDependencyError("distilling the static text model",
                                             "static") from exc
    return StaticModel.from_pretrained(str(folder))


@encoders.register("model2vec")
class StaticEncoder:
    """Text-only encoder; ``model`` empty = distilled from the bundled MiniLM."""

    space = "text"
    supports_text = True
    supports_images = False

    def __init__(self, model: str = "", batch_size: int = 1024, cache_dir: str = "",
                 **_: Any):
        self.model_name = model or f"{BUNDLED_MODEL} (model2vec, {DISTILL_DIMS} dims)"
        self.batch_size = max(batch_size, 256)  # a lookup and a mean: big batches are free
        try:
            self._model = _load(model, cache_dir)
        except (ConfigError, MissingDependencyError):
            raise
        except Exception as exc:  # hub/IO errors come in many types; one line naming the model
            raise ConfigError(f"cannot load model2vec model {self.model_name!r}: "
                              f"{first_line(exc)}") from None
        self.dim = int(self._model.dim)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(texts, batch_size=self.batch_size, show_progress_bar=False,
                                  use_multiprocessing=False)
        return l2_normalize(np.asarray(vecs, dtype=np.float32))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        refuse_images(self.model_name)

    def describe(self) -> dict[str, Any]:
        return {"encoder": "model2vec", "model": self.model_name, "dim": self.dim}
