"""Vendor faults on demand (``POST /_sim/faults``), shaped like the real outages on the wire.

A rule belongs to one vendor and fires ``count`` times (``null``: every time), optionally only
for one call:

- **OpenAI** (per request; ``match``: a substring of the request body, e.g. the
  ``prompt_cache_key``): ``status`` answers with OpenAI's error JSON (429 adds ``retry-after`` /
  ``retry-after-ms`` from ``retry_after_s``), ``hang_s`` holds the request that long before
  answering, ``drop_mid_stream_after_chunks`` cuts the connection after that many SSE events.
- **Deepgram** (per connection; ``tag``: the connection's ``tag``, ``number``: the To number of
  the simulated call whose CallSid is the tag): ``status`` refuses the WebSocket handshake,
  ``drop_after_s`` (seconds of audio received) and ``drop_after_words`` (words transcribed) close
  the socket with ``close_code`` (default 1011, reason ``NET-0000``: Deepgram's internal error).
- **ElevenLabs** (per connection; ``match``: the rule arms on a connection once a received text
  contains it): ``status`` refuses the handshake (unscoped), ``drop_after_texts`` closes the
  socket ``delay_ms`` after the n-th text received since the rule armed, with ``close_code``
  (default 1011) after an ``internal_error`` message.

Every firing is logged (``GET /_sim/faults``) and the vendor's own records say which request or
connection was hit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

VENDORS = ("openai", "deepgram", "elevenlabs")
# Per vendor: the fault kinds (exactly one per rule) and the options that go with them.
_KINDS = {
    "openai": ("status", "hang_s", "drop_mid_stream_after_chunks"),
    "deepgram": ("status", "drop_after_s", "drop_after_words"),
    "elevenlabs": ("status", "drop_after_texts"),
}
_OPTIONS = {
    "openai": ("count", "match", "retry_after_s"),
    "deepgram": ("count", "tag", "number", "close_code"),
    "elevenlabs": ("count", "match", "delay_ms", "close_code"),
}
_INTS = ("status", "drop_mid_stream_after_chunks", "drop_after_words", "drop_after_texts")
_INTS += ("close_code",)
_NUMBERS = ("hang_s", "drop_after_s", "retry_after_s", "delay_ms")


class FaultError(ValueError):
    pass


@dataclass(eq=False)  # hashed by identity: connections keep the rules armed on them
class FaultRule:
    id: int
    vendor: str
    kind: str
    value: float
    remaining: int | None  # None: no limit
    match: str | None = None
    tag: str | None = None
    number: str | None = None
    retry_after_s: float | None = None
    delay_ms: float = 0.0
    close_code: int = 1011
    fired: int = 0

    def take(self) -> bool:
        """Use one firing; False once the count is spent."""
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        self.fired += 1
        return True

    @property
    def live(self) -> bool:
        return self.remaining is None or self.remaining > 0

    def snapshot(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "vendor": self.vendor,
            self.kind: self.value,
            "remaining": self.remaining,
            "fired": self.fired,
        }
        for key in ("match", "tag", "number", "retry_after_s"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.vendor != "openai" and self.kind != "status":
            out["close_code"] = self.close_code
        if self.delay_ms:
            out["delay_ms"] = self.delay_ms
        return out


@dataclass
class Faults:
    rules: list[FaultRule] = field(default_factory=list)
    fired: list[dict[str, Any]] = field(default_factory=list)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add(self, body: Any, normalize_number: Any = str) -> list[FaultRule]:
        """Parse ``{"openai": spec | [spec, ...], "deepgram": ..., "elevenlabs": ...}``."""
        if not isinstance(body, dict) or not body or set(body) - set(VENDORS):
            raise FaultError(f"expected an object with keys among {', '.join(VENDORS)}")
        new = []
        for vendor, specs in body.items():
            for spec in specs if isinstance(specs, list) else [specs]:
                new.append(self._parse(vendor, spec, normalize_number))
        self.rules.extend(new)
        return new

    def _parse(self, vendor: str, spec: Any, normalize_number: Any) -> FaultRule:
        if not isinstance(spec, dict):
            raise FaultError(f"{vendor}: a fault is an object")
        unknown = set(spec) - set(_KINDS[vendor]) - set(_OPTIONS[vendor])
        kinds = [k for k in _KINDS[vendor] if k in spec]
        if unknown or len(kinds) != 1:
            raise FaultError(
                f"{vendor}: exactly one of {', '.join(_KINDS[vendor])}, "
                f"plus any of {', '.join(_OPTIONS[vendor])}"
                + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
            )
        for key, val in spec.items():
            if key in _INTS and (not isinstance(val, int) or isinstance(val, bool) or val < 0):
                raise FaultError(f"{vendor}.{key} must be an integer >= 0")
            if key in _NUMBERS and (not isinstance(val, int | float) or val < 0):
                raise FaultError(f"{vendor}.{key} must be a number >= 0")
            if key in ("match", "tag", "number") and not isinstance(val, str):
                raise FaultError(f"{vendor}.{key} must be a string")
        kind = kinds[0]
        if not 1000 <= spec.get("close_code", 1011) <= 4999 or spec.get("close_code") in (
            1005,
            1006,
        ):
            raise FaultError(f"{vendor}.close_code must be a WebSocket close code (1000-4999)")
        if kind == "status" and not 400 <= spec["status"] <= 599:
            raise FaultError(f"{vendor}.status must be an HTTP error status (400-599)")
        if "retry_after_s" in spec and kind != "status":
            raise FaultError("openai.retry_after_s goes with a status")
        count = spec.get("count", 1)
        if count is not None and (not isinstance(count, int) or isinstance(count, bool)):
            raise FaultError(f"{vendor}.count must be an integer or null (no limit)")
        number = spec.get("number")
        return FaultRule(
            id=next(self._ids),
            vendor=vendor,
            kind=kind,
            value=spec[kind],
            remaining=count,
            match=spec.get("match"),
            tag=spec.get("tag"),
            number=normalize_number(number) if number is not None else None,
            retry_after_s=spec.get("retry_after_s"),
            delay_ms=float(spec.get("delay_ms", 0.0)),
            close_code=int(spec.get("close_code", 1011)),
        )

    def candidates(self, vendor: str, *kinds: str) -> list[FaultRule]:
        return [r for r in self.rules if r.vendor == vendor and r.kind in kinds and r.live]

    def log(self, rule: FaultRule, **detail: Any) -> None:
        self.fired.append(
            {
                "rule": rule.id,
                "vendor": rule.vendor,
                "kind": rule.kind,
                "at": datetime.now(UTC).isoformat(),
                **detail,
            }
        )

    def snapshot(self) -> dict[str, Any]:
        return {"rules": [r.snapshot() for r in self.rules], "fired": list(self.fired)}

    def clear(self) -> None:
        self.rules.clear()
        self.fired.clear()
