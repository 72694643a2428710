"""Profiles pick which encoders an index uses: one per vector space.

``offline``  the bundled MiniLM for text, plus a classic image descriptor (no learned
             weights) so image queries find visually similar images and near-duplicates.
``clip``     the text encoder plus a CLIP/SigLIP dual encoder that embeds images and text.
``colpali``  the text encoder plus a ColPali/ColQwen2 late-interaction model: page images
             keep one vector per token, searched by MaxSim over pooled-vector candidates.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..config import Settings
from ..errors import ConfigError
from .base import Encoder, encoders

PROFILES: tuple[str, ...] = ("offline", "clip", "colpali")
VISION_ENCODER = {"clip": None, "colpali": "colpali"}


def _common(settings: Settings) -> dict[str, object]:
    enc = settings.encode
    return {"device": enc.device, "batch_size": enc.batch_size, "threads": enc.threads,
            "precision": enc.precision, "cache_dir": enc.cache_dir}


def build_encoders(settings: Settings) -> dict[str, Encoder]:
    """Build the encoders of ``settings.resolved_profile``, keyed by their space name."""
    profile = settings.resolved_profile
    if profile not in PROFILES:
        raise ConfigError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    enc = settings.encode
    if profile in VISION_ENCODER and not enc.vision_model:
        kind = "CLIP/SigLIP" if profile == "clip" else "ColPali/ColQwen2"
        raise ConfigError(f"profile {profile!r} needs encode.vision_model "
                          f"(a {kind} hub id or local path)")
    text = encoders.create(enc.text_encoder, model=enc.text_model, **_common(settings))
    built: dict[str, Encoder] = {text.space: text}
    if profile in VISION_ENCODER:
        name = VISION_ENCODER[profile] or enc.vision_encoder
        vision = encoders.create(name, model=enc.vision_model, **_common(settings))
        if vision.space in built:
            raise ConfigError(f"vision encoder {enc.vision_encoder!r} uses space "
                              f"{vision.space!r}, already taken by the text encoder")
        built[vision.space] = vision
    elif enc.image_descriptor:
        descriptor = encoders.create("descriptor")
        built[descriptor.space] = descriptor
    if enc.audio_model:  # any profile: audio files gain clips in an audio–text space
        audio = encoders.create("clap", model=enc.audio_model, **_common(settings))
        built[audio.space] = audio
    return built


def encoder_spaces(built: Mapping[str, Encoder]) -> dict[str, int]:
    """Space name → vector width, what the store needs to lay out its columns."""
    return {space: int(encoder.dim) for space, encoder in built.items()}
