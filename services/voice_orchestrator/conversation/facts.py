"""The debtor snapshot a conversation runs on, and the policy numbers derived from it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from generated.negotiation_rules import NegotiationRules
from services.common.prompt_variants import DEFAULT_VARIANT, VARIANT_ID

from .enums import DelinquencyStage


class CallFacts(BaseModel):
    """Everything the core knows about the call: a frozen snapshot taken at dispatch time.

    The orchestrator maps the `call-dispatch` message into this; the core never fetches more.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    call_id: str = Field(min_length=1)
    debtor_name: str = Field(min_length=1)
    company_name: str = Field(min_length=1)
    agent_name: str = Field(min_length=1)
    stage: DelinquencyStage
    balance_minor: int = Field(ge=0, strict=True)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    due_date: dt.date
    timezone: str = Field(description="IANA time zone of the debtor, e.g. America/New_York")
    account_reference: str = ""
    # Facts on file for right-party verification (verification.py): compared with what the person
    # says, never rendered into a prompt or a line. None: not on file.
    date_of_birth: dt.date | None = None
    postal_code: str | None = Field(default=None, pattern=r"^[0-9]{5}$")
    account_last4: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    # The stage prompt's variant (services/common/prompt_variants.py), chosen at dispatch.
    prompt_variant: str = Field(default=DEFAULT_VARIANT, pattern=VARIANT_ID.pattern)
    # The client's terms this call negotiates within (the campaign's, else the stage's; see
    # services/common/negotiation.py). Checked by the guards, never shown to the model as limits.
    rules: NegotiationRules
    # The company's number the debtor can call to check the call is genuine (E.164).
    callback_number: str = Field(pattern=r"^\+[1-9][0-9]{6,14}$")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def promise_window_days(self) -> int:
        """How far ahead the first (or only) payment may lie, in the debtor's days."""
        return self.rules.latest_first_payment_days

    def local_today(self, now: dt.datetime) -> dt.date:
        """The debtor's calendar date at `now` (promise windows are in the debtor's days)."""
        return now.astimezone(self.tz).date()

    def latest_promise_date(self, now: dt.datetime) -> dt.date:
        return self.local_today(now) + dt.timedelta(days=self.promise_window_days)

    def days_past_due(self, now: dt.datetime) -> int:
        return max(0, (self.local_today(now) - self.due_date).days)
