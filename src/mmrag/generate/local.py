"""A transformers model on this machine: a vision-language model (LLaVA, Qwen2-VL,
SmolVLM/Idefics3, BLIP-2, ...) or a text-only causal LM, by hub id or local folder.

Checkpoints that ``AutoModelForImageTextToText`` maps get the retrieved images as image
parts of the chat template (``supports_images`` True); any other checkpoint loads with
``AutoModelForCausalLM`` and sees the text only. Processors without a chat template
(BLIP-2, base LMs) get a plain completion prompt instead, and at most one image. Tokens
stream from ``generate()`` running in a worker thread through ``TextIteratorStreamer``.

A hub id is resolved from the local Hugging Face cache when the hub is unreachable; with
``HF_HUB_OFFLINE=1`` nothing is downloaded at all.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

from ..config import GenerateSettings
from ..errors import ConfigError, GenerationError
from .base import Message, generators

__all__ = ["LocalGenerator", "flat_prompt", "stream_generate"]

log = logging.getLogger(__name__)
_STREAM_POLL_S = 600.0  # a worker that produced nothing for this long is presumed dead


@generators.register("local")
class LocalGenerator:
    """Generates with a transformers checkpoint (hub id or folder) on CPU or ``device``."""

    name = "local"

    def __init__(self, settings: GenerateSettings, *, device: str = "cpu"):
        if not settings.model:
            raise ConfigError("the 'local' generator needs generate.model: a transformers "
                              "hub id or local folder (e.g. 'HuggingFaceTB/SmolVLM-256M-"
                              "Instruct')")
        self.model_id = settings.model
        self.device = device
        source = _resolve(settings.model)
        self._model, self._processor, self.supports_images = _load(source, settings.model)
        self._model.eval().to(device)
        self._tokenizer = getattr(self._processor, "tokenizer", None) or self._processor
        self._chat = bool(getattr(self._processor, "chat_template", None)
                          or getattr(self._tokenizer, "chat_template", None))

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        """Yield decoded text as the model generates it."""
        inputs = self._inputs(messages)
        self._check_length(inputs["input_ids"].shape[-1], max_tokens)
        yield from stream_generate(self._model, self._tokenizer, inputs, max_tokens=max_tokens,
                                   temperature=temperature, what=f"model {self.model_id!r}")

    def _inputs(self, messages: list[Message]) -> dict[str, Any]:
        try:
            enc = self._chat_inputs(messages) if self._chat else self._plain_inputs(messages)
        except Exception as exc:  # template/processor/image errors: one line naming the model
            raise GenerationError(f"cannot build the prompt for model {self.model_id!r}: "
                                  f"{_first_line(exc)}") from exc
        dtype = self._model.dtype  # a bf16 checkpoint wants bf16 pixels
        return {k: (v.to(self.device, dtype=dtype) if v.is_floating_point() else v.to(self.device))
                for k, v in enc.items() if hasattr(v, "to")}

    def _plain_inputs(self, messages: list[Message]) -> Any:
        """No chat template (BLIP-2, base LMs): a plain prompt and at most one image, which
        is all such processors take."""
        text = flat_prompt(messages)
        images = [p for m in messages for p in m.images if p.data] if self.supports_images else []
        if not images:
            return self._tokenizer(text, return_tensors="pt")
        return self._processor(images=[_pil(images[0].data)], text=text, return_tensors="pt")

    def _chat_inputs(self, messages: list[Message]) -> Any:
        """Tokenized chat template with images in place; templates that refuse a system
        turn (Gemma 2, Mistral) get the system text at the top of the first user turn."""
        from jinja2 import TemplateError

        chat = [_chat_turn(m, self.supports_images) for m in messages]
        try:
            return self._apply(chat)
        except TemplateError:
            if not chat or chat[0]["role"] != "system":
                raise
            return self._apply(_merge_system(chat))

    def _apply(self, chat: list[dict[str, Any]]) -> Any:
        if not self.supports_images:  # a tokenizer's template wants string contents
            chat = [{"role": t["role"], "content": "\n".join(
                c["text"] for c in t["content"] if c["type"] == "text")} for t in chat]
        return self._processor.apply_chat_template(chat, add_generation_prompt=True,
                                                   tokenize=True, return_dict=True,
                                                   return_tensors="pt")

    def _check_length(self, n_prompt: int, max_tokens: int) -> None:
        limit = max_positions(self._model.config)
        if limit and n_prompt + max_tokens > limit:
            raise GenerationError(
                f"input too large for model {self.model_id!r}: {n_prompt} prompt tokens + "
                f"{max_tokens} new > {limit}; lower generate.k, max_context_chars or "
                f"max_images")


def stream_generate(model: Any, tokenizer: Any, inputs: dict[str, Any], *, max_tokens: int,
                    temperature: float, what: str, threads: int = 0
                    ) -> Generator[str, None, None]:
    """Run ``model.generate`` in a thread and yield its text as it is decoded. Closing the
    iterator early (a stop string, a client that went away) stops the worker too.
    ``threads`` > 0 sets the worker's torch intra-op threads for the run."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    cancel = threading.Event()
    failure: list[BaseException] = []

    class _Cancelled(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
            return cancel.is_set()

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True,
                                    timeout=_STREAM_POLL_S)
    sampling = ({"do_sample": True, "temperature": temperature} if temperature > 0
                else {"do_sample": False})

    def work() -> None:
        before = torch.get_num_threads()
        try:
            if threads > 0:
                torch.set_num_threads(threads)
            with torch.inference_mode():
                model.generate(**inputs, **sampling, max_new_tokens=max_tokens,
                               streamer=streamer,
                               stopping_criteria=StoppingCriteriaList([_Cancelled()]))
        except BaseException as exc:  # surfaced in the consumer, never lost in the thread
            failure.append(exc)
            streamer.end()
        finally:
            if threads > 0:  # it also sets the default of threads started later: restore
                torch.set_num_threads(before)

    worker = threading.Thread(target=work, name="mmrag-generate", daemon=True)
    worker.start()
    try:
        for text in streamer:
            if failure:
                break
            if text:
                yield text
    finally:
        cancel.set()
        worker.join()
    if failure:
        raise GenerationError(f"{what} failed while generating: "
                              f"{_first_line(failure[0])}") from failure[0]


