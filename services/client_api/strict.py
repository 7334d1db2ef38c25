"""Strict re-validation of JSON request bodies.

FastAPI validates bodies in pydantic's lax mode, which coerces (`0` becomes the date
1970-01-01, `"12"` an integer, `1` the boolean true). The spec's bodies are JSON Schema, where a
value of the wrong JSON type is invalid. Routes therefore validate the raw body again with the
same generated model in strict JSON mode (ISO strings for dates and UUIDs still parse), and a
mismatch is a 422 like any other. One JSON Schema rule strict mode lacks is added first: a number
with a zero fraction (`3.0`) is an integer.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


def _whole_numbers_as_int(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers_as_int(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers_as_int(v) for v in value]
    return value


async def strictly(request: Request, model: type[M]) -> M | None:
    """The body validated strictly, or None when there is no body."""
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        normalized = json.dumps(_whole_numbers_as_int(json.loads(raw)), allow_nan=False)
        return model.model_validate_json(normalized, strict=True)
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
        else:  # NaN or Infinity: numbers JSON does not have
            errors = [{"type": "value_error", "loc": ("body",), "msg": str(exc), "input": None}]
        raise RequestValidationError(errors) from exc
