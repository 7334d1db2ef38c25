"""Twilio REST API subset: the Calls resource of API 2010-04-01, as the official SDK calls it."""

from __future__ import annotations

import base64
import binascii

import aiohttp
from aiohttp import web

from simulators.network import NETWORK_KEY, wait_until
from simulators.twilio.call import API_VERSION, TERMINAL, SimCall
from simulators.twilio.calls import CALLS_KEY

HTTP_KEY = web.AppKey("http", aiohttp.ClientSession)


def twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


def _authenticate(request: web.Request, account_sid: str) -> str | web.Response:
    """HTTP basic auth (account SID or API key SID + secret); returns the signing token.

    Unless a token is configured, an account's token is learned from its first request and every
    later request must use the same one, like a real account with one auth token.
    """
    network = request.app[NETWORK_KEY]
    cfg = network.config
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return twilio_error(401, 20003, "Authenticate")
    try:
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return twilio_error(401, 20003, "Authenticate")
    if not user or not password:
        return twilio_error(401, 20003, "Authenticate")
    if cfg.twilio_account_sid and account_sid != cfg.twilio_account_sid:
        return twilio_error(401, 20003, "Authenticate")
    if user.startswith("AC") and user != account_sid:
        return twilio_error(401, 20003, "Authenticate")
    if cfg.twilio_auth_token and user == account_sid and password != cfg.twilio_auth_token:
        return twilio_error(401, 20003, "Authenticate")
    known = network.auth_tokens.get(account_sid) or cfg.twilio_auth_token or None
    if known is None:
        network.auth_tokens[account_sid] = known = password
    elif user == account_sid and password != known:
        return twilio_error(401, 20003, "Authenticate")
    return known


def _call_or_404(request: web.Request) -> SimCall | web.Response:
    sid = request.match_info["call_sid"]
    call = request.app[CALLS_KEY].get(sid)
    if call is None or call.account_sid != request.match_info["account_sid"]:
        return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
    return call


async def create_call(request: web.Request) -> web.Response:
    account_sid = request.match_info["account_sid"]
    token = _authenticate(request, account_sid)
    if isinstance(token, web.Response):
        return token
    form = await request.post()
    params = [(k, str(v)) for k, v in form.items()]
    to, from_ = str(form.get("To", "")), str(form.get("From", ""))
    if not to:
        return twilio_error(400, 21201, "No 'To' number is specified")
    if not from_:
        return twilio_error(400, 21213, "No 'From' number is specified")
    if not form.get("Twiml") and not form.get("Url"):
        return twilio_error(
            400, 21205, "Either a 'Url', 'Twiml' or 'ApplicationSid' parameter is required"
        )
    network = request.app[NETWORK_KEY]
    call = SimCall(
        network,
        request.app[HTTP_KEY],
        account_sid=account_sid,
        auth_token=token,
        to=to,
        from_=from_,
        persona=network.persona_for(to),
        params=params,
    )
    request.app[CALLS_KEY].add(call)
    call.start()
    return web.json_response(call.resource(), status=201)


async def fetch_call(request: web.Request) -> web.Response:
    token = _authenticate(request, request.match_info["account_sid"])
    if isinstance(token, web.Response):
        return token
    call = _call_or_404(request)
    if isinstance(call, web.Response):
        return call
    return web.json_response(call.resource())


async def update_call(request: web.Request) -> web.Response:
    token = _authenticate(request, request.match_info["account_sid"])
    if isinstance(token, web.Response):
        return token
    call = _call_or_404(request)
    if isinstance(call, web.Response):
        return call
    form = await request.post()
    status = str(form.get("Status", ""))
    twiml = str(form.get("Twiml", ""))
    if status and status not in ("completed", "canceled"):
        return twilio_error(400, 21218, f"Invalid Status value {status!r}")
    hang_up = status == "completed" or (
        status == "canceled" and call.status in ("queued", "ringing")
    )
    if "<Hangup" in twiml:
        hang_up = True
    elif twiml or form.get("Url"):
        call.executed.append("update: redirect is not simulated")
    if hang_up and call.status not in TERMINAL:
        call.request_hangup()
        # Twilio answers with the call already completed: wait for the stream to stop.
        await wait_until(lambda: call.status in TERMINAL, within=2.0)
    return web.json_response(call.resource())


async def list_calls(request: web.Request) -> web.Response:
    account_sid = request.match_info["account_sid"]
    token = _authenticate(request, account_sid)
    if isinstance(token, web.Response):
        return token
    q = request.query
    calls = [
        c.resource()
        for c in request.app[CALLS_KEY].newest_first()
        if c.account_sid == account_sid
        and (not q.get("To") or c.to == q["To"])
        and (not q.get("Status") or c.status == q["Status"])
    ]
    try:
        page_size = max(1, int(q.get("PageSize", "50")))
    except ValueError:
        return twilio_error(400, 20001, "Invalid PageSize")
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Calls.json?PageSize={page_size}&Page=0"
    return web.json_response(
        {
            "calls": calls[:page_size],
            "end": max(0, min(page_size, len(calls)) - 1),
            "first_page_uri": uri,
            "next_page_uri": None,
            "page": 0,
            "page_size": page_size,
            "previous_page_uri": None,
            "start": 0,
            "uri": uri,
        }
    )


def add_twilio_routes(app: web.Application) -> None:
    base = f"/{API_VERSION}/Accounts/{{account_sid}}"
    app.router.add_post(f"{base}/Calls.json", create_call)
    app.router.add_get(f"{base}/Calls.json", list_calls)
    app.router.add_get(f"{base}/Calls/{{call_sid}}.json", fetch_call)
    app.router.add_post(f"{base}/Calls/{{call_sid}}.json", update_call)
