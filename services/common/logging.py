"""Structured JSON logging (structlog) with the call id bound and personal data redacted.

Bind a call id once per task with `bind_call_id(call_id)`; every log line in that task carries
it. A redaction processor strips phone numbers and secrets (webhook signing secrets, bearer
tokens) from every string, nested ones and rendered exceptions included, and keys that carry
personal data or money (`phone`, `name`, `amount*`, secrets) are dropped, so a log line can never
leak them.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# E.164 and common US formats; applied to every string value in the event dict.
_PHONE_RE = re.compile(
    r"(?<![\w.:/])(?:\+\d[\d\s-]{6,16}\d|\d{10,11}|\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4})(?![\w.:])"
)
_SENSITIVE_KEY_PARTS = (
    "phone",
    "name",
    "amount",
    "balance",
    "secret",
    "token",
    "api_key",
    "password",
    "authorization",
    "to_number",
    "from_number",
)
_SECRET_RES = (
    (re.compile(r"whsec_[A-Za-z0-9+/=_-]+"), "whsec_[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 [redacted]"),
)
_ALLOWED_KEYS = {"event", "level", "logger", "timestamp", "service", "call_id", "logger_name"}


def _is_sensitive_key(key: str) -> bool:
    k = key.lower()
    if k in _ALLOWED_KEYS or k.endswith("_id") or k == "service_name":
        return False
    return any(part in k for part in _SENSITIVE_KEY_PARTS)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        value = _PHONE_RE.sub("[phone]", value)
        for rx, replacement in _SECRET_RES:
            value = rx.sub(replacement, value)
        return value
    if isinstance(value, dict):
        return {
            k: "[redacted]" if isinstance(k, str) and _is_sensitive_key(k) else _scrub(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in _ALLOWED_KEYS and key != "event":
            continue
        if _is_sensitive_key(key):
            event_dict[key] = "[redacted]"
            continue
        event_dict[key] = _scrub(event_dict[key])
    return event_dict


def configure_logging(service: str, level: str = "INFO", stream: TextIO | None = None) -> None:
    """Configure structlog and the stdlib root logger to emit one JSON object per line."""
    out = stream or sys.stdout
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        # Exceptions are rendered to text first, so their messages are redacted too.
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        # Not cached: reconfiguring (tests, workers) must reach loggers bound at import time.
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Chatty libraries: keep warnings only.
    for noisy in (
        "httpx",
        "httpx2",
        "httpcore",
        "urllib3",
        "google",
        "grpc",
        "websockets",
        "asyncio",
        "twilio",  # logs every request with its headers at INFO
        "uvicorn.access",
    ):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


def bind_call_id(call_id: str) -> None:
    """Bind the call id to the current context (task); every following line carries it."""
    structlog.contextvars.bind_contextvars(call_id=call_id)
