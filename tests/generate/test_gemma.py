"""The ``gemma`` generator: prompt rendering and stop handling (no model), and the real
bundled Gemma 3 270M GGUF loading offline and generating (slow: the first load converts
the GGUF, minutes on a small CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmrag.config import GenerateSettings
from mmrag.errors import GenerationError
from mmrag.generate import gemma as gemma_module
from mmrag.generate.base import Message, Part, generators
from mmrag.generate.gemma import (
    EXAMPLE,
    INSTRUCTION,
    STOPS,
    GemmaGenerator,
    completion_prompt,
    gguf_path,
    until_stop,
)
from tests.factories import make_webp, one_line
from tests.generate._fake_servers import sample_chat
from tests.generate._tiny import SPECIAL, byte_tokenizer


def test_prompt_lists_sources_then_question_and_drops_images():
    prompt = completion_prompt(sample_chat(make_webp()))
    assert prompt.startswith(f"{INSTRUCTION}\n\n{EXAMPLE}\n\n")
    assert prompt.endswith("Sources:\n[1] chart.png, page 1: Revenue rose in Q3.\n"
                           "Question: what rose?\nAnswer:")
    assert "Answer from the numbered sources only." not in prompt  # the chat system prompt


def test_prompt_of_a_free_form_chat_uses_its_text():
    chat = [Message("system", [Part.of_text("be brief")]),
            Message("user", [Part.of_text("Paris is in France.\n\nWhere is Paris?")])]
    prompt = completion_prompt(chat)
    assert "Sources:\nParis is in France. Where is Paris?\n" in prompt
    assert "be brief" not in prompt and prompt.endswith("Answer:")


@pytest.mark.parametrize("deltas,expected", [
    (["It rose", " [1].\n", "\nQuestion: next"], "It rose [1]."),
    (["\n\n  It", " rose.\nQuest", "ion: x"], "It rose."),  # leading blank lines skipped
    (["a\n", "b", "\n"], "a\nb"),  # a held-back "\n" is released when no stop follows
    (["Done.", "\nSources:\n[9]"], "Done."),
    (["\n", "\n"], ""),
    (["In 1889.\n[3] louvre.txt"], "In 1889."),  # the model starts listing sources
])
def test_until_stop_cuts_at_blank_line_or_next_question(deltas, expected):
    out = list(until_stop(iter(deltas), STOPS))
    assert "".join(out) == expected and all(out)


def test_model_setting_must_be_a_gguf_file(tmp_path):
    with pytest.raises(GenerationError) as info:
        gguf_path(str(tmp_path / "model.bin"))
    assert "not a .gguf file" in one_line(info.value)
    own = tmp_path / "mine.gguf"
    own.write_bytes(b"GGUF")
    assert gguf_path(str(own)) == own


def test_registered_as_small_text_only_generator():
    assert generators.get("gemma") is GemmaGenerator
    assert GemmaGenerator.supports_images is False and GemmaGenerator.name == "gemma"
    assert "small and text-only" in " ".join(gemma_module.__doc__.split())


def _tiny_gemma3(max_positions: int) -> tuple:
    """A random-weight 1-layer Gemma 3 text model and the byte-level test tokenizer."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    tok = byte_tokenizer()
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIAL}
    torch.manual_seed(20)
    model = Gemma3ForCausalLM(Gemma3TextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=1, head_dim=8,
        max_position_embeddings=max_positions, bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"]))
    return model.eval(), tok


@pytest.fixture
def tiny_gemma(monkeypatch, tmp_path):
    """A GemmaGenerator whose loader returns a tiny random Gemma 3 (wiring, not quality)."""
    def make(max_positions: int = 4096) -> GemmaGenerator:
        loaded = _tiny_gemma3(max_positions)
        monkeypatch.setattr(gemma_module, "load", lambda path: loaded)
        fake = tmp_path / "tiny.gguf"
        fake.write_bytes(b"GGUF")
        return GemmaGenerator(GenerateSettings(generator="gemma", model=str(fake)))
    return make


def test_wiring_tiny_random_gemma3_streams_the_completion(tiny_gemma):
    gen = tiny_gemma()
    seen: list[str] = []

    def record(_module, _args, kwargs):  # the first forward is the whole prompt
        seen.append(gen._tokenizer.decode(kwargs["input_ids"][0]))

    gen._model.register_forward_pre_hook(record, with_kwargs=True)
    deltas = list(gen.stream(sample_chat(make_webp()), max_tokens=8, temperature=0.0))
    assert all(isinstance(d, str) and d for d in deltas)
    text = "".join(deltas)
    assert len(text) <= 8  # byte-level: a token is at most one character
    assert "\n\n" not in text and "Question:" not in text
    assert seen[0] == completion_prompt(sample_chat(make_webp()))  # the prompt the model got


def test_input_longer_than_the_model_takes_is_one_line_error(tiny_gemma):
    gen = tiny_gemma(max_positions=128)
    with pytest.raises(GenerationError) as info:
        list(gen.stream(sample_chat(make_webp()), max_tokens=8, temperature=0.0))
    assert "input too large" in one_line(info.value)


@pytest.mark.slow
def test_bundled_gemma_loads_offline_and_answers():
    gen = GemmaGenerator(GenerateSettings(generator="gemma"))
    assert Path(gen.gguf).name == "gemma-3-270m-q4_k_m.gguf"
    chat = [Message("user", [
        Part.of_text("[1] eiffel.txt, page 1:\nThe Eiffel Tower in Paris was completed "
                     "in 1889."),
        Part.of_text("Question: When was the Eiffel Tower completed?")])]
    text = "".join(gen.stream(chat, max_tokens=24, temperature=0.0))
    assert text.strip()
    assert "\n\n" not in text and "Question:" not in text  # cut at the stop strings
