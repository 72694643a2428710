"""Collections and their documents: list, create, delete; list and delete documents.

    GET    /collections                          read   {"collections": [{name, items,
                                                         documents, profile}]}
    GET    /collections/{c}                      read   one such object
    PUT    /collections/{c}   {"profile"?}       admin  201 created / 200 already there
    DELETE /collections/{c}                      admin  {"name", "deleted": true}
    GET    /collections/{c}/documents            read   {"documents": [{doc_id, name,
                                                         source, mime, size, items, added}]}
    DELETE /collections/{c}/documents/{doc_id}   write  {"deleted": n}
    DELETE /collections/{c}/items/{item_id}      write  {"deleted": n, "doc_id"}

Where the written contract left a shape open, this is what was chosen (the web page
relies on none of it): the document list is wrapped as ``{"documents": [...]}`` like the
collection list; ``DELETE /collections/{c}`` answers ``{"name", "deleted": true}``; items
are parts of a document, so deleting an item deletes its whole document (every source
with that content) and ``deleted`` counts the sources removed. Deletes wait for an ingest
in progress on the collection (up to a minute, then 409 ``busy``). Extra fields beyond
the contract (``mime``, ``section``, ``matches`` on hits; ``doc_id``, ``items`` on job
files; ``error``, ``started`` on jobs; ``seconds``, ``thumb_url``, ``bbox`` on citations)
are additions only.

Listing collections opens each (catalog and store only, not encoders), once; a key
limited to some collections sees only those.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from .auth import Principal, require
from .errors import ApiError
from .ids import check_doc_id, check_item_id
from .registry import WRITE_WAIT_S, Collection, Collections
from .state import server_state

__all__ = ["CollectionRequest", "router"]

router = APIRouter(tags=["collections"])
Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]


class CollectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str | None = None  # offline | clip | colpali; default: the server's
    # per-collection privacy (mmrag.config.PrivacySettings fields: blur_faces, mask_pii,
    # strip_exif, store_media, ...); kept in the collection's manifest once created
    privacy: dict[str, Any] | None = None


def _summary(collection: Collection) -> dict[str, Any]:
    index = collection.index
    return {"name": collection.name, "items": index.store.count(),
            "documents": len(index.documents()), "profile": index.profile,
            "privacy": index.settings.privacy.model_dump()}


@router.get("/collections")
async def list_collections(request: Request, principal: Reader) -> dict[str, Any]:
    registry = server_state(request).collections

    def work() -> list[dict[str, Any]]:
        return [_summary(registry.get(name)) for name in registry.names()
                if principal.allows("read", name)]

    return {"collections": await run_in_threadpool(work)}


@router.get("/collections/{collection}")
async def get_collection(collection: str, request: Request, _: Reader) -> dict[str, Any]:
    registry = server_state(request).collections
    return await run_in_threadpool(lambda: _summary(registry.get(collection)))


@router.put("/collections/{collection}", status_code=200,
            responses={201: {"description": "created"}})
async def put_collection(collection: str, request: Request, response: Response, _: Admin,
                         body: CollectionRequest | None = None) -> dict[str, Any]:
    registry = server_state(request).collections
    profile = body.profile if body is not None else None
    privacy = body.privacy if body is not None else None
    found, created = await run_in_threadpool(registry.create, collection, profile, privacy)
    response.status_code = 201 if created else 200
    return await run_in_threadpool(_summary, found)


@router.delete("/collections/{collection}")
async def delete_collection(collection: str, request: Request, _: Admin) -> dict[str, Any]:
    await run_in_threadpool(server_state(request).collections.delete, collection)
    return {"name": collection, "deleted": True}


@router.get("/collections/{collection}/documents")
async def list_documents(collection: str, request: Request, _: Reader) -> dict[str, Any]:
    registry = server_state(request).collections

    def work() -> list[dict[str, Any]]:
        return [{"doc_id": d.doc_id, "name": d.name, "source": d.source, "mime": d.mime,
                 "size": d.size, "items": len(d.item_ids), "added": d.added}
                for d in registry.get(collection).index.documents()]

    return {"documents": await run_in_threadpool(work)}


@router.delete("/collections/{collection}/documents/{doc_id}")
async def delete_document(collection: str, doc_id: str, request: Request,
                          _: Writer) -> dict[str, Any]:
    check_doc_id(doc_id)
    registry = server_state(request).collections
    return {"deleted": await run_in_threadpool(_delete_doc, registry, collection, doc_id)}


@router.delete("/collections/{collection}/items/{item_id}")
async def delete_item(collection: str, item_id: str, request: Request,
                      _: Writer) -> dict[str, Any]:
    check_item_id(item_id)
    registry = server_state(request).collections

    def work() -> int:
        if registry.get(collection).index.get(item_id) is None:
            raise ApiError(f"no item {item_id!r} in collection {collection!r}", status=404,
                           code="not_found", param="item_id")
        return _delete_doc(registry, collection, item_id.split(":", 1)[0])

    return {"deleted": await run_in_threadpool(work), "doc_id": item_id.split(":", 1)[0]}


def _delete_doc(registry: Collections, collection: str, doc_id: str) -> int:
    """Delete every source of ``doc_id`` (a checked id: ``Index.delete`` also takes paths
    and folders, which must never come from a client)."""
    target = registry.get(collection)
    if not target.index.catalog.by_doc_id(doc_id):
        raise ApiError(f"no document {doc_id!r} in collection {collection!r}", status=404,
                       code="not_found", param="doc_id")
    if not target.write_lock.acquire(timeout=WRITE_WAIT_S):
        raise ApiError(f"collection {collection!r} is busy with an ingest; try again later",
                       status=409, code="busy")
    try:
        return target.index.delete([doc_id])
    finally:
        target.write_lock.release()
