"""BlobStore through the GCS emulator: put, get, link, delete."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.common.blobstore import BlobNotFound, GcsBlobStore, key_from_uri
from services.common.settings import Settings


async def test_put_get_link_delete(settings: Settings) -> None:
    store = GcsBlobStore(settings)
    key = f"calls/{uuid.uuid4()}/recording.wav"
    data = b"RIFF" + bytes(range(256)) * 40
    uri = await store.put(key, data, "audio/wav")
    assert uri == f"gs://{settings.gcs_bucket}/{key}"
    assert key_from_uri(uri) == key
    assert await store.get(key) == data

    link = await store.url(key)
    async with httpx.AsyncClient() as client:
        resp = await client.get(link)
    assert resp.status_code == 200
    assert resp.content == data

    await store.delete(key)
    with pytest.raises(BlobNotFound):
        await store.get(key)
    with pytest.raises(BlobNotFound):
        await store.delete(key)
