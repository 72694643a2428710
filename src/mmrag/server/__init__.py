"""The HTTP service (``mmrag serve``): an OpenAI-compatible chat endpoint over an index.

Needs the ``server`` extra (FastAPI, uvicorn); importing this package without it raises
:class:`~mmrag.errors.MissingDependencyError` naming the extra.
"""

from __future__ import annotations

from ..errors import MissingDependencyError

try:
    import fastapi  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError("mmrag serve", "server") from exc

from .app import create_app, serve, warm_up  # noqa: E402

__all__ = ["create_app", "serve", "warm_up"]
