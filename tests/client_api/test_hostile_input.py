"""Hostile input, by class (issue 19): any cursor string decodes to a valid position or is the
400 problem; any query parameter value of a list endpoint is a 2xx or a 4xx problem on a
connection that stays open."""

from __future__ import annotations

import base64
import http.client
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote_from_bytes, urlsplit

import httpx
import pycountry
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scripts.processes import ServiceProcess
from services.client_api.auth_gate import is_authenticated_path
from services.client_api.openapi import served_spec
from services.client_api.pagination import decode_cursor, encode_cursor
from services.client_api.problems import INVALID_CURSOR, ProblemError
from services.common.currencies import MINOR_UNITS, REFUSED
from tests.client_api.conftest import API_KEY, create_debtor, debtor_body

# --- the cursor decoder is total ----------------------------------------------------------

KIND, FILTERS = "debtors", {"status": "queued"}
_REAL = encode_cursor(KIND, FILTERS, datetime(2026, 11, 1, tzinfo=UTC), uuid.uuid4())
# A real cursor's document: the tampered ones below keep its list and scope, so they reach the
# timestamp and id checks instead of failing on the scope.
REAL_DOC: dict[str, Any] = json.loads(base64.urlsafe_b64decode(_REAL + "=" * (-len(_REAL) % 4)))

# Instants at the ends of the range, with a zone on the side that overflows UTC.
edge_timestamps = st.builds(
    lambda d, h: d.replace(tzinfo=timezone(timedelta(hours=h))).isoformat(),
    st.sampled_from([datetime.min, datetime.max, datetime(1, 1, 1, 12), datetime(9999, 12, 31)]),
    st.integers(-23, 23),
)
json_values = st.recursive(
    st.none()
    | edge_timestamps
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat()),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


def as_cursor(doc: Any) -> str:
    raw = json.dumps(doc, separators=(",", ":")).encode("utf-8", "surrogatepass")
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def tampered_docs(real: dict[str, Any] = REAL_DOC) -> st.SearchStrategy[Any]:
    field = st.sampled_from(["k", "f", "t", "i"])
    mutated = st.builds(lambda k, v: {**real, k: v}, field, json_values | edge_timestamps)
    dropped = field.map(lambda k: {f: v for f, v in real.items() if f != k})
    return mutated | dropped | json_values


def assert_total(token: str) -> None:
    try:
        created_at, id_ = decode_cursor(token, KIND, FILTERS)
    except ProblemError as exc:
        assert exc.status == 400 and exc.type == INVALID_CURSOR
        return
    assert isinstance(id_, uuid.UUID)
    # In range for the database: already in UTC, so no later conversion can overflow.
    assert created_at.utcoffset() is not None and created_at.tzinfo == UTC


@pytest.mark.parametrize(
    "value",
    [
        ("i", 123),
        ("i", ["a"]),
        ("i", {"x": 1}),
        ("t", "0001-01-01T00:00:00+05:00"),
        ("t", "9999-12-31T23:59:59-05:00"),
        ("t", 20261101),
        ("t", "2026-11-01T00:00:00"),
    ],
)
def test_the_tampered_cursors_of_the_report_are_400(value: tuple[str, Any]) -> None:
    with pytest.raises(ProblemError) as exc:
        decode_cursor(as_cursor({**REAL_DOC, value[0]: value[1]}), KIND, FILTERS)
    assert exc.value.status == 400 and exc.value.type == INVALID_CURSOR


def test_in_range_cursors_decode_to_the_same_instant_in_utc() -> None:
    edge = datetime.fromisoformat("9999-12-31T23:59:59+00:00")
    assert decode_cursor(as_cursor({**REAL_DOC, "t": edge.isoformat()}), KIND, FILTERS)[0] == edge
    shifted = decode_cursor(
        as_cursor({**REAL_DOC, "t": "2026-11-01T05:00:00+05:00"}), KIND, FILTERS
    )
    assert shifted[0] == datetime(2026, 11, 1, tzinfo=UTC) and shifted[0].tzinfo == UTC
    assert decode_cursor(_REAL, KIND, FILTERS)[1] == uuid.UUID(REAL_DOC["i"])


@settings(max_examples=2000, deadline=None)
@given(st.text())
def test_any_string_decodes_or_is_the_400(token: str) -> None:
    assert_total(token)


