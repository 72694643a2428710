"""Helpers shared by the model-backed encoders: one-line load errors."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigError


def first_line(exc: BaseException, limit: int = 200) -> str:
    """``TypeName: first line of the message`` — HF errors run to many lines."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text[:limit]}" if text else type(exc).__name__


def resolve_model(model: str, what: str) -> str:
    """Expand ``~``; refuse a path-like name that does not exist with a clear message instead of
    the hub client's "Repo id must be in the form ..."."""
    expanded = os.path.expanduser(model)
    path_like = (os.path.isabs(expanded) or model.startswith((".", "~"))
                 or model.count("/") > 1 or "\\" in model)
    if Path(expanded).exists():
        return expanded
    if path_like:
        raise ConfigError(f"{what} {model!r} not found: no such local folder")
    return model
