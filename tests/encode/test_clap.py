"""Wiring tests of the ``clap`` encoder on a tiny random-weight CLAP built from config
classes: they check loading, shapes and normalisation, not retrieval quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mmrag.encode import encoders
from mmrag.encode.clap import CLAPEncoder, resample
from mmrag.errors import ConfigError

WORDS = ["a", "dog", "barking", "bird", "singing", "rain", "on", "roof"]


@pytest.fixture(scope="module")
def tiny_clap_path(tmp_path_factory) -> Path:
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for word in WORDS:
        vocab[word + "</w>"] = len(vocab)
    for ch in "abcdefghijklmnopqrstuvwxyz":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=16)
    text = dict(vocab_size=len(vocab) + 2, hidden_size=32, intermediate_size=37,
                num_hidden_layers=1, num_attention_heads=4, max_position_embeddings=20,
                pad_token_id=1, bos_token_id=0, eos_token_id=1)
    # spec_size 256 over 64 mel bins is what the feature extractor's 10 s crop needs.
    audio = dict(patch_embeds_hidden_size=16, hidden_size=32, depths=[1, 1],
                 num_attention_heads=[2, 2], window_size=8, spec_size=256, num_mel_bins=64,
                 enable_fusion=False)
    path = tmp_path_factory.mktemp("tiny-clap")
    ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=16)
              ).save_pretrained(path)
    tokenizer.save_pretrained(path)
    ClapFeatureExtractor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny(tiny_clap_path) -> CLAPEncoder:
    return encoders.create("clap", model=str(tiny_clap_path))


def _tone(freq: float, seconds: float = 1.0, rate: int = 16_000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_clap_encodes_audio_and_text_wiring_not_quality(tiny):
    audio = tiny.encode_audio([_tone(440), _tone(3000)], sampling_rate=16_000)
    text = tiny.encode_text(["a dog barking", "rain on roof"])
    assert audio.shape == (2, 16) and text.shape == (2, 16)
    assert audio.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(audio[0], audio[1])  # different sounds, different vectors
    assert not np.allclose(text[0], text[1])
    assert tiny.describe() == {"encoder": "clap", "model": tiny.model_name, "dim": 16}


def test_clap_is_registered_and_text_audio_only(tiny):
    assert tiny.supports_text and not tiny.supports_images
    with pytest.raises(ConfigError, match="not images"):
        tiny.encode_images([])


def test_clap_empty_batches_have_the_right_shape(tiny):
    assert tiny.encode_audio([]).shape == (0, 16)
    assert tiny.encode_text([]).shape == (0, 16)


def test_missing_clap_model_is_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found") as info:
        encoders.create("clap", model=str(tmp_path / "no-such-clap"))
    assert "\n" not in str(info.value)


def test_empty_clap_model_name_is_config_error():
    with pytest.raises(ConfigError, match="needs a model"):
        encoders.create("clap", model="")


def test_resample_keeps_duration_and_shape():
    wave = _tone(440, seconds=1.0, rate=16_000)
    up = resample(wave, 16_000, 48_000)
    assert len(up) == 48_000
    assert abs(float(np.abs(up).max()) - float(np.abs(wave).max())) < 0.01
    assert np.array_equal(resample(wave, 16_000, 16_000), wave)
