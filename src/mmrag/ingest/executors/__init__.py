"""Where an add's documents are loaded and embedded: in this process (``local``) or on a
Ray cluster (``ray``, mmrag[ray]); chosen by ``ingest.executor``.

Every executor commits in the calling process through ``Ingestion._commit`` (store rows,
then catalog rows), so the crash rules of catalog.py hold whichever does the work: a
killed worker or driver loses only uncommitted groups, and a re-run skips what the
catalog already holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ...registry import Registry

if TYPE_CHECKING:
    from ...ingestion import Ingestion
    from ...types import AddReport

__all__ = ["Executor", "LocalExecutor", "executors"]


class Executor(Protocol):
    def run(self, ingestion: Ingestion, sources: Any, metadata: dict[str, Any] | None,
            show_progress: bool | None) -> AddReport: ...


executors: Registry[Executor] = Registry("executor")


@executors.register("local")
class LocalExecutor:
    """Everything in this process (with its OCR and media-writer threads)."""

    def run(self, ingestion: Ingestion, sources: Any, metadata: dict[str, Any] | None,
            show_progress: bool | None) -> AddReport:
        return ingestion.run(sources, metadata, show_progress)


@executors.register("ray")
def _ray() -> Executor:
    from .ray_data import RayExecutor  # imports ray: only when asked for

    return RayExecutor()
