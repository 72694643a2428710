"""Wiring tests for the ``local`` generator on tiny random-weight checkpoints.

LLaVA (CLIP vision + Llama), Idefics3 (SmolVLM's architecture) and a text-only Llama are
built in code from their real config classes, with a byte-level tokenizer (no merges) and
a chat template string, saved with ``save_pretrained`` and loaded back by path, the way a
user's checkpoint is. Qwen2-VL and SmolVLM are not covered: in transformers 5.x their
processors include a video processor that needs torchvision, which is not installed here.
Random weights generate gibberish: these prove loading, prompting, image routing and
streaming, never answer quality.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from mmrag.config import GenerateSettings
from mmrag.errors import ConfigError, GenerationError
from mmrag.generate import create_generator
from mmrag.generate.base import Message, Part
from mmrag.generate.local import LocalGenerator, flat_prompt, stream_generate
from tests.factories import make_png, make_webp, one_line
from tests.generate._fake_servers import sample_chat
from tests.generate._tiny import SPECIAL, byte_tokenizer

_BODY = ("{% for m in messages %}{PRE}"
         "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
         "{% for c in m['content'] %}{% if c['type'] == 'image' %}{IMAGE}"
         "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}{POST}{% endfor %}"
         "{% if add_generation_prompt %}{GEN}{% endif %}")
LLAVA_TEMPLATE = (_BODY.replace("{PRE}", "{{ m['role'] | upper }}: ")
                  .replace("{IMAGE}", "<image>\n").replace("{POST}", "\n")
                  .replace("{GEN}", "ASSISTANT:"))
NO_SYSTEM_TEMPLATE = ("{% if messages[0]['role'] == 'system' %}"
                      "{{ raise_exception('System role not supported') }}{% endif %}"
                      + LLAVA_TEMPLATE)


def _ids(tok) -> dict[str, int]:
    return {s: tok.convert_tokens_to_ids(s) for s in SPECIAL}


def _llama(tok, max_positions: int = 1024) -> dict:
    ids = _ids(tok)
    return dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=37,
                num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=max_positions, bos_token_id=ids["<|endoftext|>"],
                eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"])


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory) -> Path:
    """CLIP vision (32 px, 8 px patches → 16 image tokens) → projector → 1-layer Llama."""
    import torch
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-llava")
    tok = byte_tokenizer()
    images = CLIPImageProcessorPil(size={"shortest_edge": 32},
                                   crop_size={"height": 32, "width": 32})
    LlavaProcessor(image_processor=images, tokenizer=tok, patch_size=8,
                   vision_feature_select_strategy="default", num_additional_image_tokens=1,
                   chat_template=LLAVA_TEMPLATE).save_pretrained(path)
    vision = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=37,
                  num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(10)
    LlavaForConditionalGeneration(LlavaConfig(
        vision_config=vision, text_config=_llama(tok), image_token_index=_ids(tok)["<image>"],
        vision_feature_select_strategy="default")).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_idefics3(tmp_path_factory) -> Path:
    """Idefics3 (SmolVLM's architecture): SigLIP-style vision 32 px / 8 px patches, pixel
    shuffle ×2 → 4 image tokens, 1-layer Llama; no image splitting."""
    import torch
    from transformers import (
        AddedToken,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import (
        Idefics3ImageProcessorPil,
    )

    path = tmp_path_factory.mktemp("tiny-idefics3")
    tok = byte_tokenizer()
    tok.add_special_tokens({"additional_special_tokens": [
        AddedToken(s, special=True, normalized=False)
        for s in ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>")]},
        replace_extra_special_tokens=False)
    images = Idefics3ImageProcessorPil(do_image_splitting=False, size={"longest_edge": 32},
                                       max_image_size={"longest_edge": 32})
    proc = Idefics3Processor(image_processor=images, tokenizer=tok, image_seq_len=4,
                             chat_template=LLAVA_TEMPLATE)
    proc.save_pretrained(path)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                  num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(11)
    Idefics3ForConditionalGeneration(Idefics3Config(
        vision_config=vision, text_config=_llama(tok), scale_factor=2,
        image_token_id=proc.image_token_id)).save_pretrained(path)
    return path


def _text_lm(path: Path, template: str | None, max_positions: int = 1024) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = byte_tokenizer()
    tok.chat_template = template
    tok.save_pretrained(path)
    torch.manual_seed(12)
    LlamaForCausalLM(LlamaConfig(**_llama(tok, max_positions))).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory) -> Path:
    return _text_lm(tmp_path_factory.mktemp("tiny-llama"), NO_SYSTEM_TEMPLATE)


def _local(path: Path) -> LocalGenerator:
    return LocalGenerator(GenerateSettings(generator="local", model=str(path)))


def _vision_calls(gen: LocalGenerator) -> list[int]:
    """Counts forward calls of the checkpoint's vision tower."""
    inner = gen._model.model
    tower = getattr(inner, "vision_tower", None) or inner.vision_model
    calls: list[int] = []
    tower.register_forward_hook(lambda *_: calls.append(1))
    return calls


def _generate(gen: LocalGenerator, chat: list[Message], n: int = 6) -> list[str]:
    return list(gen.stream(chat, max_tokens=n, temperature=0.0))


@pytest.mark.parametrize("family", ["tiny_llava", "tiny_idefics3"])
def test_wiring_vlm_image_goes_through_the_vision_tower(family, request):
    gen = _local(request.getfixturevalue(family))
    assert gen.supports_images and gen._chat
    calls = _vision_calls(gen)
    deltas = _generate(gen, sample_chat(make_webp("blue", (40, 30))))
    assert deltas and all(isinstance(d, str) and d for d in deltas)
    assert calls  # the image reached the model
    calls.clear()
    text_only = [Message("user", [Part.of_text("Question: anything?")])]
    _generate(gen, text_only)
    assert not calls  # and nothing else does


def test_wiring_llava_prompt_has_one_image_slot_per_image(tiny_llava):
    gen = _local(tiny_llava)
    chat = sample_chat(make_png("red", (32, 32)))
    chat[1].parts.append(Part.of_image(make_png("blue", (16, 16)), "image/png"))
    inputs = gen._inputs(chat)
    ids = inputs["input_ids"][0].tolist()
    assert ids.count(gen._model.config.image_token_id) == 2 * 16  # 16 patches per image
    assert inputs["pixel_values"].shape[0] == 2  # both images were processed
    prompt = gen._tokenizer.decode(ids)
    assert prompt.startswith("SYSTEM: Answer from the numbered sources only.")
    assert "Question: what rose?<image>" in prompt  # the appended image follows the question
    assert prompt.endswith("<image>\nASSISTANT:")


def test_wiring_blip2_without_template_gets_plain_prompt_and_first_image(tiny_blip2_path):
    # tiny_blip2_path: tests/conftest.py (ViT → Q-Former → OPT, byte-level GPT-2 tokenizer)
    gen = _local(tiny_blip2_path)
    assert gen.supports_images and not gen._chat
    calls: list[int] = []
    gen._model.vision_model.register_forward_hook(lambda *_: calls.append(1))
    chat = [Message("user", [Part.of_image(make_webp("red")), Part.of_text("what?"),
                             Part.of_image(make_png("blue"), "image/png")])]
    inputs = gen._inputs(chat)  # the fixture's OPT takes 64 positions: a short chat
    assert inputs["pixel_values"].shape[0] == 1  # such processors take one image
    text = "".join(_generate(gen, chat, n=4))
    assert isinstance(text, str) and calls


def test_wiring_greedy_generation_is_repeatable(tiny_llava):
    gen = _local(tiny_llava)
    chat = sample_chat(make_webp("red"))
    assert "".join(_generate(gen, chat)) == "".join(_generate(gen, chat))


def test_wiring_text_only_causal_lm_has_no_images_and_merges_system(tiny_llama):
    gen = _local(tiny_llama)
    assert not gen.supports_images
    chat = sample_chat(make_webp())
    inputs = gen._inputs(chat)  # the template refuses a system turn: merged into the user's
    prompt = gen._tokenizer.decode(inputs["input_ids"][0])
    assert prompt.startswith("USER: Answer from the numbered sources only.")
    assert "SYSTEM" not in prompt and "<image>" not in prompt
    assert "".join(_generate(gen, chat))


def test_wiring_causal_lm_without_template_gets_plain_prompt(tmp_path):
    gen = _local(_text_lm(tmp_path, None))
    assert not gen._chat
    chat = sample_chat(make_webp())
    prompt = gen._tokenizer.decode(gen._inputs(chat)["input_ids"][0])
    assert prompt == flat_prompt(chat) and prompt.endswith("Question: what rose?\nAnswer:")
    assert "".join(_generate(gen, chat))


def test_input_longer_than_the_model_takes_is_one_line_error(tmp_path):
    gen = _local(_text_lm(tmp_path, None, max_positions=64))
    chat = [Message("user", [Part.of_text("x" * 200)])]
    with pytest.raises(GenerationError) as info:
        _generate(gen, chat)
    assert "input too large" in one_line(info.value)


class _EndlessModel:
    """generate() that streams one word per step until a stopping criterion says stop."""

    def __init__(self, word_id: int):
        self.word_id, self.steps = word_id, 0

    def generate(self, *, streamer, stopping_criteria, **_):
        import torch

        streamer.put(torch.tensor([[self.word_id]]))  # the prompt (skipped)
        while not any(c(None, None) for c in stopping_criteria):
            self.steps += 1
            streamer.put(torch.tensor([self.word_id]))
        streamer.end()


def test_closing_the_stream_cancels_generate():
    tok = byte_tokenizer()
    model = _EndlessModel(tok.convert_tokens_to_ids("Ċ"))  # "\n": flushed at every step
    stream = stream_generate(model, tok, {}, max_tokens=10, temperature=0.0, what="m")
    assert next(stream) == "\n"
    stream.close()  # would wait forever if the worker were not told to stop
    assert model.steps >= 1
    assert not [t for t in threading.enumerate() if t.name == "mmrag-generate"]


def test_worker_failure_is_one_line_generation_error():
    class Broken:
        def generate(self, **_):
            raise RuntimeError("boom\nsecond line")

    with pytest.raises(GenerationError) as info:
        list(stream_generate(Broken(), byte_tokenizer(), {}, max_tokens=5, temperature=0.0,
                             what="model 'x'"))
    assert one_line(info.value) == "model 'x' failed while generating: RuntimeError: boom"


def test_missing_model_setting_and_folder_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="needs generate.model"):
        LocalGenerator(GenerateSettings(generator="local"))
    with pytest.raises(ConfigError, match="not found"):
        LocalGenerator(GenerateSettings(generator="local", model=str(tmp_path / "nope")))


def test_unloadable_checkpoint_is_one_line_generation_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(GenerationError) as info:
        _local(tmp_path)
    assert "cannot load local model" in one_line(info.value)


def test_registry_builds_it_by_name(tiny_llama):
    gen = create_generator(GenerateSettings(generator="local", model=str(tiny_llama)))
    assert isinstance(gen, LocalGenerator) and gen.name == "local"
