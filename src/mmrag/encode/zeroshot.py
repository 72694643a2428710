"""Zero-shot labels from the ``clip`` space's CLIP/SigLIP model: "is this an invoice, a
receipt, a chart or a photo?" without training a classifier.

Prompt ensembling (Radford et al. 2021, sec. 3.1.4): a label is not embedded as the bare
word but as the mean of its normalised text vectors over several templates ("a photo of a
{}.", "a scan of a {}.", ...), renormalised, which averages out the phrasing and the
word's other senses.

Calibration against neutral prompts: a label's raw score says little on its own (some
words score high on every image) and a softmax over the user's labels always crowns one,
even for an image that is none of them. So each image is also scored against a neutral
class, the same templates filled with generic words ("thing", "object", ...). With the
model's own temperature ``s`` (and SigLIP's bias ``b``), ``z_l = s·cos(x, t_l) + b`` and
``z_0`` the neutral class's:

- CLIP (trained with a softmax): ``p_l = softmax(z_1..z_L, z_0)_l``, so a label must take
  that share of the probability from the other labels *and* from "just a thing";
- SigLIP (trained with independent sigmoids): ``p_l = σ(z_l − z_0)``, the chance that the
  label's prompts beat the neutral ones (the bias cancels), one label independent of the
  others, so an image may carry several.

A label becomes a tag when ``p_l ≥ threshold``. Everything is deterministic: fixed
templates, no sampling. With random-weight test models this proves wiring only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image

from ..config import Settings
from ..errors import ConfigError
from .base import Encoder, encoders, l2_normalize

TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.", "a scan of a {}.", "a picture of a {}.", "an image of a {}.",
    "a document showing a {}.", "a close-up photo of a {}.", "a screenshot of a {}.",
    "a drawing of a {}.")
NEUTRAL: tuple[str, ...] = ("thing", "object", "something", "item")
SPACE = "clip"
NEEDS_CLIP = ("zero-shot labels need the `clip` profile: set encode.vision_model to a "
              "CLIP/SigLIP checkpoint (hub id or local path); the offline profile has no "
              "model that reads images and words in one space")


def parse_labels(value: str | Sequence[str]) -> list[str]:
    """Labels from ``"invoice, receipt,chart"`` or a list: stripped, de-duplicated in
    order; none at all is an error."""
    raw = value.split(",") if isinstance(value, str) else list(value)
    labels = list(dict.fromkeys(" ".join(str(v).split()) for v in raw))
    labels = [v for v in labels if v]
    if not labels:
        raise ConfigError(f"no labels given in {value!r}; list them comma-separated, e.g. "
                          f"'invoice,receipt,chart,photo'")
    return labels


def zero_shot_encoder(encoders: Mapping[str, Encoder]) -> Encoder:
    """The index's CLIP/SigLIP encoder, or the one-line error saying labels need one."""
    enc = encoders.get(SPACE)
    if enc is None or not (enc.supports_images and enc.supports_text):
        raise ConfigError(NEEDS_CLIP)
    return enc


def encoder_for(settings: Settings) -> Encoder:
    """Only the CLIP/SigLIP encoder of ``settings`` (``mmrag classify`` needs no text
    model or store), or the one-line error of an offline profile."""
    from .profiles import _common

    if settings.resolved_profile != "clip" or not settings.encode.vision_model:
        raise ConfigError(NEEDS_CLIP)
    enc = settings.encode
    return encoders.create(enc.vision_encoder, model=enc.vision_model, **_common(settings))


class ZeroShot:
    """Scores images against ``labels`` with a dual encoder (see the module docstring)."""

    def __init__(self, encoder: Encoder, labels: str | Sequence[str],
                 threshold: float = 0.5, templates: Sequence[str] = TEMPLATES):
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError(f"tag threshold must be within 0..1, got {threshold!r}")
        self.encoder = encoder
        self.labels = parse_labels(labels)
        self.threshold = float(threshold)
        self.templates = tuple(templates)
        self._label_vecs = self._ensemble(self.labels)
        self._neutral = l2_normalize(self._ensemble(NEUTRAL).mean(axis=0, keepdims=True))
        self.scale, self.bias, self.sigmoid = logit_params(encoder)

    def _ensemble(self, words: Sequence[str]) -> np.ndarray:
        prompts = [t.format(w) for w in words for t in self.templates]
        vecs = self.encoder.encode_text(prompts).reshape(len(words), len(self.templates), -1)
        return l2_normalize(vecs.mean(axis=1))

    def probabilities(self, image_vecs: np.ndarray) -> np.ndarray:
        """(images × labels) calibrated probabilities for L2-normalised image vectors."""
        x = np.asarray(image_vecs, dtype=np.float64)
        z = self.scale * (x @ self._label_vecs.T) + self.bias
        z0 = self.scale * (x @ self._neutral.T) + self.bias
        if self.sigmoid:
            return 1.0 / (1.0 + np.exp(-(z - z0)))
        logits = np.concatenate([z, z0], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True))[:, :len(self.labels)]

    def tags(self, image_vecs: np.ndarray) -> list[list[str]]:
        """The labels at or above the threshold for each image, most probable first."""
        out = []
        for row in self.probabilities(image_vecs):
            order = np.argsort(-row, kind="stable")
            out.append([self.labels[i] for i in order if row[i] >= self.threshold])
        return out

    def classify(self, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
        """Per image: every label's probability (most probable first) and its tags."""
        probs = self.probabilities(self.encoder.encode_images(images))
        results = []
        for row in probs:
            order = np.argsort(-row, kind="stable")
            results.append({"labels": {self.labels[i]: round(float(row[i]), 4)
                                       for i in order},
                            "tags": [self.labels[i] for i in order
                                     if row[i] >= self.threshold]})
        return results


def logit_params(encoder: Encoder) -> tuple[float, float, bool]:
    """(temperature, bias, sigmoid?) of the encoder's model: ``exp(logit_scale)`` and
    SigLIP's ``logit_bias``; CLIP's published 100 (and no bias) when the model has none."""
    model = getattr(encoder, "_model", None)
    kind = str(getattr(encoder, "model_type", ""))
    scale, bias = 100.0, 0.0
    if model is not None and getattr(model, "logit_scale", None) is not None:
        scale = float(model.logit_scale.detach().float().exp().reshape(-1)[0])
    if model is not None and getattr(model, "logit_bias", None) is not None:
        bias = float(model.logit_bias.detach().float().reshape(-1)[0])
    return scale, bias, kind.startswith("siglip")
