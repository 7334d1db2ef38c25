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
