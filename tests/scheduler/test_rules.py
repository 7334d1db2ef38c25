"""The calling rules (services/common/calling_rules): property tests over instants, zones and
DST changes, and the split area codes the zone lookup must not miss."""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.calling_rules import (
    Allowed,
    DebtorContact,
    History,
    Intent,
    Refused,
    RulesConfig,
    earliest_allowed,
    in_window,
    next_window_start,
    possible_zones,
    retry_delay,
)

US_ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",  # no DST
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Boise",
    "America/Indiana/Indianapolis",
]
# Numbers whose area code spans two zones, and one that is all over the map.
NYC = "+12125550100"
SPLIT = {
    "+15415550100": {"America/Los_Angeles", "America/Boise"},  # Oregon, Malheur County on MT
    "+18505550100": {"America/Chicago", "America/New_York"},  # Florida panhandle
    "+13085550100": {"America/Chicago", "America/Denver"},  # western Nebraska
    "+16055550100": {"America/Chicago", "America/Denver"},  # South Dakota
}
CFG = RulesConfig()

instants = st.datetimes(
    min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)
)
# The nights clocks change, where a naive "add a day" or fixed offset goes wrong.
dst_instants = st.sampled_from(
    [
        datetime(2026, 3, 8, tzinfo=UTC),
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2027, 3, 14, tzinfo=UTC),
        datetime(2027, 11, 7, tzinfo=UTC),
    ]
).flatmap(lambda d: st.integers(0, 36 * 60).map(lambda m: d + timedelta(minutes=m)))
any_instant = st.one_of(instants, dst_instants)


def local(at: datetime, zone: str) -> time:
    return at.astimezone(ZoneInfo(zone)).time().replace(tzinfo=None)


@settings(max_examples=300, deadline=None)
@given(at=any_instant, zone=st.sampled_from(US_ZONES))
def test_next_window_start_is_the_first_instant_inside_the_window(at: datetime, zone: str) -> None:
    got = next_window_start(at, zone, CFG.window_start, CFG.window_end)
    assert got >= at
    assert time(8, 0) <= local(got, zone) < time(21, 0)
    if got > at:
        # Nothing earlier was allowed: a minute before is outside (it opens at exactly 08:00).
        assert local(got, zone) == time(8, 0)
        assert not in_window(max(at, got - timedelta(minutes=1)), zone, time(8), time(21))
    # Never more than a day and a few hours away (the longest night is 11 h, +1 h for DST).
    assert got - at <= timedelta(hours=12)


@settings(max_examples=300, deadline=None)
@given(at=any_instant, phone=st.sampled_from([NYC, *SPLIT]))
def test_an_allowed_time_is_inside_the_window_in_every_zone_the_number_may_mean(
    at: datetime, phone: str
) -> None:
    contact = DebtorContact(phone=phone)
    verdict = earliest_allowed(at, contact, History(), Intent("manual"), CFG)
    assert isinstance(verdict, Allowed)
    assert verdict.at >= at
    for zone in possible_zones(contact):
        assert time(8, 0) <= local(verdict.at, zone) < time(21, 0), zone
    # And it is the earliest such time, to the minute.
    before = verdict.at - timedelta(minutes=1)
    if before >= at:
        assert not all(in_window(before, z, time(8), time(21)) for z in possible_zones(contact))


def test_split_area_codes_give_both_zones() -> None:
    # phonenumbers alone gives one zone for 541, 850 and 308; the ZIP data adds the other.
    for phone, zones in SPLIT.items():
        assert zones <= possible_zones(DebtorContact(phone=phone)), phone
    assert possible_zones(DebtorContact(phone=NYC)) == {"America/New_York"}


def test_the_record_zone_wins_and_the_zip_adds_to_the_number() -> None:
    assert possible_zones(DebtorContact(NYC, timezone="America/Denver")) == {"America/Denver"}
    # A New York number with a Los Angeles address: both must be inside the window.
    both = possible_zones(DebtorContact(NYC, postal_code="90012"))
    assert both == {"America/New_York", "America/Los_Angeles"}
    at = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)  # 08:00 New York, 05:00 Los Angeles
    verdict = earliest_allowed(
        at, DebtorContact(NYC, postal_code="90012"), History(), Intent("manual"), CFG
    )
    assert isinstance(verdict, Allowed)
    assert verdict.at == datetime(2026, 6, 1, 15, 0, tzinfo=UTC)  # 08:00 Los Angeles


