"""Fixtures shared by every test folder: tiny random-weight CLIP/SigLIP checkpoints.

Built in code, never downloaded, saved with ``save_pretrained`` and loaded back through
``CLIPEncoder(path)``, the same path a user's checkpoint takes. Random weights prove
wiring, never quality.
"""

from __future__ import annotations

import os

# Nothing in these tests may reach the Hugging Face Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

WORDS = ["a", "photo", "of", "the", "dog", "cat", "puppy", "red", "blue", "car"]
TEXT_LEN = 16


def _tokenizer():
    from transformers import CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for word in WORDS:
        vocab[word + "</w>"] = len(vocab)
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789":
        vocab[ch] = len(vocab)
        vocab[ch + "</w>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=TEXT_LEN)


def _tower_configs(vocab_size: int) -> tuple[dict, dict]:
    text = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=TEXT_LEN,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                  num_attention_heads=4, image_size=32, patch_size=8)
    return text, vision


@pytest.fixture(scope="session")
def tiny_clip_path(tmp_path_factory) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-clip")
    tok = _tokenizer()
    text, vision = _tower_configs(len(tok))
    torch.manual_seed(0)
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
              ).save_pretrained(path)
    tok.save_pretrained(path)
    CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
                          ).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_siglip_path(tmp_path_factory) -> Path:
    import torch
    from transformers import SiglipConfig, SiglipModel
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-siglip")
    tok = _tokenizer()
    text, vision = _tower_configs(len(tok))
    torch.manual_seed(1)
    SiglipModel(SiglipConfig(text_config=text, vision_config=vision)).save_pretrained(path)
    tok.save_pretrained(path)
    SiglipImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_siglip2_path(tmp_path_factory) -> Path:
    """SigLIP 2 (NaFlex): the processor also emits pixel_attention_mask and spatial_shapes."""
    import torch
    from transformers import Siglip2Config, Siglip2Model
    from transformers.models.siglip2.image_processing_pil_siglip2 import Siglip2ImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-siglip2")
    tok = _tokenizer()
    text, vision = _tower_configs(len(tok))
    vision = {k: v for k, v in vision.items() if k != "image_size"} | {"num_patches": 16}
    torch.manual_seed(2)
    Siglip2Model(Siglip2Config(text_config=text, vision_config=vision)).save_pretrained(path)
    tok.save_pretrained(path)
    Siglip2ImageProcessorPil(patch_size=8, max_num_patches=16).save_pretrained(path)
    return path
