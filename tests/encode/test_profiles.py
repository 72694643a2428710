from __future__ import annotations

import pytest

from mmrag.config import Settings
from mmrag.encode import PROFILES, build_encoders, encoder_spaces
from mmrag.errors import ConfigError, UnknownBackendError


def test_profiles_listed():
    assert set(PROFILES) == {"offline", "clip", "colpali"}


def test_colpali_profile_needs_a_model():
    with pytest.raises(ConfigError, match="ColPali"):
        build_encoders(Settings(profile="colpali", encode={"text_encoder": "hashing"}))


def test_offline_profile_builds_text_and_descriptor():
    built = build_encoders(Settings(encode={"text_encoder": "hashing"}))
    assert set(built) == {"text", "visual"}
    assert encoder_spaces(built) == {"text": 256, "visual": 512}
    assert not built["visual"].supports_text and built["visual"].supports_images


def test_offline_profile_without_descriptor_is_text_only():
    built = build_encoders(Settings(encode={"text_encoder": "hashing",
                                            "image_descriptor": False}))
    assert set(built) == {"text"}


def test_offline_default_is_bundled_minilm(minilm):
    built = build_encoders(Settings())
    assert set(built) == {"text", "visual"}
    assert built["text"].describe()["model"] == "all-MiniLM-L6-v2"
    assert encoder_spaces(built)["text"] == 384


def test_clip_profile_builds_text_and_clip(tiny_clip_path):
    settings = Settings(encode={"text_encoder": "hashing", "vision_model": str(tiny_clip_path),
                               "batch_size": 4})
    assert settings.resolved_profile == "clip"
    built = build_encoders(settings)
    assert set(built) == {"text", "clip"}
    assert encoder_spaces(built) == {"text": 256, "clip": 16}
    assert built["clip"].batch_size == 4


def test_siglip_alias_through_settings(tiny_siglip_path):
    settings = Settings(profile="clip", encode={"text_encoder": "hashing",
                                                "vision_encoder": "siglip",
                                                "vision_model": str(tiny_siglip_path)})
    assert encoder_spaces(build_encoders(settings)) == {"text": 256, "clip": 32}


def test_clip_profile_without_model_is_config_error():
    with pytest.raises(ConfigError, match="needs encode.vision_model"):
        build_encoders(Settings(profile="clip"))


def test_unknown_profile_lists_choices():
    with pytest.raises(ConfigError, match="offline, clip, colpali"):
        build_encoders(Settings(profile="nonsense"))


def test_unknown_encoder_name_is_config_error():
    with pytest.raises(UnknownBackendError, match="hashing"):
        build_encoders(Settings(encode={"text_encoder": "nope"}))
