"""The campaign demo's generated file (scripts/demo_campaign.py), read by the import's own row
parser: every good row is a valid debtor with its persona's facts on file, each bad row is
refused on the field it was made bad on, and only zones inside their calling window are used."""

from __future__ import annotations

from datetime import UTC, datetime

from scripts.demo_campaign import (
    ALL_DAY_ENV,
    BAD_ROWS,
    campaign_env,
    debtor_rows,
    open_zones,
    stats_table,
    to_csv,
)
from services.client_api.imports_rows import parse_batch, parse_header
from simulators.personas import load_personas

# 18:00 UTC: 13:00 in New York, 08:00 in Honolulu; 10:00 UTC: 05:00 in New York, 00:00 in Honolulu.
AFTERNOON_EAST = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
NIGHT_EVERYWHERE = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)


def test_only_open_zones_are_used_and_the_window_is_widened_only_when_none_is() -> None:
    zones = {z for z, _ in open_zones(AFTERNOON_EAST)}
    assert {"America/New_York", "America/Los_Angeles", "Pacific/Honolulu"} <= zones
    assert campaign_env(AFTERNOON_EAST) == {}
    assert open_zones(NIGHT_EVERYWHERE) == []
    assert campaign_env(NIGHT_EVERYWHERE) == ALL_DAY_ENV
    rows = debtor_rows(14, AFTERNOON_EAST, "t")
    assert {r["timezone"] for r in rows} <= zones


def test_the_file_parses_into_good_debtors_and_the_bad_rows_fail_on_their_field() -> None:
    n = 14
    rows = debtor_rows(n, AFTERNOON_EAST, "t")
    header, _, body = to_csv(rows).partition(b"\n")
    columns = parse_header(header)
    parsed = parse_batch(body, "csv", 2, columns)
    assert len(parsed) == n + len(BAD_ROWS)
    good, bad = parsed[:n], parsed[n:]
    assert all(p.debtor is not None and not p.errors for p in good), [p.errors for p in good]
    assert [p.errors[0].field for p in bad] == [next(iter(b)) for b, _ in BAD_ROWS]
    personas = load_personas()
    for row, p in zip(rows, good, strict=False):
        assert p.debtor is not None
        facts = personas[row["metadata.persona"]].facts
        if "date_of_birth" in facts:
            assert p.debtor.date_of_birth is not None
            assert p.debtor.date_of_birth.isoformat() == facts["date_of_birth"]
    assert len({r["external_id"] for r in rows}) == len(rows)


def test_stats_table_prints_rates_and_costs() -> None:
    funnel = {
        "calls_placed": 4,
        "connection_rate_bp": 7500,
        "right_party_contact_rate_bp": 6667,
        "promise_rate_bp": None,
        "kept_rate_bp": None,
        "cost_per_call_micro_usd": 63_125,
        "cost_per_kept_promise_micro_usd": None,
    }
    lines = stats_table({"variants": [{"variant": "default", "funnel": funnel}], "total": funnel})
    assert lines[1].split() == ["default", "4", "75.0%", "66.7%", "-", "-", "$0.0631", "-"]
    assert lines[2].split()[0] == "all"
