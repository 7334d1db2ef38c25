"""Per-call, single-use tokens in the media-stream URL (`/media-stream/{token}`).

Twilio signs the `<Stream>` URL it connects to (`X-Twilio-Signature`), so a fixed URL gets the
same signature for every call: one captured handshake would let anyone open a stream for any
ringing call. With a token for one call in the path, every call's URL (and so its signature) is
different, and a handshake for one call is no key to another.

The token is an HMAC over the call id and its dial attempt, keyed with a server secret. Why
stateless rather than a random token stored hashed on the call row: nothing to write before
create-call (the dial intent's transaction stays as it is), no migration, and it survives a
restart or a stream that lands on another instance. Binding the attempt means a redial of the
same call (reconcile) gets a new URL, and the earlier dial's token no longer opens it.

Single use comes from the claim, not from the token: `calls.claim_media_session` succeeds once
per call (it sets `heartbeat_at`), so a second socket with the same token, while the first runs
or after it ended, is closed with 1008 and the call is not touched.

Twilio's `<Stream url>` takes no query string, so the token is a path segment and the call id
and attempt travel as `<Parameter>`s (they arrive in `start.customParameters`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid

from services.common.settings import Settings

MEDIA_PATH = "/media-stream"
# 128 bits of HMAC-SHA256, base64url without padding (22 characters, URL-path safe).
TOKEN_BYTES = 16
_LABEL = b"media-stream-token/v1\x00"


def _key(settings: Settings) -> bytes:
    secret = settings.media_stream_token_secret
    if secret is not None and secret.get_secret_value():
        return secret.get_secret_value().encode()
    # Domain-separated, so the token never equals any signature made with the auth token.
    base = settings.twilio_auth_token.get_secret_value().encode()
    return hmac.new(base, _LABEL, hashlib.sha256).digest()


def stream_token(settings: Settings, call_id: uuid.UUID | str, attempt: int) -> str:
    msg = _LABEL + f"{uuid.UUID(str(call_id))}:{int(attempt)}".encode()
    digest = hmac.new(_key(settings), msg, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def media_path(token: str) -> str:
    return f"{MEDIA_PATH}/{token}"


def token_matches(settings: Settings, token: str, call_id: uuid.UUID, attempt: int) -> bool:
    """Constant-time: the token was issued for this call's this dial."""
    return hmac.compare_digest(token.encode(), stream_token(settings, call_id, attempt).encode())
