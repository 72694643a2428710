"""Audio–text shared-space encoder (``clap``) for CLAP checkpoints via transformers.

CLAP (e.g. ``laion/clap-htsat-unfused``) embeds sounds and sentences into one space, so a
query like "dog barking" finds the recording, not only its transcript. It does not see
images (``supports_images`` is False); ``encode_audio`` takes mono waveforms. Weights load
from a hub id already cached or a local folder, never downloaded at run time by mmrag.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ConfigError
from ._util import first_line, model_source, threads_for, torch_dtype
from .base import encoders, l2_normalize
from .clip import TextTower, _pooled

__all__ = ["CLAPEncoder", "resample"]

log = logging.getLogger(__name__)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    """Linear-interpolation resampling; CLAP's 48 kHz mel front end smooths away the
    aliasing a proper filter would remove, and it spares a dependency."""
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    if rate == target or not len(wave):
        return wave
    n = max(1, round(len(wave) * target / rate))
    return np.interp(np.linspace(0, len(wave) - 1, n), np.arange(len(wave)), wave
                     ).astype(np.float32)


@encoders.register("clap")
class CLAPEncoder(TextTower):
    """Text and audio into one space (``clap``); the checkpoint decides the model."""

    space = "clap"
    supports_text = True
    supports_images = False
    supports_audio = True
    _padding = True

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 8, threads: int = 0,
                 precision: str = "float32", **_: Any):
        source = model_source(model, threads, name="clap encoder", kind="audio model",
                              needs="a CLAP hub id or local path")
        from transformers import AutoFeatureExtractor, AutoTokenizer, ClapModel

        self.model_name, self.device = model, device
        self.batch_size = max(1, int(batch_size))
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(source)
            self._features = AutoFeatureExtractor.from_pretrained(source)
            self._model = ClapModel.from_pretrained(source)
        except Exception as exc:  # OSError, ValueError, hub errors: one line, named model
            raise ConfigError(f"cannot load audio model {model!r} (CLAP hub id or local "
                              f"path): {first_line(exc)}") from None
        self._dtype = torch_dtype(precision, device)
        self._model.eval().to(device=device, dtype=self._dtype)
        config = self._model.config
        self.dim = int(config.projection_dim)
        self.sampling_rate = int(getattr(self._features, "sampling_rate", 48_000))
        # Fused checkpoints take 4 mel views of long clips; unfused ones one crop of 10 s.
        fusion = bool(getattr(config.audio_config, "enable_fusion", False))
        self._truncation = "fusion" if fusion else "rand_trunc"
        self._max_length = int(getattr(config.text_config, "max_position_embeddings", 512)) - 2
        self._tokenizer_lock = threading.Lock()  # Rust tokenizers are not re-entrant

    def encode_audio(self, waves: Sequence[np.ndarray], sampling_rate: int = 16_000
                     ) -> np.ndarray:
        """Mono waveforms (float, -1..1) at ``sampling_rate`` → one vector each."""
        import torch

        if not waves:
            return np.zeros((0, self.dim), dtype=np.float32)
        waves = [resample(w, sampling_rate, self.sampling_rate) for w in waves]
        out = []
        with torch.inference_mode(), threads_for(len(waves)):
            for i in range(0, len(waves), self.batch_size):
                feats = self._features(waves[i:i + self.batch_size],
                                       sampling_rate=self.sampling_rate,
                                       truncation=self._truncation, return_tensors="pt")
                inputs = {k: v.to(self.device) for k, v in feats.items()}
                inputs["input_features"] = inputs["input_features"].to(self._dtype)
                out.append(_pooled(self._model.get_audio_features(**inputs)).float().cpu())
        return l2_normalize(torch.cat(out).numpy())

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        raise ConfigError("the clap encoder embeds text and audio, not images")

    def describe(self) -> dict[str, Any]:
        return {"encoder": "clap", "model": self.model_name, "dim": self.dim}
