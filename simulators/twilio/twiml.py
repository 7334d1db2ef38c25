"""The small part of TwiML a collections call uses: <Connect><Stream>, <Say>, <Pause>, <Hangup>."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field


class TwimlError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StreamVerb:
    url: str
    parameters: dict[str, str] = field(default_factory=dict)
    name: str | None = None
    status_callback: str | None = None
    status_callback_method: str = "POST"


@dataclass(frozen=True, slots=True)
class SayVerb:
    text: str


@dataclass(frozen=True, slots=True)
class PauseVerb:
    seconds: float


@dataclass(frozen=True, slots=True)
class HangupVerb:
    pass


@dataclass(frozen=True, slots=True)
class UnsupportedVerb:
    tag: str


Verb = StreamVerb | SayVerb | PauseVerb | HangupVerb | UnsupportedVerb


def parse_twiml(text: str) -> list[Verb]:
    try:
        root = ET.fromstring(text.strip())
    except ET.ParseError as exc:
        raise TwimlError(f"invalid TwiML: {exc}") from exc
    if root.tag != "Response":
        raise TwimlError("TwiML root must be <Response>")
    verbs: list[Verb] = []
    for el in root:
        if el.tag == "Connect":
            streams = [c for c in el if c.tag == "Stream"]
            if not streams:
                verbs.append(UnsupportedVerb("Connect"))
                continue
            s = streams[0]
            url = s.get("url", "")
            if not url.startswith(("ws://", "wss://")):
                raise TwimlError(f"<Stream url> must be a ws:// or wss:// URL, got {url!r}")
            params = {p.get("name", ""): p.get("value", "") for p in s if p.tag == "Parameter"}
            verbs.append(
                StreamVerb(
                    url=url,
                    parameters=params,
                    name=s.get("name"),
                    status_callback=s.get("statusCallback"),
                    status_callback_method=s.get("statusCallbackMethod", "POST").upper(),
                )
            )
        elif el.tag == "Say":
            verbs.append(SayVerb((el.text or "").strip()))
        elif el.tag == "Pause":
            try:
                verbs.append(PauseVerb(float(el.get("length", "1"))))
            except ValueError as exc:
                raise TwimlError("Pause length must be a number") from exc
        elif el.tag == "Hangup":
            verbs.append(HangupVerb())
        else:
            verbs.append(UnsupportedVerb(el.tag))
    return verbs
