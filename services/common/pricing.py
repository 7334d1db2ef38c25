"""Usage → cost, in integer micro-USD (no floats anywhere, so sums never drift).

Each vendor's figure is rounded *up* to a whole micro-dollar, and telephony to the started minute
as Twilio bills it; the total is the sum of the rounded vendor figures.
"""

from __future__ import annotations

from dataclasses import dataclass

from generated.call_cost import CallCost
from generated.call_usage import CallUsage
from services.common.settings import Settings


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class Prices:
    twilio_per_minute: int
    deepgram_per_minute: int
    openai_input_per_mtok: int
    openai_cached_input_per_mtok: int
    openai_output_per_mtok: int
    elevenlabs_per_kchar: int

    @classmethod
    def from_settings(cls, s: Settings) -> Prices:
        return cls(
            twilio_per_minute=s.price_twilio_micro_usd_per_minute,
            deepgram_per_minute=s.price_deepgram_micro_usd_per_minute,
            openai_input_per_mtok=s.price_openai_input_micro_usd_per_mtok,
            openai_cached_input_per_mtok=s.price_openai_cached_input_micro_usd_per_mtok,
            openai_output_per_mtok=s.price_openai_output_micro_usd_per_mtok,
            elevenlabs_per_kchar=s.price_elevenlabs_micro_usd_per_kchar,
        )


def cost_of(usage: CallUsage, prices: Prices) -> CallCost:
    telephony_minutes = _ceil_div(usage.telephony_seconds or 0, 60)
    telephony = telephony_minutes * prices.twilio_per_minute
    stt = _ceil_div((usage.stt_audio_seconds or 0) * prices.deepgram_per_minute, 60)
    cached = usage.llm_cached_input_tokens or 0
    # OpenAI reports cached tokens as part of prompt tokens; bill them at the cached rate only.
    uncached = max((usage.llm_input_tokens or 0) - cached, 0)
    llm = _ceil_div(
        uncached * prices.openai_input_per_mtok
        + cached * prices.openai_cached_input_per_mtok
        + (usage.llm_output_tokens or 0) * prices.openai_output_per_mtok,
        1_000_000,
    )
    tts = _ceil_div((usage.tts_characters or 0) * prices.elevenlabs_per_kchar, 1_000)
    return CallCost(
        telephony_micro_usd=telephony,
        stt_micro_usd=stt,
        llm_micro_usd=llm,
        tts_micro_usd=tts,
        total_micro_usd=telephony + stt + llm + tts,
    )


def format_usd(micro_usd: int) -> str:
    """`1234567` → `$1.234567` (exact, for display)."""
    sign = "-" if micro_usd < 0 else ""
    whole, frac = divmod(abs(micro_usd), 1_000_000)
    return f"{sign}${whole}.{frac:06d}"


def per_unit(total_micro_usd: int, units: int) -> int | None:
    """Total divided by a count, rounded half up to a whole micro-dollar; None for no units."""
    if units <= 0:
        return None
    return (total_micro_usd * 2 + units) // (units * 2)
