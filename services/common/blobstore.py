"""Object storage behind a small interface; Google Cloud Storage implementation.

Recordings and transcripts are written once at the end of a call. The google-cloud-storage client
is synchronous, so every call runs in a worker thread to keep the event loop free.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Protocol

from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from services.common.emulator_env import emulator_env
from services.common.settings import Settings


class BlobNotFound(KeyError):
    pass


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> str:
        """Store `data` under `key`; returns the object's URI (e.g. gs://bucket/key)."""
        ...

    async def get(self, key: str) -> bytes: ...

    async def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        """A link a client can fetch: a v4 signed URL where credentials allow, else direct."""
        ...

    async def delete(self, key: str) -> None: ...


class GcsBlobStore:
    def __init__(self, settings: Settings) -> None:
        self.bucket_name = settings.gcs_bucket
        self.emulator = settings.storage_emulator_host
        if self.emulator:
            # The client reads this variable when built and talks to the emulator without
            # credentials.
            with emulator_env("STORAGE_EMULATOR_HOST", self.emulator):
                self.client = storage.Client(
                    project=settings.gcp_project_id, credentials=AnonymousCredentials()
                )
        else:
            self.client = storage.Client(project=settings.gcp_project_id)
        self.bucket = self.client.bucket(self.bucket_name)

    def ensure_bucket(self) -> None:
        try:
            self.client.create_bucket(self.bucket_name)
        except gexc.Conflict:
            pass

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{key}"

    async def put(self, key: str, data: bytes, content_type: str) -> str:
        blob = self.bucket.blob(key)
        await asyncio.to_thread(blob.upload_from_string, data, content_type=content_type)
        return self.uri(key)

    async def get(self, key: str) -> bytes:
        try:
            data: bytes = await asyncio.to_thread(self.bucket.blob(key).download_as_bytes)
        except gexc.NotFound as exc:
            raise BlobNotFound(key) from exc
        return data

    async def url(self, key: str, expires: timedelta = timedelta(hours=1)) -> str:
        if self.emulator:
            # Emulators do not verify signatures; a direct media link is what works there.
            base = self.emulator.rstrip("/")
            return f"{base}/download/storage/v1/b/{self.bucket_name}/o/{key}?alt=media"
        signed: str = await asyncio.to_thread(
            self.bucket.blob(key).generate_signed_url, version="v4", expiration=expires
        )
        return signed

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.bucket.blob(key).delete)
        except gexc.NotFound as exc:
            raise BlobNotFound(key) from exc


def key_from_uri(uri: str) -> str:
    """`gs://bucket/a/b.wav` → `a/b.wav`."""
    if not uri.startswith("gs://"):
        raise ValueError(f"not a gs:// URI: {uri}")
    return uri.split("/", 3)[3]
