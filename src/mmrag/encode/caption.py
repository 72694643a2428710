"""Image captions as text, for caption-based retrieval (issue #3).

A caption turns a photo or a figure into words the text encoders and BM25 can match.
:class:`Captioner` wraps any checkpoint ``AutoModelForImageTextToText`` resolves — BLIP,
BLIP-2, GIT, Florence-2, and chat VLMs (Qwen2-VL, SmolVLM, ...) — from a hub id or a local
folder, and decodes greedily so the same image always gets the same caption (a re-index must
not change the text it searches).

Prompts: BLIP/BLIP-2/GIT caption with no prompt (a prompt such as ``"a picture of"`` becomes
the caption's prefix); Florence-2 needs a task token (``<DETAILED_CAPTION>`` by default); a
checkpoint whose processor has a chat template gets the prompt as a user turn next to the
image, and only the newly generated tokens are decoded.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from PIL import Image

from ..errors import ConfigError
from ..registry import Registry
from ._util import first_line, input_side, model_source, shrink, threads_for, to_rgb

log = logging.getLogger(__name__)

# Checkpoints that caption nothing without a task prompt.
DEFAULT_PROMPTS = {"florence2": "<DETAILED_CAPTION>"}
CHAT_PROMPT = "Describe this image in one or two sentences."


class ImageCaptioner(Protocol):
    """Images in, one caption each out; ``describe()`` names the model for item metadata."""

    model_name: str

    def caption(self, images: Sequence[Image.Image]) -> list[str]: ...

    def describe(self) -> dict[str, Any]: ...


captioners: Registry[ImageCaptioner] = Registry("captioner")


@captioners.register("transformers")
class Captioner:
    """Captions images with a transformers image-to-text checkpoint, greedy and batched."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 8, threads: int = 0,
                 max_new_tokens: int = 30, prompt: str | None = None, **_: Any):
        source = model_source(model, threads, name="captioner", kind="caption model",
                              needs="an image-to-text hub id or local path "
                                    "(e.g. 'Salesforce/blip-image-captioning-base')")
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model_name = model
        self.device = device
        self.batch_size = max(1, int(batch_size))
        self.max_new_tokens = max(1, int(max_new_tokens))
        try:  # the processor first: a folder without one fails before the weights load
            # backend="pil": transformers' default torchvision backend may not be installed.
            self._processor = AutoProcessor.from_pretrained(source, backend="pil")
            self._model = AutoModelForImageTextToText.from_pretrained(source)
        except Exception as exc:  # OSError, ValueError (unmapped config), hub errors: one line
            raise ConfigError(f"cannot load caption model {model!r} (image-to-text hub id or "
                              f"local path): {first_line(exc)}") from None
        if not hasattr(self._model, "generate"):
            raise ConfigError(f"model {model!r} ({type(self._model).__name__}) cannot generate "
                              f"text")
        self._model.eval().to(device)
        self.model_type = str(getattr(self._model.config, "model_type", ""))
        self._chat = bool(getattr(self._processor, "chat_template", None))
        if prompt is None:
            prompt = DEFAULT_PROMPTS.get(self.model_type) or (CHAT_PROMPT if self._chat else None)
        self.prompt = prompt or None
        self._text = self._prompt_text()
        tokenizer = getattr(self._processor, "tokenizer", None)
        if tokenizer is not None and self._text is not None:
            # Decoder-only models continue the last position: pad on the left, so images
            # with different token counts (dynamic resolution) batch correctly.
            tokenizer.padding_side = "left"
        self._side = input_side(getattr(self._processor, "image_processor", None))

    def _prompt_text(self) -> str | None:
        if self.prompt is None:
            return None
        if not self._chat:
            return self.prompt
        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": self.prompt}]}]
        try:
            return str(self._processor.apply_chat_template(messages, add_generation_prompt=True,
                                                           tokenize=False))
        except Exception as exc:
            raise ConfigError(f"cannot build a prompt for caption model {self.model_name!r}: "
                              f"{first_line(exc)}") from None

    def _inputs(self, images: Sequence[Image.Image]) -> dict[str, Any]:
        images = [shrink(to_rgb(im), self._side) for im in images]
        if self._text is None:
            enc = self._processor(images=images, return_tensors="pt")
        else:
            enc = self._processor(images=images, text=[self._text] * len(images),
                                  padding=True, return_tensors="pt")
        dtype = self._model.dtype  # a bf16 checkpoint wants bf16 pixels
        return {k: (v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in enc.items() if hasattr(v, "to")}

    def caption(self, images: Sequence[Image.Image]) -> list[str]:
        """One stripped caption per image, in order; greedy, so repeatable."""
        import torch

        images = list(images)
        out: list[str] = []
        with torch.inference_mode(), threads_for(len(images)):
            for i in range(0, len(images), self.batch_size):
                inputs = self._inputs(images[i:i + self.batch_size])
                ids = self._model.generate(**inputs, do_sample=False, num_beams=1,
                                           max_new_tokens=self.max_new_tokens)
                prompt_ids = inputs.get("input_ids")
                n = 0 if prompt_ids is None else prompt_ids.shape[1]
                # Decoder-only models echo the prompt; BLIP and encoder-decoders do not.
                if (n and prompt_ids is not None and ids.shape[1] >= n
                        and torch.equal(ids[:, :n], prompt_ids)):
                    ids = ids[:, n:]
                texts = self._processor.batch_decode(ids, skip_special_tokens=True)
                out.extend(" ".join(t.split()) for t in texts)
        return out

    def describe(self) -> dict[str, Any]:
        return {"captioner": "transformers", "model": self.model_name, "prompt": self.prompt,
                "max_new_tokens": self.max_new_tokens}