@settings(max_examples=2000, deadline=None)
@given(tampered_docs())
def test_any_json_document_as_a_cursor_decodes_or_is_the_400(doc: Any) -> None:
    assert_total(as_cursor(doc))


def test_deeply_nested_and_huge_cursor_documents_are_400() -> None:
    for raw in [b"[" * 100_000, b"1" * 10_000, b"\xff\xfe", b'{"k":"debtors"']:
        assert_total(base64.urlsafe_b64encode(raw).decode())
        with pytest.raises(ProblemError):
            decode_cursor(base64.urlsafe_b64encode(raw).decode(), KIND, FILTERS)


# --- every query parameter of the list endpoints, against the running API -------------------


def _list_operations() -> dict[str, list[str]]:
    """Path → query parameter names of every GET operation that pages (has `cursor`)."""
    spec = served_spec()

    def name(param: dict[str, Any]) -> str:
        if "$ref" in param:
            param = spec["components"]["parameters"][param["$ref"].rsplit("/", 1)[1]]
        return str(param["name"])

    ops = {}
    for path, item in spec["paths"].items():
        params = [name(p) for p in item.get("get", {}).get("parameters", [])]
        if "cursor" in params:
            ops[path] = params
    return ops


LIST_OPERATIONS = _list_operations()


# Any bytes a client can put in a query string (percent-encoded: invalid UTF-8, NUL, controls),
# text, and cursors built from tampered documents of a real one.
def hostile_values(path: str) -> st.SearchStrategy[bytes]:
    # The list's own cursor document, as issued without filters (None filters do not count).
    kind = path.rsplit("/", 1)[1]
    real = encode_cursor(kind, {}, datetime(2026, 11, 1, tzinfo=UTC), uuid.uuid4())
    doc = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    return (
        st.binary(max_size=64)
        | st.text(max_size=64).map(lambda t: t.encode("utf-8", "surrogatepass"))
        | tampered_docs(doc).map(lambda d: as_cursor(d).encode())
        | st.sampled_from([b"0", b"-1", b"101", b"1e3", b"99999999999999999999", b"", b"null"])
    )


