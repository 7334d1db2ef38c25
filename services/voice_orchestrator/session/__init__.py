"""The live call loop, in parts (see call_session.py for how they fit together)."""

from .call_session import CallSession
from .playout import heard_text
from .responder import with_round_texts
from .stream import MediaTransport, TransportClosed
from .synthesis import unspoken_rest
from .transcript import Transcript
from .tuning import SessionTuning
from .wrapup import SessionResult

__all__ = [
    "CallSession",
    "MediaTransport",
    "SessionResult",
    "SessionTuning",
    "Transcript",
    "TransportClosed",
    "heard_text",
    "unspoken_rest",
    "with_round_texts",
]
