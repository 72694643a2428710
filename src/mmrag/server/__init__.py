"""The HTTP service (``mmrag serve``): collections, ingest jobs, search, streamed answers,
media, API keys, metrics, and an OpenAI-compatible chat endpoint.

Needs the ``server`` extra (FastAPI, uvicorn); importing this package without it raises
:class:`~mmrag.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

try:
    import fastapi  # noqa: F401
    import prometheus_client  # noqa: F401
    import python_multipart  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("mmrag serve", "server") from exc

from .app import create_app, serve, warm_up  # noqa: E402
from .keys import ApiKey, KeyStore  # noqa: E402

__all__ = ["ApiKey", "KeyStore", "create_app", "serve", "warm_up"]
