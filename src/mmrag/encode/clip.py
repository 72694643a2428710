"""Dual (text + image) encoder for any CLIP-style checkpoint transformers can load.

``AutoModel`` resolves CLIP, SigLIP, SigLIP 2, MetaCLIP 2, ... from a hub id or a local
folder; every such model exposes ``get_text_features`` / ``get_image_features``.  Image
preprocessing uses the PIL backend of the checkpoint's own image processor (there is no
torchvision here) and runs one batch ahead on a worker thread, so it overlaps the forward
pass: torch releases the GIL inside its kernels, PIL and numpy release it while resizing
and normalising.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ._util import (
    first_line,
    input_side,
    model_source,
    shrink,
    threads_for,
    to_rgb,
    torch_dtype,
)
from .base import encoders, l2_normalize

log = logging.getLogger(__name__)

_TEXT_INPUTS = ("input_ids", "attention_mask", "position_ids")


def _pooled(out: Any) -> Any:
    """transformers 5 returns a ModelOutput whose ``pooler_output`` is the projected vector;
    older versions (and custom models) return the tensor itself."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled
    if isinstance(out, (tuple, list)) and len(out) > 1:
        return out[1]
    raise TypeError(f"cannot find embeddings in model output of type {type(out).__name__!r}")


class TextTower:
    """``encode_text`` for dual encoders whose model has ``get_text_features`` (CLIP,
    SigLIP, CLAP). Needs ``_model``, ``_tokenizer``, ``_tokenizer_lock``, ``_padding``,
    ``_max_length``, ``batch_size``, ``device`` and ``dim``."""

    _model: Any
    _tokenizer: Any
    _tokenizer_lock: threading.Lock
    _padding: bool | str
    _max_length: int
    batch_size: int
    device: str
    dim: int

    def encode_text(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = [str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode(), threads_for(len(texts)):
            for i in range(0, len(texts), self.batch_size):
                with self._tokenizer_lock:
                    enc = self._tokenizer(texts[i:i + self.batch_size], padding=self._padding,
                                          truncation=True, max_length=self._max_length,
                                          return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in enc.items() if k in _TEXT_INPUTS}
                out.append(_pooled(self._model.get_text_features(**inputs)).float().cpu())
        return l2_normalize(torch.cat(out).numpy())


@encoders.register("clip")
class CLIPEncoder(TextTower):
    """Text and images into one shared space (``clip``); the checkpoint decides the model."""

    space = "clip"
    supports_text = True
    supports_images = True

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32, threads: int = 0,
                 precision: str = "float32", **_: Any):
        source = model_source(model, threads, name="clip encoder", kind="vision model",
                              needs="a CLIP/SigLIP hub id or local path")
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

        self.model_name = model
        self.device = device
        self.batch_size = max(1, int(batch_size))
        try:  # the cheap parts first, so a folder without a processor fails fast
            self._tokenizer = AutoTokenizer.from_pretrained(source)
            # backend="pil": transformers' default torchvision backend may not be installed.
            self._processor = AutoImageProcessor.from_pretrained(source, backend="pil")
            self._model = AutoModel.from_pretrained(source)
        except Exception as exc:  # OSError, ValueError, HF hub errors...: one line, named model
            raise ConfigError(f"cannot load vision model {model!r} (hub id or local path): "
                              f"{first_line(exc)}") from None
        if not (hasattr(self._model, "get_text_features")
                and hasattr(self._model, "get_image_features")):
            raise ConfigError(f"model {model!r} ({type(self._model).__name__}) is not a dual "
                              f"text/image encoder (no get_text_features/get_image_features)")
        self._dtype = torch_dtype(precision, device)
        self._model.eval().to(device=device, dtype=self._dtype)
        config = self._model.config
        self.model_type = str(getattr(config, "model_type", ""))
        vision_cfg = getattr(config, "vision_config", None)
        text_cfg = getattr(config, "text_config", None)
        dim = getattr(config, "projection_dim", None) or getattr(vision_cfg, "hidden_size", None)
        if not dim:
            raise ConfigError(f"cannot tell the embedding size of model {model!r}")
        self.dim = int(dim)
        # SigLIP was trained on max_length-padded text and pools the last token; CLIP pools
        # at the EOS token, so padding to the longest text in the batch is exact and cheaper.
        self._padding = "max_length" if self.model_type.startswith("siglip") else "longest"
        declared = [getattr(text_cfg, "max_position_embeddings", None),
                    getattr(self._tokenizer, "model_max_length", None)]
        limits = [int(x) for x in declared if isinstance(x, int) and 0 < x < 1_000_000]
        self._max_length = min(limits) if limits else 77
        self._side = input_side(self._processor)
        self._image_params = set(inspect.signature(self._model.get_image_features).parameters)
        # A Rust tokenizer re-applies padding/truncation per call and raises "Already
        # borrowed" when two threads do it at once (e.g. concurrent search requests).
        self._tokenizer_lock = threading.Lock()

    # -- text --------------------------------------------------------------------------
    # -- images ------------------------------------------------------------------------
    def _preprocess(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        enc = self._processor(images=[shrink(to_rgb(im), self._side) for im in images],
                              return_tensors="pt")
        return {k: v for k, v in enc.items() if k in self._image_params}

    def _batches(self, images: Sequence[Image.Image]) -> list[Sequence[Image.Image]]:
        """Batch boundaries with a short first batch: nothing overlaps the first batch's
        preprocessing, so a quarter-size batch gets the forward pass going sooner."""
        n, size = len(images), self.batch_size
        first = min(n, max(1, size // 4))
        bounds = [0, first, *range(first + size, n, size), n]
        return [images[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]

    def _prefetched(self, images: Sequence[Image.Image]) -> Iterator[dict[str, Any]]:
        """Yield preprocessed batches, preparing batch i+1 while the caller runs batch i."""
        batches = self._batches(images)
        if len(batches) == 1:
            yield self._preprocess(batches[0])
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mmrag-clip-prep") as pool:
            pending = pool.submit(self._preprocess, batches[0])
            for nxt in batches[1:]:
                ready = pending.result()
                pending = pool.submit(self._preprocess, nxt)
                yield ready
            yield pending.result()

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        import torch

        images = list(images)
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        with torch.inference_mode(), threads_for(len(images)):
            for batch in self._prefetched(images):
                inputs = {k: (v.to(self.device, dtype=self._dtype) if v.is_floating_point()
                              else v.to(self.device)) for k, v in batch.items()}
                out.append(_pooled(self._model.get_image_features(**inputs)).float().cpu())
        return l2_normalize(torch.cat(out).numpy())

    def describe(self) -> dict[str, Any]:
        return {"encoder": "clip", "model": self.model_name, "dim": self.dim}


encoders.register("siglip")(CLIPEncoder)
