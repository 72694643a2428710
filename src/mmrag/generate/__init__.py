"""Generate stage: turn retrieved hits into a cited answer with a chosen generator.

``generators`` maps a name to a factory taking :class:`~mmrag.config.GenerateSettings`.
``extractive`` (offline, no model) is registered here; the provider modules (``openai``,
``anthropic``, ``gemini``, ``local``, ``gemma``) register themselves when imported, and
:func:`create_generator` imports them on first use, so their SDKs load only when asked
for. A dotted path ``package.module.factory`` plugs in a generator of your own.
"""

from __future__ import annotations

import importlib

from ..config import GenerateSettings
from ..errors import ConfigError, MissingDependencyError, UnknownBackendError
from . import extractive as _extractive  # noqa: F401  (registers "extractive")
from .answerer import Answerer, AnswerStream
from .base import Generator, Message, Part, generators

__all__ = ["PROVIDERS", "AnswerStream", "Answerer", "Generator", "Message", "Part",
           "create_generator", "generators"]

# Built-in provider modules in this package → the optional extra that installs their SDK.
PROVIDERS: dict[str, str] = {"openai": "llm", "anthropic": "llm", "gemini": "llm",
                             "local": "llm", "gemma": "gemma"}


def create_generator(settings: GenerateSettings) -> Generator:
    """Build the generator ``settings.generator`` names (a registered name, a built-in
    provider imported on demand, or a dotted path to a factory)."""
    name = settings.generator.strip()
    if name in PROVIDERS and name not in generators:
        _import_provider(name)
    generator = generators.create(name, settings)
    if not isinstance(generator, Generator):
        raise ConfigError(f"generator {name!r} built a {type(generator).__name__!r}, which "
                          "has no name/supports_images/stream(); see mmrag.generate.base")
    return generator


def _import_provider(name: str) -> None:
    module = f"{__name__}.{name}"
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:  # the provider module itself is absent from this install
            raise UnknownBackendError("generator", name, generators.names()) from exc
        raise MissingDependencyError(f"the {name!r} generator ({exc.name} is not installed)",
                                     PROVIDERS[name]) from exc
    except ImportError as exc:
        raise MissingDependencyError(f"the {name!r} generator ({exc})", PROVIDERS[name]) from exc
