"""Wiring tests for the captioner on a tiny random-weight BLIP (see tests/conftest.py).

Random weights caption nonsense: these prove loading, batching, prompts and decoding.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmrag.encode.caption import Captioner, captioners
from mmrag.errors import ConfigError, UnknownBackendError

WORDS = {"a", "photo", "of", "the", "dog", "cat", "puppy", "red", "blue", "car"}


def _images(n: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    sizes = [(64, 48), (40, 90), (33, 33), (128, 96)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
            for w, h in (sizes[i % len(sizes)] for i in range(n))]


@pytest.fixture(scope="module")
def blip(tiny_blip_path):
    return Captioner(str(tiny_blip_path), batch_size=2, max_new_tokens=6)


def test_wiring_blip_captions_one_string_per_image(blip):
    caps = blip.caption(_images(3))
    assert len(caps) == 3 and all(isinstance(c, str) for c in caps)
    assert any(caps)  # something was decoded
    for cap in caps:
        assert cap == cap.strip() and "  " not in cap
        # skip_special_tokens: no [DEC]/[SEP]/[PAD], only words of the tiny vocabulary
        assert set(cap.split()) <= WORDS, cap


def test_wiring_blip_loads_the_right_parts(blip):
    assert type(blip._model).__name__ == "BlipForConditionalGeneration"
    assert type(blip._processor.image_processor).__name__ == "BlipImageProcessorPil"
    assert blip.model_type == "blip" and blip.prompt is None
    assert blip.describe() == {"captioner": "transformers", "model": blip.model_name,
                               "prompt": None, "max_new_tokens": 6}


def test_wiring_blip_deterministic_across_calls(blip):
    images = _images(3, seed=1)
    assert blip.caption(images) == blip.caption(images)


def test_wiring_blip_batched_equals_one_by_one(blip):
    images = _images(3, seed=2)  # batch_size=2: one full batch and one short one
    assert blip.caption(images) == [blip.caption([im])[0] for im in images]


def test_wiring_blip_empty_input(blip):
    assert blip.caption([]) == []


def test_wiring_blip_non_rgb_images_are_converted(blip):
    grey = _images(1, seed=3)[0].convert("L")
    rgba = _images(1, seed=4)[0].convert("RGBA")
    assert blip.caption([grey, rgba]) == [blip.caption([grey.convert("RGB")])[0],
                                          blip.caption([rgba.convert("RGB")])[0]]


def test_wiring_blip_max_new_tokens_bounds_the_caption(tiny_blip_path):
    short = Captioner(str(tiny_blip_path), max_new_tokens=2)
    caps = short.caption(_images(3, seed=5))
    assert all(len(c.split()) <= 2 for c in caps), caps


def test_wiring_blip_prompt_prefixes_the_caption(tiny_blip_path):
    # BLIP's conditional captioning continues the prompt and returns it with the caption.
    cap = Captioner(str(tiny_blip_path), prompt="a photo of", max_new_tokens=4)
    assert cap.prompt == "a photo of"
    out = cap.caption(_images(2, seed=6))
    assert len(out) == 2 and all(c.startswith("a photo of") for c in out), out


def test_registry_builds_the_transformers_captioner(tiny_blip_path):
    assert captioners.get("transformers") is Captioner
    assert "transformers" in captioners.names()
    made = captioners.create("transformers", str(tiny_blip_path), max_new_tokens=3)
    assert isinstance(made, Captioner) and made.max_new_tokens == 3
    with pytest.raises(UnknownBackendError, match="no-such-captioner"):
        captioners.get("no-such-captioner")


def test_missing_model_is_one_line_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not-a-model") as info:
        Captioner(str(tmp_path / "not-a-model"))
    assert "\n" not in str(info.value)


def test_uncached_hub_id_is_one_line_config_error():
    # HF_HUB_OFFLINE=1 (conftest): resolved from the local cache only, never downloaded
    with pytest.raises(ConfigError, match="'mmrag-test/no-such-captioner'") as info:
        Captioner("mmrag-test/no-such-captioner")
    assert "\n" not in str(info.value) and info.value.__suppress_context__


def test_empty_model_name_is_config_error():
    with pytest.raises(ConfigError, match="needs a model"):
        Captioner("")


def test_dual_encoder_checkpoint_is_config_error(tiny_clip_path):
    # CLIP has a processor but no image-to-text head: the auto class refuses its config.
    with pytest.raises(ConfigError, match="cannot load caption model") as info:
        Captioner(str(tiny_clip_path))
    assert "\n" not in str(info.value)


# -- BLIP-2: Q-Former + decoder-only OPT ----------------------------------------------------
@pytest.fixture(scope="module")
def blip2(tiny_blip2_path):
    return Captioner(str(tiny_blip2_path), batch_size=2, max_new_tokens=5)


def test_wiring_blip2_captions_batched_and_deterministic(blip2):
    assert type(blip2._model).__name__ == "Blip2ForConditionalGeneration"
    images = _images(3, seed=7)
    caps = blip2.caption(images)
    assert len(caps) == 3 and all(isinstance(c, str) for c in caps)
    assert all("<image>" not in c and "</s>" not in c for c in caps)  # special tokens skipped
    assert caps == blip2.caption(images)
    assert caps == [blip2.caption([im])[0] for im in images]


def test_wiring_blip2_prompt_echo_is_stripped(tiny_blip2_path):
    # A decoder-only model returns prompt + new tokens; only the new ones are decoded. The
    # byte-level tokenizer makes one token at most one character, so an echoed 10-character
    # prompt could not fit in 5 characters.
    cap = Captioner(str(tiny_blip2_path), prompt="a photo of", max_new_tokens=5)
    out = cap.caption(_images(2, seed=8))
    assert len(out) == 2 and all(len(c) <= 5 for c in out), out
