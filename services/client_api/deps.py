"""FastAPI dependencies: settings, the service runtime, a database session, the API key check,
and the caller's identity (the API key's label) for the operator audit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from services.client_api.auth import authenticate, caller_label
from services.client_api.problems import UNAUTHORIZED, ProblemError
from services.common.blobstore import BlobStore
from services.common.runtime import ServiceRuntime
from services.common.settings import Settings

# Declared for the generated OpenAPI document only; the check itself is `require_api_key`.
_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey", bearerFormat="API key")


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def get_blobs(request: Request) -> BlobStore:
    blobs: BlobStore = request.app.state.blobs
    return blobs


async def get_session(
    runtime: Annotated[ServiceRuntime, Depends(get_runtime)],
) -> AsyncIterator[AsyncSession]:
    async with runtime.sessions() as session:
        yield session


async def require_api_key(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    if not authenticate(request):
        raise ProblemError(
            401,
            UNAUTHORIZED,
            "Send your API key as `Authorization: Bearer <api key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )


def get_actor(request: Request) -> str:
    """The label of the API key of this request (set by the auth gate): the audit's actor."""
    label = caller_label(request)
    if label is None and authenticate(request):  # a route outside the gate's prefix
        label = caller_label(request)
    if label is None:
        raise ProblemError(
            401,
            UNAUTHORIZED,
            "Send your API key as `Authorization: Bearer <api key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return label


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ActorDep = Annotated[str, Depends(get_actor)]
RuntimeDep = Annotated[ServiceRuntime, Depends(get_runtime)]
SessionDep = Annotated[AsyncSession, Depends(get_session)]
BlobsDep = Annotated[BlobStore, Depends(get_blobs)]
