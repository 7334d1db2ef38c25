"""Settings for all three services, read from environment variables (12-factor).

Every variable is listed in `.env.example`. Only settings differ between the local stack
(emulators, simulators) and production (GCP, real vendors).
"""

from __future__ import annotations

import re
from datetime import time
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.common.negotiation import stage_rules

_COLLECTION_WORDS = re.compile(r"collect|debt|recover|arrear", re.IGNORECASE)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Runtime
    environment: Literal["local", "production"] = "local"
    log_level: str = "INFO"
    service_name: str = "collections-voice-agent"

    # PostgreSQL (asyncpg DSN, e.g. postgresql+asyncpg://user:pass@host:5432/db)
    database_url: str = "postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/collections"
    database_pool_size: int = 10

    # GCP
    gcp_project_id: str = "local-project"
    pubsub_emulator_host: str | None = None
    storage_emulator_host: str | None = None
    gcs_bucket: str = "collections-calls"
    pubsub_topic_call_requests: str = "call-requests"
    pubsub_topic_call_dispatch: str = "call-dispatch"
    pubsub_topic_call_events: str = "call-events"
    pubsub_topic_webhook_deliveries: str = "webhook-deliveries"
    pubsub_topic_debtor_imports: str = "debtor-imports"
    pubsub_max_delivery_attempts: int = 10
    pubsub_min_backoff_seconds: int = 10
    pubsub_max_backoff_seconds: int = 600
    # A message a consumer took and never settled (it crashed) is redelivered after this long.
    pubsub_ack_deadline_seconds: int = 30
    # "pull": pull consumers in each process (local stack, always-on workers);
    # "push": Pub/Sub pushes to /pubsub/push/<subscription> (Cloud Run).
    pubsub_delivery: Literal["pull", "push"] = "pull"
    # Token that Pub/Sub push subscriptions present (production push mode).
    pubsub_push_token: SecretStr | None = None
    outbox_poll_interval_seconds: float = 0.2

    # Client API
    api_key: SecretStr = SecretStr("local-dev-api-key")  # its label (the audit's actor): "default"
    # More keys, each with the label the operator audit records as the actor:
    # "ops=key1,acme=key2" (labels: letters, digits, . _ -; "default" is API_KEY's).
    api_keys: SecretStr = SecretStr("")
    # Fernet key that encrypts webhook signing secrets at rest. Local default only; set a real
    # one in production (Fernet.generate_key()).
    webhook_secret_encryption_key: SecretStr = SecretStr(
        "WCN9qXvodQlemEwnjly5c-_k2gdqZAblbEvpDZhwus0="
    )
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 5
    webhook_backoff_base_seconds: float = 2.0
    webhook_backoff_max_seconds: float = 600.0
    max_request_body_bytes: int = 64 * 1024
    # Bulk debtor imports (POST /v1/debtor-imports): the upload's own limits (not
    # MAX_REQUEST_BODY_BYTES), rows per Pub/Sub batch, batches one process handles at once.
    import_max_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    import_max_rows: int = Field(default=100_000, ge=1)
    import_batch_rows: int = Field(default=1000, ge=1, le=2000)
    import_concurrency: int = Field(default=2, ge=1)

    # Every service's HTTP server (services/common/server_timeouts.py): a request's headers must
    # arrive within this long of the connection opening (or of the previous response), and an
    # idle keep-alive connection is closed after http_keep_alive_seconds.
    http_header_timeout_seconds: float = 10.0
    http_keep_alive_seconds: int = 5

    # Collector identity (what the agent says)
    company_name: str = "Acme Finance"
    agent_name: str = "Alex"
    # Said to a debtor who asks whether the call is genuine: a number they can look up and call.
    company_callback_number: str = Field(default="+18005550100", pattern=r"^\+[1-9][0-9]{6,14}$")
    # The stages' negotiation terms over the defaults of services/common/negotiation.py: JSON,
    # stage -> the fields to change, e.g. {"late": {"settlement_floor_bp": 6000}}.
    negotiation_rules: str = ""

    # Twilio
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: SecretStr = SecretStr("local-twilio-auth-token")
    twilio_from_number: str = "+15005550006"
    twilio_api_base_url: str = "https://api.twilio.com"
    # Public base URL Twilio uses to reach the orchestrator (https://... ; wss derived from it).
    orchestrator_public_url: str = "http://127.0.0.1:8003"
    # Key of the per-call tokens in media-stream URLs (services/voice_orchestrator/
    # stream_token.py). Unset: derived from TWILIO_AUTH_TOKEN, which production always has.
    media_stream_token_secret: SecretStr | None = None
    call_time_limit_seconds: int = 600
    # Answering-machine detection (docs/voice-orchestrator.md, "Answering machines"): Twilio AMD
    # with DetectMessageEnd, asynchronous; AnsweredBy is posted to /twilio/amd.
    amd_enabled: bool = True
    amd_timeout_seconds: int = Field(default=30, ge=3, le=59)  # MachineDetectionTimeout
    # On a machine: leave a limited-content message (Reg F §1006.2(j)), or hang up.
    voicemail_mode: Literal["message", "hangup"] = "message"
    voicemail_caller_name: str = "Alex Morgan"  # a natural person the debtor can ask for
    voicemail_business_name: str = "Acme Finance"  # must not indicate debt collection
    voicemail_callback_number: str = "+18005550199"

    # Deepgram
    deepgram_api_key: SecretStr = SecretStr("local-deepgram-key")
    deepgram_ws_url: str = "wss://api.deepgram.com"
    deepgram_model: str = "nova-3"
    deepgram_endpointing_ms: int = 300
    deepgram_utterance_end_ms: int = 1000

    # OpenAI
    openai_api_key: SecretStr = SecretStr("local-openai-key")
    openai_base_url: str = "https://api.openai.com/v1"
    openai_model: str = "gpt-5-mini"
    openai_reasoning_effort: str = "minimal"
    openai_verbosity: str = "low"
    # A bound, not a target: spoken replies are a few dozen tokens, but a record_payment_plan
    # call with the most installments the terms allow (36) takes about a thousand, and a reply
    # cut at the limit is an empty turn for the debtor.
    openai_max_completion_tokens: int = 1200
    openai_timeout_seconds: float = 8.0  # per attempt: connect, and each read of the stream
    openai_max_retries: int = 2  # by the SDK, before the response starts (429, 5xx, timeout)
    # Idle connections stay open this long, so a reply after a long debtor turn reuses one
    # (httpx's default, 5 s, made most turns pay a new TLS handshake).
    openai_keepalive_seconds: float = Field(default=120.0, ge=0)
    # HTTP/2 by ALPN on https (needs `h2`); plain http, as to the simulator, stays HTTP/1.1.
    openai_http2: bool = True

    # ElevenLabs
    elevenlabs_api_key: SecretStr = SecretStr("local-elevenlabs-key")
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_ws_url: str = "wss://api.elevenlabs.io"
    elevenlabs_voice_id: str = "21m00Tcm4TlvDq8ikWAM"
    elevenlabs_model_id: str = "eleven_flash_v2_5"
    # A call's TTS socket is opened when it is dialed; closed if its media stream has not
    # started this long after (Twilio rings up to 60 s by default).
    elevenlabs_prewarm_ttl_seconds: float = Field(default=90.0, gt=0)
    # Pre-made audio of fixed lines (greeting, disclosure, goodbyes), shared by all calls of the
    # process: at most this many bytes of μ-law (8 KB a second of speech), least recently used
    # evicted. 0 turns pre-made audio off (every line is synthesized live).
    premade_cache_max_bytes: int = Field(default=32 * 1024 * 1024, ge=0)
    # Start the greeting's pre-made audio when the call is dialed. Off until the session plays
    # pre-made lines and bills their characters (until then it would be unbilled TTS).
    premade_at_dial: bool = False

    # Price table, integer micro-USD (1 USD = 1_000_000). List prices as of 2026-11-27; see
    # docs/cost.md for sources. Operators with negotiated rates override them here.
    price_twilio_micro_usd_per_minute: int = 14_000  # US outbound voice, per started minute
    price_deepgram_micro_usd_per_minute: int = 7_700  # Nova-3 streaming, pay as you go
    price_openai_input_micro_usd_per_mtok: int = 250_000  # gpt-5-mini input, per 1M tokens
    price_openai_cached_input_micro_usd_per_mtok: int = 25_000  # gpt-5-mini cached input
    price_openai_output_micro_usd_per_mtok: int = 2_000_000  # gpt-5-mini output
    price_elevenlabs_micro_usd_per_kchar: int = 50_000  # Flash v2.5, per 1,000 characters

    # Call Scheduler (services/call_scheduler, docs/operations.md "Call Scheduler").
    # The worker claims due schedule rows when a request arrives and at least this often.
    scheduler_tick_seconds: float = Field(default=5.0, gt=0)
    scheduler_batch_size: int = Field(default=50, ge=1)
    # Days after a promise's due date (UTC days) before an unpaid one counts as broken (or
    # partially kept): payments take a few days to reach the client.
    promise_grace_days: int = Field(default=3, ge=0)
    # Calling window in the debtor's local time (every zone the number could mean, if unknown).
    call_window_start: time = time(8, 0)
    call_window_end: time = time(21, 0)
    call_max_attempts: int = Field(default=7, ge=1)  # per debtor in call_attempts_period_days
    call_attempts_period_days: float = Field(default=7.0, gt=0)
    # No call this long after a conversation about the debt unless the debtor asked for it.
    call_quiet_after_conversation_days: float = Field(default=7.0, ge=0)
    # Retries of busy, no-answer, failed and machine calls: base * 2^(attempt-1), capped, jittered.
    retry_base_seconds: float = Field(default=900.0, gt=0)
    retry_cap_seconds: float = Field(default=4 * 3600.0, gt=0)
    retry_max_per_day: int = Field(default=3, ge=0)
    retry_max_per_week: int = Field(default=6, ge=0)
    # A call still `queued` with nothing scheduled for it (its request was lost) this long after
    # it was created is scheduled again; one older than the max age is failed with a reason.
    call_queued_deadline_seconds: float = Field(default=120.0, gt=0)
    call_queued_max_age_seconds: float = Field(default=900.0, gt=0)

    # Voice loop tuning
    barge_in_min_speech_ms: int = 200
    call_sweeper_stale_seconds: int = 900
    # Dial reconciliation (services/voice_orchestrator/reconcile.py, docs/reliability.md).
    # A `dispatched` call not claimed this long after dispatch (its message lost or
    # dead-lettered) is dialed by the orchestrator itself; one older than the max age is failed
    # instead: the rules were checked at dispatch time, and that long after they may not hold.
    call_dispatch_deadline_seconds: float = Field(default=120.0, gt=0)
    call_dispatch_max_age_seconds: float = Field(default=900.0, gt=0)
    # A dial intent with no CallSid is looked up in Twilio's call list; only this long after the
    # intent (longer than the Twilio client's 10 s timeout, so no create-call is still in flight)
    # does "not found" count as "never placed".
    dial_reconcile_after_seconds: float = Field(default=30.0, gt=0)
    # create-call attempts per call, counting redials after an unknown outcome.
    dial_max_attempts: int = Field(default=2, ge=1)
    dial_reconcile_interval_seconds: float = Field(default=10.0, gt=0)

    # Crash tests only: named places where the process kills itself (services.common.failpoints).
    failpoints: str = ""

    # Service ports (local stack)
    client_api_port: int = Field(default=8001)
    call_scheduler_port: int = Field(default=8002)
    voice_orchestrator_port: int = Field(default=8003)

    @model_validator(mode="after")
    def _production_guards(self) -> Settings:
        labelled_api_keys(self)  # raises on a malformed API_KEYS
        stage_rules(self)  # raises on a malformed NEGOTIATION_RULES
        if self.failpoints and self.environment == "production":
            raise ValueError("FAILPOINTS must be empty in production")
        if (
            self.environment == "production"
            and self.pubsub_delivery == "push"
            and not (self.pubsub_push_token and self.pubsub_push_token.get_secret_value())
        ):
            # Without it anyone who finds the URL could inject events.
            raise ValueError("PUBSUB_PUSH_TOKEN is required for push delivery in production")
        if _COLLECTION_WORDS.search(self.voicemail_business_name):
            # Reg F §1006.2(j): a limited-content message names a business that does not
            # indicate debt collection; otherwise it is a communication about the debt.
            raise ValueError("VOICEMAIL_BUSINESS_NAME must not indicate debt collection")
        return self

    @property
    def is_local(self) -> bool:
        return self.environment == "local"


DEFAULT_API_KEY_LABEL = "default"
_KEY_LABEL = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def labelled_api_keys(settings: Settings) -> dict[str, str]:
    """Label -> key for every accepted API key: API_KEY as "default", then API_KEYS."""
    keys = {DEFAULT_API_KEY_LABEL: settings.api_key.get_secret_value()}
    raw = settings.api_keys.get_secret_value().strip()
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        label, sep, key = (part.strip() for part in entry.partition("="))
        # Never the key in the message: it is a secret (and without "=" the entry may be one).
        if not sep:
            raise ValueError("API_KEYS: an entry is not label=key")
        if not key or not _KEY_LABEL.match(label):
            raise ValueError(f"API_KEYS: an entry is not label=key (label {label[:64]!r})")
        if label in keys:
            raise ValueError(f"API_KEYS: label {label!r} given twice (or is API_KEY's)")
        if key in keys.values():
            raise ValueError(f"API_KEYS: the key labelled {label!r} is another label's key")
        keys[label] = key
    return keys


@lru_cache
def get_settings() -> Settings:
    return Settings()
