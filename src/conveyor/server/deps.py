"""What routes get injected: the server's workspace, an acting workspace, the token check."""

from __future__ import annotations

import dataclasses
import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from conveyor.workspace import Workspace


def get_workspace(request: Request) -> Workspace:
    """The workspace the server was created with (its own database, never over HTTP)."""
    ws: Workspace = request.app.state.workspace
    return ws


WorkspaceDep = Annotated[Workspace, Depends(get_workspace)]


def acting(ws: Workspace, actor: str) -> Workspace:
    """The same stores, with ``actor`` as the one the audit log names."""
    settings = ws.settings.model_copy(update={"actor": actor})
    return dataclasses.replace(ws, settings=settings)


def require_token(
    request: Request,
    authorization: Annotated[str | None, Header(description="Bearer <CONVEYOR_TOKEN>")] = None,
) -> None:
    """Refuse a write without ``Authorization: Bearer <token>`` when the server has a token."""
    token: str | None = request.app.state.token
    if token is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        what = "no bearer token" if not authorization else "a wrong bearer token"
        raise HTTPException(
            status_code=401,
            detail=f"This write needs 'Authorization: Bearer <token>' with the server's "
            f"CONVEYOR_TOKEN; the request had {what}.",
            headers={"WWW-Authenticate": "Bearer"},
        )


WRITE = [Depends(require_token)]
"""Dependencies of every write route."""