def test_no_zone_known_or_no_common_window_is_refused() -> None:
    bad_zone = earliest_allowed(
        datetime(2026, 6, 1, tzinfo=UTC),
        DebtorContact(NYC, timezone="Mars/Olympus"),
        History(),
        Intent("manual"),
        CFG,
    )
    assert isinstance(bad_zone, Refused) and "unknown" in bad_zone.reason
    # With a one-hour window, New York and Los Angeles never share a calling hour.
    narrow = RulesConfig(window_start=time(9), window_end=time(10))
    apart = earliest_allowed(
        datetime(2026, 6, 1, tzinfo=UTC),
        DebtorContact(NYC, postal_code="90012"),
        History(),
        Intent("manual"),
        narrow,
    )
    assert isinstance(apart, Refused) and "every zone" in apart.reason
    assert "America/Los_Angeles" in apart.reason and "America/New_York" in apart.reason


def test_a_toll_free_number_is_called_only_when_it_is_daytime_everywhere_it_may_ring() -> None:
    anywhere = DebtorContact("+18005550100")
    zones = possible_zones(anywhere)
    assert {"Pacific/Guam", "Pacific/Pago_Pago", "America/St_Johns"} <= zones
    verdict = earliest_allowed(
        datetime(2026, 6, 1, 12, tzinfo=UTC), anywhere, History(), Intent("manual"), CFG
    )
    assert isinstance(verdict, Allowed)
    assert all(in_window(verdict.at, z, time(8), time(21)) for z in zones)


@settings(max_examples=200, deadline=None)
@given(
    now=instants,
    offsets=st.lists(st.integers(0, 7 * 24 * 60 - 1), min_size=0, max_size=12),
)
def test_never_more_than_seven_attempts_in_any_seven_days(
    now: datetime, offsets: list[int]
) -> None:
    attempts = sorted(now - timedelta(minutes=m) for m in offsets)
    contact = DebtorContact(NYC, timezone="America/New_York")
    verdict = earliest_allowed(now, contact, History(attempts=attempts), Intent("manual"), CFG)
    assert isinstance(verdict, Allowed)
    in_period = [a for a in attempts if a > verdict.at - timedelta(days=7)]
    assert len(in_period) < 7
    if len(attempts) < 7:
        # Below the cap only the window can hold it back.
        assert verdict.at - now <= timedelta(hours=12)


@settings(max_examples=200, deadline=None)
@given(now=instants, ago=st.integers(0, 10 * 24 * 60), requested=st.booleans())
def test_seven_quiet_days_after_a_conversation_unless_the_debtor_asked(
    now: datetime, ago: int, requested: bool
) -> None:
    talked = now - timedelta(minutes=ago)
    contact = DebtorContact(NYC, timezone="America/New_York")
    verdict = earliest_allowed(
        now, contact, History(last_conversation_at=talked), Intent("callback", requested), CFG
    )
    assert isinstance(verdict, Allowed)
    if not requested:
        assert verdict.at >= talked + timedelta(days=7)
    else:
        assert verdict.at - now <= timedelta(hours=12)
    assert in_window(verdict.at, "America/New_York", time(8), time(21))


def test_retries_are_capped_per_day_and_per_week() -> None:
    now = datetime(2026, 6, 2, 16, 0, tzinfo=UTC)  # 12:00 in New York
    contact = DebtorContact(NYC, timezone="America/New_York")
    three_today = [now - timedelta(hours=h) for h in (1, 2, 3)]
    verdict = earliest_allowed(
        now, contact, History(attempts=three_today, retries=three_today), Intent("retry"), CFG
    )
    assert isinstance(verdict, Allowed)
    assert verdict.at == three_today[-1] + timedelta(days=1)  # the oldest ages out of the day
    # A manual trigger is not a retry: only the 7-in-7 cap counts for it.
    manual = earliest_allowed(
        now, contact, History(attempts=three_today, retries=three_today), Intent("manual"), CFG
    )
    assert isinstance(manual, Allowed) and manual.at == now
    week = [now - timedelta(days=d, hours=1) for d in range(6)]
    capped = earliest_allowed(
        now, contact, History(attempts=week, retries=week), Intent("retry"), CFG
    )
    assert isinstance(capped, Allowed) and capped.at >= week[-1] + timedelta(days=7)
    off = RulesConfig(retry_max_per_day=0)
    assert isinstance(earliest_allowed(now, contact, History(), Intent("retry"), off), Refused)


@given(attempt=st.integers(1, 30), seed=st.integers(0, 2**32))
def test_retry_backoff_doubles_to_the_cap_with_jitter(attempt: int, seed: int) -> None:
    cfg = RulesConfig(retry_base=timedelta(minutes=15), retry_cap=timedelta(hours=4))
    step = min(cfg.retry_cap, cfg.retry_base * 2 ** (attempt - 1))
    delay = retry_delay(attempt, cfg, random.Random(seed))
    assert step / 2 <= delay <= step
    assert delay == retry_delay(attempt, cfg, random.Random(seed))  # seeded: repeatable


def test_jitter_spreads_the_retries_of_many_calls() -> None:
    delays = {retry_delay(2, CFG, random.Random(seed)) for seed in range(50)}
    assert len(delays) > 40
