"""Idempotent writes: the `Idempotency-Key` header, what makes two requests the same request,
and how a repeat is answered. Each router keeps its own lookup (which table holds the key) and
its own answer body; the header, the fingerprint, the 409 and the replay headers live here.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header, Response

from services.client_api.problems import IDEMPOTENCY_KEY_REUSED, ProblemError
from services.client_api.validation import FieldError, text_errors

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Repeating a request with the same key and body returns the first result.",
    ),
]

KEY_FIELD = "header.Idempotency-Key"


def key_errors(key: str | None) -> list[FieldError]:
    """What is wrong with the header's value (it is stored, so it must be storable text)."""
    return [] if key is None else text_errors(key, KEY_FIELD)


def request_fingerprint(meaning: Any) -> str:
    """SHA-256 of `meaning` (JSON-able) in canonical form: two requests with the same meaning
    (key order, whitespace, defaults filled in by the model) have the same fingerprint."""
    canonical = json.dumps(meaning, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


KEY_REUSED = "This Idempotency-Key was used with another request; use a new key."


def key_reused(detail: str = KEY_REUSED) -> ProblemError:
    return ProblemError(409, IDEMPOTENCY_KEY_REUSED, detail)


def same_request(stored_fingerprint: str | None, fp: str, detail: str = KEY_REUSED) -> None:
    """Raise 409 unless the stored request (found by its key) is this one."""
    if stored_fingerprint != fp:
        raise key_reused(detail)


def mark_replayed(
    response: Response, location: str | None = None, status: int | None = None
) -> None:
    """The headers of an answer that repeats the first result."""
    if status is not None:
        response.status_code = status
    response.headers["Idempotent-Replayed"] = "true"
    if location is not None:
        response.headers["Location"] = location
