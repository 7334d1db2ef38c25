"""When a conversation has derailed: counts of what the debtor said and how the model moved,
checked against `ConversationLimits`. Pure; the `Conversation` feeds it and acts on the cause."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from .heuristics import TurnSignals
from .machine import ConversationLimits


@dataclass
class DerailmentWatch:
    limits: ConversationLimits = field(default_factory=ConversationLimits)
    debtor_turns: int = 0
    invalid_streak: int = 0
    invalid_total: int = 0
    off_topic_streak: int = 0
    off_topic_total: int = 0
    hostile: int = 0
    confused: int = 0
    injection: int = 0
    # Safety nets the outcome mapping reads: a refusal by the verified debtor, "stop calling".
    refusal_heard: bool = False
    opt_out_heard: bool = False

    def debtor_turn(self, s: TurnSignals, *, verified: bool) -> None:
        self.debtor_turns += 1
        self.hostile += s.hostile
        self.confused += s.confused
        self.injection += s.injection
        if s.off_topic:
            self.off_topic_streak += 1
            self.off_topic_total += 1
        else:
            self.off_topic_streak = 0
        if s.refusal and verified:
            self.refusal_heard = True
        if s.opt_out:
            self.opt_out_heard = True

    def tool_result(self, ok: bool) -> None:
        if ok:
            self.invalid_streak = 0
        else:
            self.invalid_streak += 1
            self.invalid_total += 1

    def cause(self) -> str | None:
        lim = self.limits
        checks = (
            (self.invalid_streak >= lim.max_consecutive_invalid_tools, "repeated invalid moves"),
            (self.invalid_total >= lim.max_invalid_tools, "too many invalid moves"),
            (self.off_topic_streak >= lim.max_consecutive_off_topic, "off-topic"),
            (self.off_topic_total >= lim.max_off_topic, "off-topic"),
            (self.hostile >= lim.max_hostile, "hostility"),
            (self.confused >= lim.max_confused, "confusion"),
            (self.injection >= lim.max_injection, "manipulation attempts"),
            (self.debtor_turns >= lim.max_debtor_turns, "no progress"),
        )
        return next((cause for hit, cause in checks if hit), None)


def derail_callback_time(now: dt.datetime, tz: dt.tzinfo, hours: tuple[int, int]) -> dt.datetime:
    """Tomorrow, same local hour (clamped into daytime calling hours), on the hour."""
    local = now.astimezone(tz)
    lo, hi = hours
    hour = min(max(local.hour, lo), hi)
    day = local.date() + dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(hour), tzinfo=tz)
