"""Prompt variants for A/B tests: which variants a stage has, and which one a debtor gets.

A stage's guidance text exists in one or more variants, `prompts/stages/<stage>/<variant>.md`
(each with its own `version:`); `default` is the text calls used before variants existed and the
one every call gets outside a campaign. A campaign sets integer weights per variant
(`{"default": 1, "plan_first": 1}`); `choose_variant` splits its debtors by those weights with a
hash of the debtor id, so the split follows the weights and a debtor keeps the same variant on
every call (retries, callbacks, a second dispatch) as long as the weights stay the same.

No I/O beyond listing the prompt directory once (cached); no database, no clock, no randomness.
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from collections.abc import Mapping
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts"
DEFAULT_VARIANT = "default"
# A variant id is a file name stem: lower-case snake_case, at most 32 characters
# (specs/schemas/call.json `prompt_variant`).
VARIANT_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
STAGES = ("pre_delinquency", "early", "late")


@functools.cache
def _variants(stage: str, directory: Path) -> tuple[str, ...]:
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}")
    found = sorted(
        p.stem for p in (directory / "stages" / stage).glob("*.md") if VARIANT_ID.match(p.stem)
    )
    if DEFAULT_VARIANT not in found:
        raise ValueError(f"{directory}/stages/{stage}: no {DEFAULT_VARIANT}.md")
    return (DEFAULT_VARIANT, *(v for v in found if v != DEFAULT_VARIANT))


def available_variants(stage: str, directory: Path = PROMPTS_DIR) -> list[str]:
    """The stage's variant ids, `default` first, then by name."""
    return list(_variants(stage, directory))


def check_weights(stage: str, weights: Mapping[str, int], directory: Path = PROMPTS_DIR) -> None:
    """Raise ValueError unless every key is a variant of `stage` and every weight a
    non-negative integer, with at least one positive (an empty map is fine: default only)."""
    known = _variants(stage, directory)
    for variant, weight in weights.items():
        if variant not in known:
            raise ValueError(
                f"unknown prompt variant {variant!r} for stage {stage!r}; known: {list(known)}"
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise ValueError(f"weight of {variant!r} must be a non-negative integer")
    if weights and not any(weights.values()):
        raise ValueError("at least one weight must be positive")


def bucket(debtor_id: uuid.UUID) -> int:
    """The debtor's fixed point in [0, 2**64): the first 8 bytes of SHA-256 of its id."""
    digest = hashlib.sha256(b"prompt-variant:" + debtor_id.bytes).digest()
    return int.from_bytes(digest[:8], "big")


def choose_variant(debtor_id: uuid.UUID, weights: Mapping[str, int]) -> str:
    """The variant for this debtor under these weights; `default` when no weight is positive.

    Variants are laid out by id in sorted order on [0, 1), each over its share of the total
    weight, and the debtor falls where its hash puts it. Deterministic: the same debtor and
    weights always give the same variant (the order of the mapping does not matter).
    """
    items = sorted((v, w) for v, w in weights.items() if w > 0)
    total = sum(w for _, w in items)
    if total <= 0:
        return DEFAULT_VARIANT
    # The point scaled to [0, total) exactly: floor(bucket * total / 2**64).
    point = bucket(debtor_id) * total >> 64
    for variant, weight in items:
        if point < weight:
            return variant
        point -= weight
    raise AssertionError("unreachable: point < total")
