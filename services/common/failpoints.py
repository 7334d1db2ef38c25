"""Failpoints: named places where a test makes this process die exactly as `kill -9` would.

Crash tests need a process to die at one precise moment (say, after a commit and before the
publish that follows it); a signal from outside cannot aim that well. `FAILPOINTS` lists the armed
names (comma-separated); `hit(name)` then SIGKILLs the process: no cleanup, no flush, no graceful
shutdown. Never armed in production (settings refuse it).
"""

from __future__ import annotations

import os
import signal

from services.common.logging import get_logger
from services.common.settings import Settings

log = get_logger(__name__)

_armed: frozenset[str] = frozenset()

# Every failpoint the code has, so a typo in a test's FAILPOINTS fails loudly.
KNOWN = frozenset(
    {
        "dispatch.after_create_call",  # Twilio placed the call, its CallSid not yet stored
        "outbox.before_publish",  # rows claimed, business transaction long committed
        "webhook.during_post",  # the POST sent, its response not yet read or recorded
    }
)


def arm(settings: Settings) -> None:
    global _armed
    names = frozenset(n.strip() for n in settings.failpoints.split(",") if n.strip())
    unknown = names - KNOWN
    if unknown:
        raise ValueError(f"unknown failpoints: {sorted(unknown)}")
    _armed = names
    if names:
        log.warning("failpoints_armed", failpoints=sorted(names))


def hit(name: str) -> None:
    if name in _armed:
        log.warning("failpoint_hit", failpoint=name)
        os.kill(os.getpid(), signal.SIGKILL)
