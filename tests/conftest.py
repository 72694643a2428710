"""Fixtures shared by every test folder: tiny random-weight CLIP/SigLIP checkpoints.

Built in code, never downloaded, saved with ``save_pretrained`` and loaded back through
``CLIPEncoder(path)``, the same path a user's checkpoint takes. Random weights prove
wiring, never quality.
"""

from __future__ import annotations

import os
import tempfile

# Nothing in these tests may reach the Hugging Face Hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# OCR results are cached by content; keep the tests' cache out of the user's home.
os.environ.setdefault("MMRAG_INGEST__OCR_CACHE",
                      os.path.join(tempfile.mkdtemp(prefix="mmrag-test-ocr-")))

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
        # setdefault: "a</w>" is a word already; a second id for it gave "b" the same id,
        # and which of the two the tokenizer kept varied from run to run
        vocab.setdefault(ch + "</w>", len(vocab))
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


# -- tiny ColPali / ColQwen2 (late interaction) ---------------------------------------------
COLPALI_DIM = 16


@pytest.fixture(scope="session")
def tiny_colpali_path(tmp_path_factory) -> Path:
    """PaliGemma backbone (SigLIP vision 32 px / 8 px patches = 16 image tokens, 1-layer
    Gemma) + a character-level GemmaTokenizer; the processor adds ``<image>`` itself."""
    import torch
    from transformers import ColPaliConfig, ColPaliForRetrieval, ColPaliProcessor, GemmaTokenizer
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-colpali")
    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4, "▁": 5}
    for ch in "abcdefghijklmnopqrstuvwxyz0123456789.:?\n":
        vocab[ch] = len(vocab)
        vocab["▁" + ch] = len(vocab)
    tok = GemmaTokenizer(vocab=vocab, merges=[])
    images = SiglipImageProcessorPil(size={"height": 32, "width": 32}, image_seq_length=16)
    proc = ColPaliProcessor(image_processor=images, tokenizer=tok)  # adds <image>, <locNNNN>
    vocab_size = len(tok)
    vlm = dict(model_type="paligemma", image_token_index=proc.image_token_id,
               vocab_size=vocab_size, projection_dim=32, hidden_size=32,
               vision_config=dict(model_type="siglip_vision_model", hidden_size=32,
                                  intermediate_size=37, num_hidden_layers=1,
                                  num_attention_heads=4, image_size=32, patch_size=8,
                                  projection_dim=32),
               text_config=dict(model_type="gemma", vocab_size=vocab_size, hidden_size=32,
                                intermediate_size=37, num_hidden_layers=1,
                                num_attention_heads=4, num_key_value_heads=1, head_dim=8))
    torch.manual_seed(3)
    ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, embedding_dim=COLPALI_DIM)
                        ).save_pretrained(path)
    proc.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_colqwen2_path(tmp_path_factory) -> Path:
    """Qwen2-VL backbone (4 px patches, 2×2 merge, 16²–32² px dynamic resolution, so pages of
    different sizes get different token counts) + a byte-level Qwen2Tokenizer, no merges."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        AddedToken,
        ColQwen2Config,
        ColQwen2ForRetrieval,
        ColQwen2Processor,
        Qwen2Tokenizer,
    )
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    path = tmp_path_factory.mktemp("tiny-colqwen2")
    tok = Qwen2Tokenizer(vocab={c: i for i, c in enumerate(sorted(ByteLevel.alphabet()))},
                         merges=[])
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
               "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok.add_special_tokens({"additional_special_tokens": [
        AddedToken(s, special=True, normalized=False) for s in special]})
    ids = {s: tok.convert_tokens_to_ids(s) for s in special}
    images = Qwen2VLImageProcessorPil(patch_size=4, temporal_patch_size=2, merge_size=2,
                                      min_pixels=16 * 16, max_pixels=32 * 32)
    proc = ColQwen2Processor(image_processor=images, tokenizer=tok)
    vlm = dict(model_type="qwen2_vl", image_token_id=ids["<|image_pad|>"],
               video_token_id=ids["<|video_pad|>"],
               vision_start_token_id=ids["<|vision_start|>"],
               vision_end_token_id=ids["<|vision_end|>"],
               vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=4,
                                  patch_size=4, spatial_merge_size=2, temporal_patch_size=2,
                                  mlp_ratio=2),
               text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37,
                                num_hidden_layers=1, num_attention_heads=4,
                                num_key_value_heads=2,
                                # mrope sections must sum to head_dim / 2 = 4
                                rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                                 "mrope_section": [2, 1, 1]},
                                bos_token_id=ids["<|endoftext|>"],
                                eos_token_id=ids["<|im_end|>"],
                                pad_token_id=ids["<|endoftext|>"]))
    torch.manual_seed(4)
    ColQwen2ForRetrieval(ColQwen2Config(vlm_config=vlm, embedding_dim=COLPALI_DIM)
                         ).save_pretrained(path)
    proc.save_pretrained(path)
    return path


# -- tiny BLIP (image captioning) ------------------------------------------------------------
def _blip_tokenizer():
    """A word-level BertTokenizer plus BLIP's ``[DEC]`` bos token, as the real checkpoints
    have it: the decoder starts at ``[DEC]`` and stops at ``[SEP]``."""
    from transformers import BertTokenizer

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])}
    for word in WORDS:
        vocab[word] = len(vocab)
    tok = BertTokenizer(vocab=vocab, model_max_length=TEXT_LEN)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    return tok


@pytest.fixture(scope="session")
def tiny_blip_path(tmp_path_factory) -> Path:
    """BLIP captioner: ViT 32 px / 8 px patches, 2-layer BERT decoder, random weights."""
    import torch
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-blip")
    tok = _blip_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("[PAD]", "[SEP]", "[DEC]")}
    text = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=64, encoder_hidden_size=32,
                bos_token_id=ids["[DEC]"], sep_token_id=ids["[SEP]"],
                eos_token_id=ids["[SEP]"], pad_token_id=ids["[PAD]"])
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                  num_attention_heads=4, image_size=32, patch_size=8)
    torch.manual_seed(5)
    BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision,
                                            projection_dim=16)).save_pretrained(path)
    images = BlipImageProcessorPil(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=images, tokenizer=tok).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_blip2_path(tmp_path_factory) -> Path:
    """BLIP-2: ViT 32 px / 8 px patches → 1-layer Q-Former (4 queries) → 1-layer OPT, with a
    byte-level GPT-2 tokenizer (no merges); the processor prepends the ``<image>`` tokens."""
    import torch
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        GPT2Tokenizer,
    )
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    path = tmp_path_factory.mktemp("tiny-blip2")
    vocab = {"<pad>": 0, "</s>": 1}
    for ch in sorted(ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = GPT2Tokenizer(vocab=vocab, merges=[], bos_token="</s>", eos_token="</s>",
                        pad_token="<pad>", unk_token="</s>")
    images = BlipImageProcessorPil(size={"height": 32, "width": 32})
    proc = Blip2Processor(image_processor=images, tokenizer=tok, num_query_tokens=4)
    image_id = tok.convert_tokens_to_ids("<image>")
    vision = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                  num_attention_heads=4, image_size=32, patch_size=8)
    qformer = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                   num_attention_heads=4, encoder_hidden_size=32)
    text = dict(model_type="opt", vocab_size=len(tok), hidden_size=32, ffn_dim=37,
                num_hidden_layers=1, num_attention_heads=4, word_embed_proj_dim=32,
                max_position_embeddings=64, bos_token_id=1, eos_token_id=1, pad_token_id=0)
    torch.manual_seed(6)
    Blip2ForConditionalGeneration(Blip2Config(vision_config=vision, qformer_config=qformer,
                                              text_config=text, num_query_tokens=4,
                                              image_token_index=image_id)).save_pretrained(path)
    proc.save_pretrained(path)
    return path
