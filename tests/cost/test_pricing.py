"""Cost arithmetic: integers only, hand-computed figures, no drift over many calls."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from generated.call_usage import CallUsage
from services.common.pricing import Prices, cost_of, format_usd
from services.common.settings import Settings

PRICES = Prices.from_settings(Settings())


def test_hand_computed_call() -> None:
    usage = CallUsage(
        telephony_seconds=61,  # two started minutes
        stt_audio_seconds=90,
        llm_input_tokens=10_000,
        llm_cached_input_tokens=4_000,
        llm_output_tokens=500,
        tts_characters=1_234,
    )
    cost = cost_of(usage, PRICES)
    assert cost.telephony_micro_usd == 2 * 14_000
    assert cost.stt_micro_usd == 90 * 7_700 // 60  # 11_550, exact
    # 6_000 uncached * 0.25 + 4_000 cached * 0.025 + 500 * 2.00 = 1_500 + 100 + 1_000
    assert cost.llm_micro_usd == 2_600
    assert cost.tts_micro_usd == 61_700  # 1_234 * 50 = 61_700
    assert cost.total_micro_usd == 28_000 + 11_550 + 2_600 + 61_700
    assert format_usd(cost.total_micro_usd) == "$0.103850"


def test_fractions_round_up_per_vendor() -> None:
    cost = cost_of(CallUsage(stt_audio_seconds=1, llm_output_tokens=1, tts_characters=1), PRICES)
    assert cost.stt_micro_usd == 129  # 7_700 / 60 = 128.33 → 129
    assert cost.llm_micro_usd == 2
    assert cost.tts_micro_usd == 50
    assert cost.telephony_micro_usd == 0


@given(
    st.lists(
        st.tuples(*(st.integers(0, 10**7) for _ in range(5))),
        min_size=1,
        max_size=50,
    )
)
def test_sum_of_calls_is_exact(calls: list[tuple[int, int, int, int, int]]) -> None:
    total = 0
    for tel, stt, inp, out, chars in calls:
        c = cost_of(
            CallUsage(
                telephony_seconds=tel,
                stt_audio_seconds=stt,
                llm_input_tokens=inp,
                llm_cached_input_tokens=inp // 2,
                llm_output_tokens=out,
                tts_characters=chars,
            ),
            PRICES,
        )
        parts = [c.telephony_micro_usd, c.stt_micro_usd, c.llm_micro_usd, c.tts_micro_usd]
        assert all(isinstance(p, int) and p >= 0 for p in parts)
        assert c.total_micro_usd == sum(parts)  # type: ignore[arg-type]
        total += c.total_micro_usd or 0
    assert isinstance(total, int)
