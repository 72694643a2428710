"""Fault injection inside Ray workers, installed by ``worker_process_setup_hook``.

The test cluster's workers run :func:`install` at start-up. It wraps the executor's load
and embed steps: while ``$MMRAG_TEST_RAY_FAULTS/arm-<step>`` exists and
``killed-<step>`` does not, the worker that reaches the step writes ``killed-<step>`` and
kills its own process with SIGKILL, as the out-of-memory killer or a lost machine would:
once per arming, so the retry (on this or another worker) goes through.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

ENV = "MMRAG_TEST_RAY_FAULTS"


def _maybe_die(step: str) -> None:
    folder = os.environ.get(ENV)
    if not folder:
        return
    root = Path(folder)
    if (root / f"arm-{step}").exists() and not (root / f"killed-{step}").exists():
        (root / f"killed-{step}").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    from mmrag.ingest.executors import ray_data

    load = ray_data.load_family

    def load_family(*args: Any, **kwargs: Any) -> Any:
        _maybe_die("load")
        return load(*args, **kwargs)

    ray_data.load_family = load_family  # type: ignore[assignment]
    call = ray_data.Embedder.__call__

    def embed(self: Any, batch: Any) -> Any:
        _maybe_die("embed")
        return call(self, batch)

    ray_data.Embedder.__call__ = embed  # type: ignore[method-assign]
