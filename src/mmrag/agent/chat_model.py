"""The configured generator as a LangChain chat model, so ``mmrag ask --agent`` runs the
ReAct agent on whatever model ``generate.generator`` names.

mmrag's generators stream text for a list of provider-neutral messages; they know
nothing of tool calling, and each provider spells it differently. :class:`GeneratorChatModel`
therefore asks for tool calls in text: the system prompt lists the tools (name, what it
does, JSON schema of its arguments) and tells the model to reply with one line
``TOOL_CALL {"name": ..., "arguments": {...}}`` to use one, anything else being the final
answer. Tool results go back as user turns (with their images, for models that read
images). One protocol for every provider (OpenAI-compatible servers, Anthropic, Gemini,
local models) is less efficient than native tool calling but needs no provider code.

The offline ``extractive`` generator only quotes sources; it cannot choose a tool.
:func:`chat_model_for` returns None for it and the caller decides what to do (``mmrag ask
--agent`` says so and answers with one routed search).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Sequence
from typing import Any

from ..config import GenerateSettings
from ..errors import MissingDependencyError
from ..generate.base import Generator, Message, Part

try:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        HumanMessage,
        SystemMessage,
        ToolMessage,
    )
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.utils.function_calling import convert_to_openai_tool
    from pydantic import ConfigDict
except ImportError as exc:  # pragma: no cover - only without the extra
    raise MissingDependencyError("the agent's chat model", "agent") from exc

__all__ = ["GeneratorChatModel", "chat_model_for", "parse_tool_calls", "NO_TOOLS"]

CALL = "TOOL_CALL"
PROTOCOL = f"""

Tools you can call:
{{tools}}

To call a tool, reply with exactly one line and nothing else:
{CALL} {{{{"name": "<tool name>", "arguments": {{{{...}}}}}}}}
You will get its result in the next message. When you can answer, reply with the answer \
itself (no {CALL} line)."""
NO_TOOLS = frozenset({"extractive"})  # generators that cannot choose a tool
_CALL_LINE = re.compile(rf"{CALL}\s*(\{{.*\}})", re.DOTALL)


class GeneratorChatModel(BaseChatModel):
    """A chat model over an mmrag :class:`~mmrag.generate.base.Generator`; tool calls are
    a ``TOOL_CALL {json}`` line (see the module docstring)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    generator: Any
    max_tokens: int = 512
    temperature: float = 0.0
    tool_specs: list[dict[str, Any]] = []

    @property
    def _llm_type(self) -> str:
        return f"mmrag-{getattr(self.generator, 'name', 'generator')}"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> GeneratorChatModel:
        specs = [convert_to_openai_tool(t)["function"] for t in tools]
        return self.model_copy(update={"tool_specs": specs})

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: Any = None, **kwargs: Any) -> ChatResult:
        prompt = self._messages(messages)
        text = "".join(self.generator.stream(prompt, max_tokens=self.max_tokens,
                                             temperature=self.temperature))
        known = {s["name"] for s in self.tool_specs}
        calls = [c for c in parse_tool_calls(text) if c["name"] in known]
        message = (AIMessage("", tool_calls=calls) if calls
                   else AIMessage(text.strip()))
        return ChatResult(generations=[ChatGeneration(message=message)])

    # -- messages --------------------------------------------------------------------
    def _messages(self, messages: list[BaseMessage]) -> list[Message]:
        out: list[Message] = []
        images = bool(getattr(self.generator, "supports_images", False))
        for m in messages:
            if isinstance(m, SystemMessage):
                out.append(Message("system", [Part.of_text(m.text + self._protocol())]))
            elif isinstance(m, ToolMessage):
                out.append(Message("user", [Part.of_text(f"Result of {m.name}:"),
                                            *_parts(m.content, images)]))
            elif isinstance(m, AIMessage):
                lines = [f"{CALL} " + json.dumps({"name": c["name"], "arguments": c["args"]})
                         for c in m.tool_calls]
                out.append(Message("assistant", [Part.of_text(
                    "\n".join(lines) if lines else m.text)]))
            elif isinstance(m, HumanMessage):
                out.append(Message("user", _parts(m.content, images)))
        if self.tool_specs and not any(m.role == "system" for m in out):
            out.insert(0, Message("system", [Part.of_text(self._protocol().strip())]))
        return out

    def _protocol(self) -> str:
        if not self.tool_specs:
            return ""
        tools = "\n".join(f"- {s['name']}: {' '.join(s.get('description', '').split())} "
                          f"Arguments (JSON schema): {json.dumps(s.get('parameters', {}))}"
                          for s in self.tool_specs)
        return PROTOCOL.format(tools=tools)


def _parts(content: Any, images: bool) -> list[Part]:
    """LangChain content (a string or content blocks) as mmrag parts."""
    if isinstance(content, str):
        return [Part.of_text(content)]
    parts: list[Part] = []
    for block in content or []:
        if isinstance(block, str):
            parts.append(Part.of_text(block))
        elif block.get("type") == "text":
            parts.append(Part.of_text(str(block.get("text", ""))))
        elif block.get("type") == "image" and images and block.get("base64"):
            parts.append(Part.of_image(base64.b64decode(block["base64"]),
                                       str(block.get("mime_type") or "image/webp")))
    return parts


def parse_tool_calls(text: str) -> list[dict[str, Any]]:
    """The ``TOOL_CALL {json}`` lines of a reply (a reply that is only such a JSON object
    counts too) as LangChain tool calls; malformed ones are ignored, so the text is then
    taken as the answer."""
    calls: list[dict[str, Any]] = []
    chunks = [m.group(1) for m in _CALL_LINE.finditer(text)] or (
        [text.strip()] if text.strip().startswith("{") else [])
    for chunk in chunks:
        for candidate in _json_prefixes(chunk):
            if isinstance(candidate, dict) and isinstance(candidate.get("name"), str):
                args = candidate.get("arguments", candidate.get("args", {}))
                if isinstance(args, dict):
                    calls.append({"name": candidate["name"], "args": args, "type": "tool_call",
                                  "id": f"call_{uuid.uuid4().hex[:12]}"})
                break
    return calls


def _json_prefixes(chunk: str) -> list[Any]:
    """The first JSON value at the start of ``chunk`` (models add text after it)."""
    try:
        value, _ = json.JSONDecoder().raw_decode(chunk.strip())
    except ValueError:
        return []
    return [value]


def chat_model_for(settings: GenerateSettings, generator: Generator | None = None
                   ) -> GeneratorChatModel | None:
    """The configured generator as a chat model, or None for one that cannot call tools
    (``extractive``)."""
    if settings.generator in NO_TOOLS:
        return None
    if generator is None:
        from ..generate import create_generator

        generator = create_generator(settings)
    return GeneratorChatModel(generator=generator, max_tokens=settings.max_tokens,
                              temperature=settings.temperature)