class KeepAlive:
    """One HTTP/1.1 connection that is never reopened: a server that drops it (a traceback
    after the response, `Connection: close`) fails the next request instead of going unseen."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        self.conn.connect()
        self.conn.auto_open = 0  # type: ignore[attr-defined]

    def get(self, target: str) -> tuple[int, dict[str, str], bytes]:
        self.conn.request("GET", target, headers={"Authorization": f"Bearer {API_KEY}"})
        resp = self.conn.getresponse()
        body = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


@pytest.fixture
def keep_alive(api_server: ServiceProcess) -> Iterator[KeepAlive]:
    c = KeepAlive(api_server.url)
    yield c
    c.conn.close()


async def test_list_pages_exist_to_tamper_with(client: httpx.AsyncClient) -> None:
    # Two debtors at least, so `limit=1` pages and the tampered cursors reach the database.
    for _ in range(2):
        await create_debtor(client)
    page = (await client.get("/v1/debtors", params={"limit": 1})).json()
    assert page["next_cursor"]


@pytest.mark.parametrize("path", sorted(LIST_OPERATIONS))
def test_any_query_parameter_value_is_2xx_or_a_4xx_problem(
    path: str, keep_alive: KeepAlive
) -> None:
    params = LIST_OPERATIONS[path]
    values = hostile_values(path)
    # Often the cursor alone: with a filter its scope no longer matches and it never gets far.
    queries = st.fixed_dictionaries({"cursor": values}) | st.dictionaries(
        st.sampled_from(params), values, min_size=1
    )

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(queries)
    def check(query: dict[str, bytes]) -> None:
        qs = "&".join(f"{k}={quote_from_bytes(v, safe='')}" for k, v in query.items())
        status, headers, body = keep_alive.get(f"{path}?{qs}")
        assert status < 500, (query, body[:300])
        if status >= 400:
            assert headers["content-type"].startswith("application/problem+json"), body[:300]
            assert json.loads(body)["status"] == status
        assert headers.get("connection", "").lower() != "close", query

    check()
    # The connection is still the first one and still answers.
    assert keep_alive.get("/v1/debtors?limit=1")[0] == 200


@pytest.mark.parametrize("t", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"])
def test_out_of_range_cursor_timestamps_are_400_on_a_live_connection(
    t: str, keep_alive: KeepAlive
) -> None:
    status, _, body = keep_alive.get("/v1/debtors?limit=1")
    real = json.loads(body)["next_cursor"]
    doc = json.loads(base64.urlsafe_b64decode(real + "=" * (-len(real) % 4)))
    for tampered in ({**doc, "t": t}, {**doc, "i": 7}, {**doc, "i": ["x"]}):
        status, _, body = keep_alive.get(f"/v1/debtors?cursor={as_cursor(tampered)}")
        assert status == 400, body
        assert json.loads(body)["type"] == INVALID_CURSOR
    assert keep_alive.get("/v1/debtors?limit=1")[0] == 200


# --- currencies: one table of the ones we collect in -----------------------------------------

REFUSED_CODES = sorted(
    "XAU XAG XPD XPT XDR XTS XXX XBA XBB XBC XBD XSU XUA XAD "
    "BOV CHE CHW CLF COU MXV USN UYI UYW".split()
)


def test_the_currency_table_decides_every_iso_4217_code() -> None:
    iso = {c.alpha_3 for c in pycountry.currencies}
    # Everything accepted is ISO 4217 today; every ISO code is either accepted or refused.
    assert set(MINOR_UNITS) <= iso
    assert iso - set(MINOR_UNITS) == set(REFUSED_CODES) == REFUSED
    assert {c: MINOR_UNITS[c] for c in ("USD", "EUR", "JPY", "BHD", "KWD", "XOF")} == {
        "USD": 2,
        "EUR": 2,
        "JPY": 0,
        "BHD": 3,
        "KWD": 3,
        "XOF": 0,
    }


@pytest.mark.parametrize("code", REFUSED_CODES)
async def test_a_code_that_is_not_money_to_collect_is_422(
    client: httpx.AsyncClient, code: str
) -> None:
    body = debtor_body(amount_owed={"amount_minor": 100, "currency": code})
    resp = await client.post("/v1/debtors", json=body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in resp.json()["errors"]] == ["body.amount_owed.currency"]
    # Nothing stored: the external id is still free.
    usd = {**body, "amount_owed": {"amount_minor": 100, "currency": "USD"}}
    assert (await client.post("/v1/debtors", json=usd)).status_code == 201


@pytest.mark.parametrize("code", ["USD", "EUR", "JPY", "BHD", "XOF", "CHF"])
async def test_a_currency_with_a_minor_unit_is_accepted(
    client: httpx.AsyncClient, code: str
) -> None:
    debtor = await create_debtor(client, amount_owed={"amount_minor": 45001, "currency": code})
    assert debtor["amount_owed"] == {"amount_minor": 45001, "currency": code}


# --- authentication comes before the body ----------------------------------------------------


def _authenticated_operations() -> list[tuple[str, str]]:
    """(method, path) of every operation the served document says needs the API key."""
    spec = served_spec()
    default = spec.get("security", [])
    ops = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            if method in {"get", "post", "put", "patch", "delete"} and op.get("security", default):
                ops.append((method.upper(), path))
    return sorted(ops)


AUTHENTICATED_OPERATIONS = _authenticated_operations()
BODY_LIMIT = 16 * 1024  # TEST_OVERRIDES["max_request_body_bytes"]


def _chunks(data: bytes) -> Iterator[bytes]:
    for i in range(0, len(data), 4096):
        yield data[i : i + 4096]


HOSTILE_BODIES: dict[str, dict[str, Any]] = {
    "malformed": {"content": b'{"name": "Jane", '},
    "deeply nested": {"content": b"[" * 5000 + b"]" * 5000},
    "nested objects": {"content": b'{"a":' * 3000 + b"1" + b"}" * 3000},
    "wrong types": {"content": b'{"name": 1, "amount_owed": [], "url": {}}'},
    "oversized": {"content": b'{"x": "' + b"a" * (BODY_LIMIT + 10) + b'"}'},
    # No Content-Length: the size is only known by reading, which must not happen first.
    "oversized chunked": {"content": _chunks(b"[" * (BODY_LIMIT * 2))},
    "not json": {"content": b"\xff\xfe\x00garbage", "content_type": "text/plain"},
}


def test_the_gate_guards_exactly_the_operations_that_need_the_key() -> None:
    assert ("POST", "/v1/debtors") in AUTHENTICATED_OPERATIONS
    assert ("GET", "/v1/calls") in AUTHENTICATED_OPERATIONS
    every = {
        (m.upper(), p)
        for p, item in served_spec()["paths"].items()
        for m in item
        if m in {"get", "post", "put", "patch", "delete"}
    }
    # The gate goes by path prefix: all that need the key are under it, nothing else is.
    assert {op for op in every if is_authenticated_path(op[1])} == set(AUTHENTICATED_OPERATIONS)
    assert ("GET", "/healthz") in every - set(AUTHENTICATED_OPERATIONS)


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", "Basic abc"])
@pytest.mark.parametrize("body", sorted(HOSTILE_BODIES))
def test_no_or_a_bad_key_is_401_whatever_the_body(
    api_server: ServiceProcess, body: str, authorization: str | None
) -> None:
    spec = HOSTILE_BODIES[body]
    headers = {"Content-Type": spec.get("content_type", "application/json")}
    if authorization is not None:
        headers["Authorization"] = authorization
    with httpx.Client(base_url=api_server.url, timeout=30) as anon:
        for method, path in AUTHENTICATED_OPERATIONS:
            url = path.replace("{", "").replace("}", "")  # any value: the key is checked first
            url = "/".join(str(uuid.uuid4()) if "_id" in p else p for p in url.split("/"))
            content = spec["content"]
            if not isinstance(content, bytes):
                content = _chunks(b"[" * (BODY_LIMIT * 2))  # a generator is read only once
            resp = anon.request(method, url, content=content, headers=headers)
            assert resp.status_code == 401, (method, path, resp.status_code, resp.text[:200])
            assert resp.headers["content-type"].startswith("application/problem+json")
            assert resp.json()["type"] == "urn:problem:unauthorized"
            assert resp.headers["www-authenticate"] == "Bearer"


def test_the_key_still_lets_the_body_be_judged(client: httpx.AsyncClient) -> None:
    # The same bodies with the key: the gate steps aside and the input errors are what they were.
    with httpx.Client(
        base_url=str(client.base_url), headers={"Authorization": f"Bearer {API_KEY}"}, timeout=30
    ) as authed:
        post = lambda name: authed.post(  # noqa: E731
            "/v1/debtors",
            content=HOSTILE_BODIES[name]["content"],
            headers={"Content-Type": "application/json"},
        )
        assert post("malformed").status_code == 400
        assert post("deeply nested").status_code in (400, 422)
        assert post("wrong types").status_code == 422
        assert post("oversized").status_code == 413
        assert authed.get("/healthz").status_code == 200


def test_open_routes_stay_open(api_server: ServiceProcess) -> None:
    with httpx.Client(base_url=api_server.url, timeout=30) as anon:
        assert anon.get("/healthz").status_code == 200
        assert anon.get("/openapi.json").status_code == 200
        assert anon.get("/docs").status_code == 200
        # A path no route has is still a 404, not a 401; under /v1 the key comes first.
        assert anon.get("/nowhere").status_code == 404
        assert anon.get("/v1/nowhere").status_code == 401


# --- the other query that takes instants: cost stats --------------------------------------------


def test_any_stats_range_is_2xx_or_a_4xx_problem(keep_alive: KeepAlive) -> None:
    instants = edge_timestamps | st.datetimes(timezones=st.timezones()).map(lambda d: d.isoformat())
    values = instants.map(str.encode) | st.binary(max_size=40)

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(values, values)
    def check(from_: bytes, to: bytes) -> None:
        qs = f"from={quote_from_bytes(from_, safe='')}&to={quote_from_bytes(to, safe='')}"
        status, headers, body = keep_alive.get(f"/v1/stats/cost?{qs}")
        assert status < 500, (from_, to, body[:300])
        if status >= 400:
            assert headers["content-type"].startswith("application/problem+json")
        assert headers.get("connection", "").lower() != "close"

    check()
    for edge in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        edge_q = quote_from_bytes(edge.encode(), safe="")
        status, _, body = keep_alive.get(f"/v1/stats/cost?from={edge_q}&to=2026-01-01T00:00:00Z")
        assert status == 422, body
        assert [e["field"] for e in json.loads(body)["errors"]] == ["query.from"]
