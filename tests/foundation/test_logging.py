"""Structured logs: JSON, call id on every line, no phone numbers, names or amounts."""

from __future__ import annotations

import io
import json
import logging

import structlog

from services.common.logging import bind_call_id, configure_logging, get_logger


def test_json_lines_with_call_id_and_redaction() -> None:
    out = io.StringIO()
    configure_logging("test-service", stream=out)
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service="test-service")
    bind_call_id("call-123")
    log = get_logger("t")
    log.info("dialing +15551234567", phone="+15551234567", debtor_name="Jane", amount_minor=4500)
    logging.getLogger("stdlib").warning("callback for (555) 123-4567 failed")
    configure_logging("test-service")  # back to stdout for the rest of the session
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line]
    assert len(lines) == 2
    for line in lines:
        assert line["call_id"] == "call-123"
        assert line["service"] == "test-service"
        text = json.dumps(line)
        assert "5551234567" not in text and "123-4567" not in text
    assert lines[0]["phone"] == lines[0]["debtor_name"] == lines[0]["amount_minor"] == "[redacted]"
    structlog.contextvars.clear_contextvars()


def test_exceptions_nested_values_and_secrets_are_redacted() -> None:
    out = io.StringIO()
    configure_logging("test-service", stream=out)
    structlog.contextvars.clear_contextvars()
    log = get_logger("t")
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    try:
        raise ValueError(f"cannot dial +15551234567 for {secret}")
    except ValueError:
        log.exception("dial_failed")
        logging.getLogger("stdlib").exception("stdlib saw +1 (555) 123-4567")
    log.info(
        "nested",
        targets=["+15551234567", {"to_number": "x", "note": "call 555-123-4567"}],
        header="Authorization: Bearer local-demo-api-key",
    )
    configure_logging("test-service")  # back to stdout for the rest of the session
    structlog.contextvars.clear_contextvars()
    raw = out.getvalue()
    lines = [json.loads(line) for line in raw.splitlines() if line]
    assert len(lines) == 3 and lines[0]["event"] == "dial_failed"
    assert "ValueError" in lines[0]["exception"] and "[phone]" in lines[0]["exception"]
    assert "ValueError" in lines[1]["exception"]
    assert lines[2]["targets"][1]["to_number"] == "[redacted]"
    assert lines[2]["header"] == "Authorization: Bearer [redacted]"
    for leaked in ("5551234567", "123-4567", secret, "local-demo-api-key"):
        assert leaked not in raw, leaked
