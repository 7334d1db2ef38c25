"""Webhook signing secrets: Standard Webhooks format, encrypted at rest with Fernet."""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import Fernet

from services.common.settings import Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 24


def new_secret() -> str:
    """`whsec_` + base64 of 24 random bytes: what `standardwebhooks.Webhook(secret)` accepts."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _fernet(settings: Settings) -> Fernet:
    return Fernet(settings.webhook_secret_encryption_key.get_secret_value().encode())


def encrypt_secret(secret: str, settings: Settings) -> str:
    return _fernet(settings).encrypt(secret.encode()).decode()


def decrypt_secret(ciphertext: str, settings: Settings) -> str:
    return _fernet(settings).decrypt(ciphertext.encode()).decode()
