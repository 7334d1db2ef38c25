"""Prompt variants for A/B tests: the files, the sticky weighted split, what the core renders."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from pathlib import Path

import pytest
from conversation_support import NOW, facts
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.prompt_variants import (
    DEFAULT_VARIANT,
    available_variants,
    check_weights,
    choose_variant,
)
from services.common.prompt_versions import prompt_version
from services.voice_orchestrator.conversation import (
    Conversation,
    DelinquencyStage,
    default_prompt_set,
    load_prompt_set,
)
from services.voice_orchestrator.conversation.prompting import template_values

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"
STAGES = [s.value for s in DelinquencyStage]
# 20,000 fixed debtor ids: the split over them is deterministic for given weights.
DEBTORS = [uuid.uuid5(uuid.NAMESPACE_URL, f"debtor-{i}") for i in range(20_000)]


def _verified(conv: Conversation) -> Conversation:
    conv.add_debtor_turn("Hello?")
    conv.add_agent_turn(conv.greeting_line())
    conv.add_debtor_turn("Yes, this is me.")
    assert conv.add_tool_call("c", "confirm_identity", "{}").ok
    return conv


# --- the files ------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_has_the_default_first_and_a_real_alternative(stage: str) -> None:
    variants = available_variants(stage)
    assert variants[0] == DEFAULT_VARIANT and "plan_first" in variants
    docs = default_prompt_set().variants[DelinquencyStage(stage)]
    assert list(docs) == sorted(variants)
    bodies = {docs[v].body for v in variants}
    assert len(bodies) == len(variants), "variants differ in their text"


@pytest.mark.parametrize("stage", STAGES)
def test_scheduler_and_core_record_the_same_version_per_variant(stage: str) -> None:
    prompts = load_prompt_set(PROMPTS)
    for variant in available_variants(stage):
        expected = prompts.version(DelinquencyStage(stage), variant)
        assert prompt_version(stage, variant) == expected
        assert f"+{stage}/{variant}@" in expected


@pytest.mark.parametrize("stage", STAGES)
def test_no_variant_threatens_or_invents_consequences(stage: str) -> None:
    banned = re.compile(
        r"\b(legal|lawsuit|sue|court|attorney|credit (report|score|bureau)|garnish\w*|arrest|"
        r"police|fee|fees|interest|penalt\w*|collections agency|final notice|last chance)\b",
        re.IGNORECASE,
    )
    for variant, doc in default_prompt_set().variants[DelinquencyStage(stage)].items():
        assert not banned.search(doc.body), (stage, variant, banned.search(doc.body))


def test_a_stage_directory_without_default_is_refused(tmp_path: Path) -> None:
    for name in ("policy.md", "lines.md"):
        (tmp_path / name).write_text((PROMPTS / name).read_text())
    for stage in STAGES:
        (tmp_path / "stages" / stage).mkdir(parents=True)
        (tmp_path / "stages" / stage / "plan_first.md").write_text(
            (PROMPTS / "stages" / stage / "plan_first.md").read_text()
        )
    with pytest.raises(ValueError, match=r"default\.md"):
        load_prompt_set(tmp_path)
    with pytest.raises(ValueError, match=r"default\.md"):
        available_variants("early", tmp_path)


# --- what the core renders --------------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_the_call_renders_its_variant_only_after_verification(stage: str) -> None:
    docs = default_prompt_set().variants[DelinquencyStage(stage)]
    for variant, doc in docs.items():
        conv = Conversation(facts(stage=stage, prompt_variant=variant), NOW)
        first_sentence = doc.body.splitlines()[0]  # the heading: same words in every variant
        assert first_sentence not in conv.system_prompt()
        prompt = _verified(conv).system_prompt()
        assert not re.search(r"[{}$]", prompt)
        # Its own guidance, filled in, is in the prompt; no other variant's is.
        values = template_values(conv.facts, NOW)
        for other, other_doc in docs.items():
            rendered = other_doc.body.format_map(values)
            assert (rendered in prompt) == (other == variant), (variant, other)
        assert conv.prompt_variant == variant
        assert conv.prompt_version.endswith(f"{stage}/{variant}@{doc.version}")


def test_plan_first_leads_with_a_partial_payment_default_with_the_full_balance() -> None:
    default = _verified(Conversation(facts(stage="late"), NOW)).system_prompt()
    plan = _verified(
        Conversation(facts(stage="late", prompt_variant="plan_first"), NOW)
    ).system_prompt()
    assert "Ask for the full balance by" in default and "Lead with a plan" not in default
    assert "Lead with a plan rather than the full balance" in plan
    assert "Ask for the full balance by" not in plan
    # Same policy prefix (the provider's prompt cache), different stage guidance.
    policy = default_prompt_set().policy.body
    assert default.startswith(policy) and plan.startswith(policy)


def test_an_unknown_variant_falls_back_to_the_default_and_says_so() -> None:
    conv = Conversation(facts(stage="early", prompt_variant="not_shipped_yet"), NOW)
    assert conv.prompt_variant == DEFAULT_VARIANT
    assert conv.prompt_version == default_prompt_set().version(DelinquencyStage.EARLY)
    assert "Aim for the full balance" in _verified(conv).system_prompt()


# --- the split ------------------------------------------------------------------------------

weights_st = st.dictionaries(
    st.sampled_from(["default", "plan_first", "b", "c_2"]),
    st.integers(min_value=0, max_value=100),
    min_size=1,
).filter(lambda w: sum(w.values()) > 0)


@settings(max_examples=25, deadline=None)
@given(weights=weights_st)
def test_split_follows_the_weights(weights: dict[str, int]) -> None:
    counts = Counter(choose_variant(d, weights) for d in DEBTORS)
    total = sum(weights.values())
    assert set(counts) <= {v for v, w in weights.items() if w > 0}
    for variant, weight in weights.items():
        share = counts[variant] / len(DEBTORS)
        # Binomial sd over 20,000 draws is at most 0.0036; 0.02 is more than 5 sd.
        assert abs(share - weight / total) < 0.02, (variant, share, weight / total)


@given(
    debtor=st.uuids(),
    weights=weights_st,
    order=st.randoms(use_true_random=False),
)
def test_assignment_is_sticky_and_ignores_the_mapping_order(
    debtor: uuid.UUID, weights: dict[str, int], order: object
) -> None:
    first = choose_variant(debtor, weights)
    items = list(weights.items())
    order.shuffle(items)  # type: ignore[attr-defined]
    assert choose_variant(debtor, dict(items)) == first
    assert choose_variant(uuid.UUID(str(debtor)), weights) == first
    assert weights[first] > 0


@given(debtor=st.uuids())
def test_no_positive_weight_means_the_default(debtor: uuid.UUID) -> None:
    assert choose_variant(debtor, {}) == DEFAULT_VARIANT
    assert choose_variant(debtor, {"plan_first": 0}) == DEFAULT_VARIANT
    assert choose_variant(debtor, {"plan_first": 3}) == "plan_first"


def test_the_split_is_stable_across_releases() -> None:
    """Pinned assignments: changing the hash would move debtors mid-experiment."""
    got = [choose_variant(d, {"default": 2, "plan_first": 1, "c_2": 1}) for d in DEBTORS[:12]]
    assert got == [
        *("plan_first", "default", "default", "plan_first", "default", "default"),
        *("default", "default", "default", "default", "c_2", "plan_first"),
    ]


def test_check_weights() -> None:
    check_weights("late", {})
    check_weights("late", {"default": 0, "plan_first": 2})
    with pytest.raises(ValueError, match="unknown prompt variant"):
        check_weights("late", {"shouting": 1})
    with pytest.raises(ValueError, match="non-negative integer"):
        check_weights("late", {"plan_first": -1})
    with pytest.raises(ValueError, match="non-negative integer"):
        check_weights("late", {"plan_first": True})
    with pytest.raises(ValueError, match="at least one weight"):
        check_weights("late", {"default": 0})
    with pytest.raises(ValueError, match="unknown stage"):
        check_weights("overdue", {})
