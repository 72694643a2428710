"""Agents over an index: a LangGraph ReAct agent with multimodal tools, and an MCP server.

    from mmrag.agent import build_agent, run_agent
    answer = run_agent(build_agent(index, chat_model), "What changed in Q3?")

Needs the ``agent`` extra (langgraph, langchain-core, mcp). Names load lazily, so
importing this package pulls in neither LangGraph nor the MCP SDK until one is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["build_agent", "build_server", "make_tools", "run_agent", "serve"]

_HOME = {"build_agent": "react", "run_agent": "react", "make_tools": "tools",
         "build_server": "mcp", "serve": "mcp"}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(name)
