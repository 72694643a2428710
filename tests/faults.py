"""Run `mmrag` commands as real processes that start in milliseconds, to kill them.

A kill test needs dozens of `mmrag add/delete/optimize` processes; each fresh interpreter
spends ~1.5 s importing mmrag, so a kill at a "random moment" would mostly land in the
imports. :class:`Launcher` starts one interpreter that imports mmrag and then forks a
child per command: each child is an ordinary process running ``mmrag.cli.main`` with its
own argv, killed with SIGKILL like any other. The parent never opens an index, so the
children inherit no store threads or open files (lancedb itself is imported by each
child, when it opens the index: ~0.15 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Self

FAST_ENV = {"MMRAG_ENCODE__TEXT_ENCODER": "hashing", "MMRAG_INGEST__OCR": "never",
            "MMRAG_INGEST__VISUAL_FACETS": "false", "MMRAG_SHOW_PROGRESS": "false"}

_ZYGOTE = textwrap.dedent("""
    import json, os, sys
    # lancedb's own dependencies (~0.9 s), not lancedb: it warns that a fork may copy its
    # async runtime mid-operation
    import mmrag.cli, mmrag.index, mmrag.ingestion, mmrag.check, mmrag.store.lance
    import mmrag.encode, mmrag.ingest, pyarrow, pandas, lance_namespace  # noqa: F401
    assert "lancedb" not in sys.modules
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, arg = line.split(" ", 1)
        if cmd == "wait":
            _, status = os.waitpid(int(arg), 0)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            print(code, flush=True)
            continue
        argv, log = json.loads(arg)
        pid = os.fork()
        if pid == 0:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            sys.argv = ["mmrag", *argv]
            try:
                mmrag.cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        print(pid, flush=True)
""")


class Launcher:
    """A pre-imported mmrag that forks one process per command (see module docstring)."""

    def __init__(self, logs: Path, env: dict[str, str] | None = None):
        self.logs = logs
        self._n = 0
        self._proc = subprocess.Popen(
            [sys.executable, "-c", _ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True, env={**os.environ, **FAST_ENV, **(env or {})},
            cwd=Path(__file__).resolve().parent.parent)
        assert self._readline() == "ready"

    def _readline(self) -> str:
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError("the launcher process died")
        return line.strip()

    def _send(self, line: str) -> str:
        assert self._proc.stdin is not None
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        return self._readline()

    def start(self, *argv: str) -> tuple[int, Path]:
        """Start ``mmrag *argv``; returns its pid and the file its output goes to."""
        self._n += 1
        log = self.logs / f"{self._n:03d}-{argv[0]}.log"
        return int(self._send(f"run {json.dumps([list(argv), str(log)])}")), log

    def wait(self, pid: int) -> int:
        """Exit code of ``pid`` once it ends (negative: killed by that signal)."""
        return int(self._send(f"wait {pid}"))

    def run(self, *argv: str) -> tuple[int, str]:
        """Run ``mmrag *argv`` to completion: exit code and output."""
        pid, log = self.start(*argv)
        code = self.wait(pid)
        return code, log.read_text() if log.exists() else ""

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        self._proc.wait(timeout=30)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
