"""The facts on file a caller can be asked for to verify they are the debtor (pure helpers).

Shared by the Client API (which lists the kinds on file, never the values) and the Voice
Orchestrator (which hands the values to the conversation core, never to the model).
"""

from __future__ import annotations

import re

_DIGIT = re.compile(r"\d")


def account_last4(account_reference: str | None) -> str | None:
    """The last 4 digits of the account reference ("ACME-2291" -> "2291"), or None when it has
    fewer than 4 digits: then there is nothing a person could be asked to say."""
    digits = _DIGIT.findall(account_reference or "")
    return "".join(digits[-4:]) if len(digits) >= 4 else None
