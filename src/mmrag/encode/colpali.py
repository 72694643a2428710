"""Late-interaction (multi-vector) encoder for ColPali and ColQwen2 checkpoints.

transformers ships both: ``ColPaliForRetrieval`` (PaliGemma backbone) and
``ColQwen2ForRetrieval`` (Qwen2-VL / Qwen2.5-VL backbone), each with a processor whose
``process_images`` / ``process_queries`` build the prompts the model was trained on. The
model returns one L2-normalised vector per token; padding rows are dropped here using
the attention mask, so every page or query is a (n_tokens, dim) float32 matrix.

For the ordinary :class:`~mmrag.encode.base.Encoder` protocol (ANN candidate generation
in any store) ``encode_images`` / ``encode_text`` return the normalised mean of those
token vectors, in the space ``colpali``; exact MaxSim over the matrices reranks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ._util import first_line, model_source, threads_for, to_rgb
from .base import encoders, l2_normalize

log = logging.getLogger(__name__)

# model_type of the checkpoint's config → transformers class name
_MODELS = {"colpali": "ColPaliForRetrieval", "colqwen2": "ColQwen2ForRetrieval"}
_INPUTS = ("input_ids", "attention_mask", "pixel_values", "image_grid_thw", "token_type_ids")


@encoders.register("colpali")
class ColPaliEncoder:
    """Pages and queries as token matrices (``*_multi``) plus mean-pooled single vectors."""

    space = "colpali"
    supports_text = True
    supports_images = True

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 4, threads: int = 0,
                 **_: Any):
        source = model_source(model, threads, name="colpali encoder",
                              kind="late-interaction model",
                              needs="a ColPali/ColQwen2 hub id or local path")
        import torch
        import transformers
        from transformers import AutoConfig, AutoProcessor

        self.model_name = model
        self.device = device
        self.batch_size = max(1, int(batch_size))
        try:  # config and processor first: cheap, and they fail fast on a wrong folder
            config = AutoConfig.from_pretrained(source)
            model_type = str(getattr(config, "model_type", ""))
            if model_type not in _MODELS:
                raise ConfigError(f"model {model!r} is a {model_type or 'unknown'!r} model, "
                                  f"not ColPali/ColQwen2 ({', '.join(_MODELS)})")
            # backend="pil": transformers' default torchvision backend may not be installed.
            self._processor = AutoProcessor.from_pretrained(source, backend="pil")
            cls = getattr(transformers, _MODELS[model_type])
            # float32 on CPU: bfloat16 matmuls there are slow and less exact.
            kw = {"dtype": torch.float32} if str(device) == "cpu" else {}
            self._model = cls.from_pretrained(source, **kw)
        except ConfigError:
            raise
        except Exception as exc:  # OSError, ValueError, HF hub errors...: one line, named
            raise ConfigError(f"cannot load late-interaction model {model!r} (hub id or local "
                              f"path): {first_line(exc)}") from None
        if not (hasattr(self._processor, "process_images")
                and hasattr(self._processor, "process_queries")):
            raise ConfigError(f"model {model!r} has processor "
                              f"{type(self._processor).__name__!r}, not a ColPali/ColQwen2 one")
        self._model.eval().to(device)
        self.model_type = model_type
        self.dim = int(getattr(config, "embedding_dim", 0) or self._model.embedding_dim)
        # The Rust tokenizer is not safe to call from two threads at once.
        self._lock = threading.Lock()

    # -- multi-vector ------------------------------------------------------------------
    def _run(self, items: list[Any], process: Any) -> list[np.ndarray]:
        """Batches of ``process(items)`` through the model; padding rows dropped."""
        import torch

        out: list[np.ndarray] = []
        with torch.inference_mode(), threads_for(len(items)):
            for i in range(0, len(items), self.batch_size):
                with self._lock:
                    enc = process(items[i:i + self.batch_size])
                inputs = {k: v.to(self.device) for k, v in enc.items() if k in _INPUTS}
                emb = self._model(**inputs).embeddings.float().cpu().numpy()
                mask = enc["attention_mask"].bool().cpu().numpy()
                # left- (ColPali queries) or right-padded alike; renormalise each token
                out.extend(l2_normalize(e[m]) for e, m in zip(emb, mask, strict=True))
        return out

    def encode_images_multi(self, images: Sequence[Image.Image]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 matrix per image, L2-normalised per token."""
        images = [to_rgb(im) for im in images]
        if not images:
            return []
        return self._run(images, lambda part: self._processor.process_images(images=part))

    def encode_queries_multi(self, texts: Sequence[str]) -> list[np.ndarray]:
        """One (n_tokens, dim) float32 matrix per query (its prompt and the processor's
        query-augmentation tokens included, as the model was trained), per-token normalised."""
        texts = [str(t) for t in texts]
        if not texts:
            return []
        return self._run(texts, lambda part: self._processor.process_queries(text=part))

    # -- single vector (Encoder protocol) ----------------------------------------------
    def _pooled(self, mats: list[np.ndarray]) -> np.ndarray:
        if not mats:
            return np.zeros((0, self.dim), dtype=np.float32)
        return l2_normalize(np.stack([m.mean(axis=0) for m in mats]))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Mean of the image's token vectors, normalised: the ANN key of a page."""
        return self._pooled(self.encode_images_multi(images))

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        """Mean of the query's token vectors, normalised: the ANN probe of a query."""
        return self._pooled(self.encode_queries_multi(texts))

    def describe(self) -> dict[str, Any]:
        return {"encoder": "colpali", "model": self.model_name, "dim": self.dim,
                "model_type": self.model_type}


encoders.register("colqwen2")(ColPaliEncoder)