def flat_prompt(messages: list[Message]) -> str:
    """The chat as one plain text, for models without a chat template."""
    texts = [m.text.strip() for m in messages if m.text.strip()]
    return "\n\n".join(texts) + "\nAnswer:"


def max_positions(config: Any) -> int:
    """The longest sequence the model takes (its text part's, for a VLM); 0 if unknown."""
    text = getattr(config, "get_text_config", lambda: config)()
    return int(getattr(text, "max_position_embeddings", 0) or 0)


def _chat_turn(message: Message, with_images: bool) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if part.kind == "text":
            content.append({"type": "text", "text": part.text})
        elif with_images and part.data:  # a URL-only image: never fetched from here
            content.append({"type": "image", "image": _pil(part.data)})
    return {"role": message.role, "content": content}


def _merge_system(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    system, rest = chat[0], chat[1:]
    if not rest:
        return [{"role": "user", "content": system["content"]}]
    first = {"role": rest[0]["role"], "content": system["content"] + rest[0]["content"]}
    return [first, *rest[1:]]


def _pil(data: bytes) -> Any:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def _resolve(model: str) -> str:
    expanded = os.path.expanduser(model)
    if Path(expanded).exists():
        return expanded
    if os.path.isabs(expanded) or model.startswith((".", "~")) or model.count("/") > 1:
        raise ConfigError(f"local model {model!r} not found: no such folder")
    return model


def _load(source: str, name: str) -> tuple[Any, Any, bool]:
    """(model, processor or tokenizer, supports_images) for the checkpoint's kind."""
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING,
    )

    try:
        config = AutoConfig.from_pretrained(source)
        if type(config) in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING:
            # backend="pil": transformers' default torchvision backend may be absent.
            processor = AutoProcessor.from_pretrained(source, backend="pil")
            return AutoModelForImageTextToText.from_pretrained(source), processor, True
        if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
            tokenizer = AutoTokenizer.from_pretrained(source)
            return AutoModelForCausalLM.from_pretrained(source), tokenizer, False
    except Exception as exc:  # OSError, ValueError, hub errors: one line naming the model
        raise GenerationError(f"cannot load local model {name!r} (a transformers hub id or "
                              f"folder): {_first_line(exc)}") from exc
    raise GenerationError(f"local model {name!r} ({type(config).__name__}) is neither a "
                          f"vision-language nor a causal language model")


def _first_line(exc: BaseException, limit: int = 200) -> str:
    lines = str(exc).strip().splitlines()
    text = lines[0][:limit] if lines else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
