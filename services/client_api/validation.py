"""Checks a JSON Schema cannot express, run after the generated model accepted the body.

Each returns `(field, message)` pairs in the spec's field notation; the caller turns them into
one 422 problem, before anything is stored.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import zoneinfo
from collections.abc import Iterator
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
from pydantic import BaseModel

from generated.client_api import DebtorCreate, WebhookEndpointCreate
from services.common.currencies import is_accepted_currency
from services.common.settings import Settings

FieldError = tuple[str, str]


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def is_known_timezone(name: str) -> bool:
    # Membership, not ZoneInfo(name): no file lookups driven by client input.
    return name in _timezones()


def is_iso4217(code: str) -> bool:
    """An ISO 4217 currency we collect in: one table (services/common/currencies.py), which
    leaves out the codes without a minor unit (XAU, XTS, XXX, ...) and the fund codes."""
    return is_accepted_currency(code)


CURRENCY_MESSAGE = (
    "must be an ISO 4217 currency with a minor unit, e.g. USD; "
    "precious metals, fund and testing codes (XAU, CLF, XTS, XXX, ...) are not accepted"
)


def converts_to_utc(value: dt.datetime) -> bool:
    """False for an aware instant a zone shift pushes past year 1 or 9999 (e.g.
    0001-01-01T00:00:00+05:00): the database compares in UTC and would fail on it."""
    try:
        value.astimezone(dt.UTC)
    except OverflowError:
        return False
    return True


def is_valid_phone(number: str) -> bool:
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed) and (
        phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164) == number
    )


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(k, path)
            yield from _strings(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}.{i}")


def storable_text_errors(model: BaseModel | None, prefix: str = "body") -> list[FieldError]:
    """PostgreSQL text and JSONB cannot hold NUL characters or lone surrogates (JSON allows
    both); reject them as invalid input rather than fail on insert."""
    if model is None:
        return []
    errors: list[FieldError] = []
    for path, text in _strings(model.model_dump(mode="python"), prefix):
        if "\x00" in text:
            errors.append((path, "must not contain NUL characters"))
            continue
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            errors.append((path, "must be valid Unicode text"))
    return errors


def text_errors(value: str, field: str) -> list[FieldError]:
    if "\x00" in value:
        return [(field, "must not contain NUL characters")]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return [(field, "must be valid Unicode text")]
    return []


def debtor_errors(body: DebtorCreate) -> list[FieldError]:
    return storable_text_errors(body) + debtor_value_errors(body)


def debtor_value_errors(body: DebtorCreate) -> list[FieldError]:
    """`debtor_errors` without the text checks (for input known to hold no NUL character and
    no lone surrogate, e.g. an import row read as strict UTF-8 without JSON escapes)."""
    errors: list[FieldError] = []
    if not is_valid_phone(body.phone):
        errors.append(("body.phone", "must be a valid phone number in E.164, e.g. +14155550123"))
    if body.timezone is not None and not is_known_timezone(body.timezone):
        errors.append(("body.timezone", "must be an IANA time zone, e.g. America/New_York"))
    if not is_iso4217(body.amount_owed.currency):
        errors.append(("body.amount_owed.currency", CURRENCY_MESSAGE))
    dob = body.date_of_birth
    # A birth date nobody alive could have, or one in the future, is a data error upstream:
    # asking a person for it would fail every verification.
    if dob is not None and not _EARLIEST_BIRTH <= dob <= dt.date.today():
        errors.append(("body.date_of_birth", "must be a past date after 1900-01-01"))
    return errors


_EARLIEST_BIRTH = dt.date(1900, 1, 1)


# RFC 3986 characters (unreserved, reserved, percent); IRIs must be sent percent-encoded.
_URI_CHARS = re.compile(r"^[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+$")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_DNS_NAME = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$")


def _is_http_url(value: str) -> bool:
    if not _URI_CHARS.match(value) or _BAD_PERCENT.search(value):
        return False
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  # raises ValueError for a malformed port
    except ValueError:
        return False
    host = url.hostname
    if url.scheme not in ("http", "https") or not host:
        return False
    if url.netloc.rpartition("@")[2].startswith("["):
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    return bool(_DNS_NAME.match(host))


def webhook_endpoint_errors(body: WebhookEndpointCreate, settings: Settings) -> list[FieldError]:
    errors = storable_text_errors(body)
    if len(set(body.events)) != len(body.events):
        # `uniqueItems` in the spec; the generated list type does not enforce it.
        errors.append(("body.events", "must not list an event type twice"))
    if errors:
        return errors
    if not _is_http_url(body.url):
        return [("body.url", "must be an absolute http(s) URL (RFC 3986, ASCII)")]
    url = urlsplit(body.url)
    host = url.hostname or ""
    if settings.is_local:
        return []
    if url.scheme != "https":
        return [("body.url", "must use https")]
    # A production endpoint must be on the public internet, not our own network.
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host == "localhost" or host.endswith(".localhost") or host.endswith(".internal"):
            return [("body.url", "must be a public host")]
        return []
    if not ip.is_global:
        return [("body.url", "must be a public host")]
    return []
