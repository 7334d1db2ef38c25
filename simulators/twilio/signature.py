"""X-Twilio-Signature, computed the way Twilio does (and twilio.request_validator checks).

HMAC-SHA1 keyed with the account's auth token over the full URL followed by every POST parameter
name and value, sorted by name (and values of a repeated name sorted too), base64-encoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping


def compute_signature(
    auth_token: str, url: str, params: Mapping[str, str] | Iterable[tuple[str, str]] = ()
) -> str:
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    by_name: dict[str, set[str]] = {}
    for name, value in pairs:
        by_name.setdefault(name, set()).add(value)
    payload = url + "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    )
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()
