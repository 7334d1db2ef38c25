"""RFC 9457 problem details: every error the Client API answers is `application/problem+json`.

Handlers replace FastAPI's defaults for `HTTPException` (404, 405, ...), `RequestValidationError`
(422, or 400 for unreadable JSON) and any unhandled exception (500), so no error ever leaves in
another shape. Route code raises `ProblemError` with one of the problem types of the spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError
from starlette.exceptions import HTTPException as StarletteHTTPException

from generated.client_api import Problem, ProblemFieldError
from services.client_api.auth import authenticate
from services.common.logging import get_logger

log = get_logger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"

# Problem `type`s the spec documents (specs/schemas/client_api.json, Problem.type).
VALIDATION = "urn:problem:validation-error"
MALFORMED = "urn:problem:malformed-request"
INVALID_CURSOR = "urn:problem:invalid-cursor"
UNAUTHORIZED = "urn:problem:unauthorized"
NOT_FOUND = "urn:problem:not-found"
DUPLICATE_EXTERNAL_ID = "urn:problem:duplicate-external-id"
CALL_ALREADY_ACTIVE = "urn:problem:call-already-active"
IDEMPOTENCY_KEY_REUSED = "urn:problem:idempotency-key-reused"
DEBTOR_ON_HOLD = "urn:problem:debtor-on-hold"
CALL_NOT_ALLOWED = "urn:problem:call-not-allowed"
HOLD_ALREADY_LIFTED = "urn:problem:hold-already-lifted"
PAYLOAD_TOO_LARGE = "urn:problem:payload-too-large"
PAYMENT_REFERENCE_REUSED = "urn:problem:payment-reference-reused"
PROMISE_NOT_PENDING = "urn:problem:promise-not-pending"
CAMPAIGN_STATUS_CONFLICT = "urn:problem:campaign-status-conflict"
CALL_NOT_ENDED = "urn:problem:call-not-ended"
CALL_ALREADY_PLACED = "urn:problem:call-already-placed"
NOTHING_TO_CANCEL = "urn:problem:nothing-to-cancel"
SERVICE_UNAVAILABLE = "urn:problem:service-unavailable"
RETRY_AFTER_S = 5

_TITLES = {
    VALIDATION: "Validation failed",
    MALFORMED: "Malformed request",
    INVALID_CURSOR: "Invalid cursor",
    UNAUTHORIZED: "Unauthorized",
    NOT_FOUND: "Not found",
    DUPLICATE_EXTERNAL_ID: "Duplicate external_id",
    CALL_ALREADY_ACTIVE: "Call already active",
    IDEMPOTENCY_KEY_REUSED: "Idempotency-Key reused",
    DEBTOR_ON_HOLD: "Debtor on hold",
    CALL_NOT_ALLOWED: "Call not allowed by the calling rules",
    HOLD_ALREADY_LIFTED: "Hold already lifted",
    PAYLOAD_TOO_LARGE: "Payload too large",
    PAYMENT_REFERENCE_REUSED: "Payment reference reused",
    PROMISE_NOT_PENDING: "Promise not pending",
    CAMPAIGN_STATUS_CONFLICT: "Campaign status does not allow this",
    CALL_NOT_ENDED: "Call not ended",
    CALL_ALREADY_PLACED: "Call already being placed",
    NOTHING_TO_CANCEL: "Nothing to cancel",
    SERVICE_UNAVAILABLE: "Service unavailable",
}
_TYPE_BY_STATUS = {401: UNAUTHORIZED, 404: NOT_FOUND, 413: PAYLOAD_TOO_LARGE}
_GENERIC_TITLES = {
    400: "Bad request",
    405: "Method not allowed",
    406: "Not acceptable",
    415: "Unsupported media type",
    500: "Internal server error",
    503: "Service unavailable",
}


class ProblemError(Exception):
    """Raised by route code; rendered as a problem document by `problem_error_handler`."""

    def __init__(
        self,
        status: int,
        type_: str,
        detail: str | None = None,
        errors: Sequence[ProblemFieldError] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or type_)
        self.status = status
        self.type = type_
        self.detail = detail
        self.errors = list(errors) if errors else None
        self.headers = dict(headers or {})


class PayloadTooLarge(StarletteHTTPException):
    """Raised while reading a body past the limit. An HTTPException on purpose: FastAPI re-raises
    those unchanged from its body parsing (other errors there become a 400)."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="The request body is too large.")


def validation_error(errors: Iterable[tuple[str, str]]) -> ProblemError:
    items = [ProblemFieldError(field=f, message=m) for f, m in errors]
    return ProblemError(
        422,
        VALIDATION,
        f"{len(items)} invalid input{'s' if len(items) != 1 else ''}",
        errors=items,
    )


