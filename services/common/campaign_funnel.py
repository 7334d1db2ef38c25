"""A campaign's funnel from stored counts: rates in integer basis points, costs per unit in
integer micro-USD (no floats). Pure; the SQL that counts is in
services/client_api/routers/campaign_stats.py.

    connection rate          = connected_calls      / calls_placed
    right-party contact rate = right_party_contacts / connected_calls
    promise rate             = promises             / right_party_contacts
    kept rate                = promises_kept        / promises_judged  (docs/promises.md)
    cost per call            = total cost           / calls_placed
    cost per kept promise    = total cost           / promises_kept
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

from services.common.pricing import per_unit
from services.common.prompt_variants import DEFAULT_VARIANT

BASIS_POINTS = 10_000


@dataclass(frozen=True)
class FunnelCounts:
    calls_placed: int = 0
    connected_calls: int = 0
    right_party_contacts: int = 0
    promises: int = 0
    promises_judged: int = 0
    promises_kept: int = 0
    total_cost_micro_usd: int = 0

    def __add__(self, other: FunnelCounts) -> FunnelCounts:
        return FunnelCounts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


def rate_bp(numerator: int, denominator: int) -> int | None:
    """numerator / denominator in basis points, rounded half up; None for a zero denominator."""
    if denominator <= 0:
        return None
    return (numerator * BASIS_POINTS * 2 + denominator) // (denominator * 2)


def funnel(c: FunnelCounts) -> dict[str, int | None]:
    """The `CampaignFunnel` body (specs/schemas/client_api.json) for these counts."""
    return {
        "calls_placed": c.calls_placed,
        "connected_calls": c.connected_calls,
        "right_party_contacts": c.right_party_contacts,
        "promises": c.promises,
        "promises_judged": c.promises_judged,
        "promises_kept": c.promises_kept,
        "total_cost_micro_usd": c.total_cost_micro_usd,
        "connection_rate_bp": rate_bp(c.connected_calls, c.calls_placed),
        "right_party_contact_rate_bp": rate_bp(c.right_party_contacts, c.connected_calls),
        "promise_rate_bp": rate_bp(c.promises, c.right_party_contacts),
        "kept_rate_bp": rate_bp(c.promises_kept, c.promises_judged),
        "cost_per_call_micro_usd": per_unit(c.total_cost_micro_usd, c.calls_placed),
        "cost_per_kept_promise_micro_usd": per_unit(c.total_cost_micro_usd, c.promises_kept),
    }


def variant_order(weights: Mapping[str, int], seen: Iterable[str]) -> list[str]:
    """Every variant weighted or recorded (`default` too when there are no weights: everyone
    gets it): `default` first, then by id."""
    names = set(weights) | set(seen)
    if not weights:
        names.add(DEFAULT_VARIANT)
    return sorted(names, key=lambda v: (v != DEFAULT_VARIANT, v))
