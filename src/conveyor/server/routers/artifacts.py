"""``/api/v1/artifacts``: upload and download blobs of the server's artifact store."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from conveyor.server.deps import WRITE, WorkspaceDep

router = APIRouter(prefix="/artifacts", tags=["artifacts"])


@router.get("/referenced", response_model=list[str])
def referenced(ws: WorkspaceDep) -> list[str]:
    """Every digest the server's metadata refers to (what garbage collection keeps)."""
    return sorted(ws.stores.models.list_referenced_digests())


@router.post("", status_code=201, response_model=dict[str, str], dependencies=WRITE)
async def upload(request: Request, ws: WorkspaceDep) -> dict[str, str]:
    """Store the request body as a blob; answer its digest (``sha256:<hex>``); idempotent."""
    data = await request.body()
    return {"digest": await run_in_threadpool(ws.stores.artifacts.put_bytes, data)}


@router.get("/{digest}", response_class=Response)
def download(digest: str, ws: WorkspaceDep) -> Response:
    """The blob's bytes (404 for an unknown digest)."""
    data = ws.stores.artifacts.get_bytes(digest)
    return Response(data, media_type="application/octet-stream")