def not_found(what: str) -> ProblemError:
    return ProblemError(404, NOT_FOUND, f"No such {what}.")


def problem_response(
    request: Request | None,
    status: int,
    type_: str = "about:blank",
    detail: str | None = None,
    errors: Sequence[ProblemFieldError] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    problem = Problem(
        type=type_,
        title=_TITLES.get(type_) or _GENERIC_TITLES.get(status) or "Error",
        status=status,
        detail=detail,
        instance=_instance(request) if request is not None else None,
        errors=list(errors) if errors else None,
    )
    return JSONResponse(
        problem.model_dump(mode="json", exclude_none=True),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _instance(request: Request) -> str:
    # The path as a URI reference: percent-encoded, whatever characters the client sent.
    return quote(request.url.path, safe="/:@!$&'()*+,;=-._~")


def unauthorized(request: Request | None) -> JSONResponse:
    return problem_response(
        request,
        401,
        UNAUTHORIZED,
        "Send your API key as `Authorization: Bearer <api key>`.",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _field(loc: Sequence[Any]) -> str:
    """Pydantic/FastAPI error location → the spec's `field` (`body.amount_owed.currency`)."""
    parts = [str(p) for p in loc]
    if len(parts) >= 2 and parts[0] == "header":
        # FastAPI reports the lower-cased alias; the spec names headers as documented.
        parts[1] = "-".join(w.capitalize() for w in parts[1].split("-"))
    return ".".join(parts)


async def problem_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(request, exc.status, exc.type, exc.detail, exc.errors, exc.headers)


async def http_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    type_ = _TYPE_BY_STATUS.get(status, "about:blank")
    if status == 400:
        type_ = MALFORMED
    if status == 401:
        return unauthorized(request)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if status == 404 and detail == "Not Found":
        detail = "No such resource."
    headers = dict(exc.headers or {})
    if status == 405:
        # Starlette names only the first matching route's methods; list every operation's.
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem_response(request, status, type_, detail, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    # From the served spec, which a test proves lists exactly the routes' operations.
    from services.client_api.openapi import path_methods

    return path_methods(request.url.path)


async def request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # Body parsing fails before the auth dependency runs: an unauthenticated caller learns
    # nothing about the input, it gets the 401 first.
    if request.url.path.startswith("/v1") and not authenticate(request):
        return unauthorized(request)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return problem_response(request, 400, MALFORMED, "The request body is not valid JSON.")
    items = [
        ProblemFieldError(field=_field(e.get("loc", ())), message=str(e.get("msg", "invalid")))
        for e in errors
    ]
    return problem_response(
        request,
        422,
        VALIDATION,
        f"{len(items)} invalid input{'s' if len(items) != 1 else ''}",
        errors=items,
    )


def _database_unreachable(exc: BaseException | None) -> bool:
    """A lost or refused database connection (restart, failover), anywhere in the cause chain."""
    while exc is not None:
        if isinstance(exc, OSError | asyncpg.exceptions.CannotConnectNowError):
            return True
        if isinstance(exc, DBAPIError) and exc.connection_invalidated:
            return True
        if isinstance(exc, asyncpg.exceptions.ConnectionDoesNotExistError | InterfaceError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def dependency_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Database errors, answered here rather than by Starlette's last-resort handler, which
    re-raises and so makes the server drop the client's keep-alive connection."""
    if not _database_unreachable(exc):
        return _internal_error(request, exc)
    # The transaction never committed: nothing changed, so a retry is safe.
    log.warning("database_unavailable", path=request.url.path, error_type=type(exc).__name__)
    return problem_response(
        request,
        503,
        SERVICE_UNAVAILABLE,
        "The database is unreachable for a moment; nothing was changed. Retry later.",
        headers={"Retry-After": str(RETRY_AFTER_S)},
    )


async def unhandled_exception_handler(request: Request, exc: Exception) -> JSONResponse:
    return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    # Only the type and where it was raised: messages of driver errors can carry row values
    # (names, numbers), which must never reach a log line.
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else None
    log.error("unhandled_error", path=request.url.path, error_type=type(exc).__name__, where=where)
    return problem_response(request, 500, "about:blank", "An internal error occurred.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ProblemError, problem_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_exception_handler)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    for dependency_error in (OSError, DBAPIError, asyncpg.PostgresError, asyncpg.InterfaceError):
        app.add_exception_handler(dependency_error, dependency_error_handler)
    app.add_exception_handler(Exception, unhandled_exception_handler)
