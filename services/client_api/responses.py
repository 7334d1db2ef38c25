"""Shared parameter types and error-response declarations of the routes.

The declarations only shape FastAPI's generated OpenAPI document, which a test compares with
specs/openapi/client-api.yaml (the document actually served).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from generated.client_api import Problem

LimitQuery = Annotated[int, Query(ge=1, le=100, description="Page size.")]
CursorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=1024,
        description="`next_cursor` of the previous page; omit for the first page.",
    ),
]


def _problem(status: int, description: str) -> dict[int | str, dict[str, Any]]:
    return {
        status: {
            "model": Problem,
            "description": description,
            "content": {"application/problem+json": {}},
        }
    }


BAD_REQUEST = _problem(400, "Malformed JSON or cursor.")
UNAUTHORIZED = _problem(401, "Missing or invalid API key.")
NOT_FOUND = _problem(404, "No such resource.")
CONFLICT = _problem(409, "Conflicts with the current state.")
TOO_LARGE = _problem(413, "The request body is too large.")
UNPROCESSABLE = _problem(422, "Some input is invalid.")
UNAVAILABLE = _problem(503, "The database is unreachable for a moment; retry later.")
