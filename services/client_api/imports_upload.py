"""Receiving an import file: the request body streamed to GCS while it is counted and split.

Never holds the file: each chunk of the body (raw, or the `file` part of a multipart form,
parsed as it streams by python-multipart) is hashed (SHA-256), fed to the pure
`RecordSplitter` (row count, CSV header, batch byte ranges) and buffered up to 1 MiB for a GCS
resumable upload. Past the size or row limit the upload stops with a 413 and the object is
never finalised; a CSV header that cannot be used is a 422 as soon as it has arrived.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from services.client_api.imports_rows import (
    Format,
    ImportFileError,
    RecordSplitter,
    TooManyRows,
    parse_header,
)
from services.client_api.problems import (
    MALFORMED,
    PAYLOAD_TOO_LARGE,
    ProblemError,
    validation_error,
)
from services.common.blobstore import BlobNotFound, GcsBlobStore
from services.common.settings import Settings

UNSUPPORTED_MEDIA_TYPE = "urn:problem:unsupported-media-type"
MEDIA_TYPES: dict[str, Format] = {"text/csv": "csv", "application/x-ndjson": "ndjson"}
CONTENT_TYPES: dict[Format, str] = {"csv": "text/csv", "ndjson": "application/x-ndjson"}
EXTENSIONS: dict[str, Format] = {".csv": "csv", ".ndjson": "ndjson", ".jsonl": "ndjson"}
MULTIPART = "multipart/form-data"
# GCS resumable uploads go in chunks that are multiples of 256 KiB.
UPLOAD_CHUNK = 4 * 256 * 1024


def _unsupported(detail: str) -> ProblemError:
    return ProblemError(415, UNSUPPORTED_MEDIA_TYPE, detail)


def _accepted() -> str:
    return "send text/csv, application/x-ndjson, or multipart/form-data with a `file` part"


def media_kind(content_type: str | None) -> tuple[str, dict[bytes, bytes]]:
    """The request's media type (`csv`, `ndjson` or `multipart`) and its parameters; 415 for
    anything else, or a charset other than UTF-8."""
    value, params = parse_options_header(content_type or "")
    media = value.decode("latin-1")
    charset = params.get(b"charset", b"utf-8").decode("latin-1").lower()
    if charset not in ("utf-8", "utf8"):
        raise _unsupported(f"Only UTF-8 files are accepted, not charset={charset}.")
    if media in MEDIA_TYPES:
        return MEDIA_TYPES[media], params
    if media == MULTIPART:
        if not params.get(b"boundary"):
            raise ProblemError(400, MALFORMED, "The multipart body has no boundary parameter.")
        return "multipart", params
    raise _unsupported(f"Unsupported Content-Type {media or '(none)'!r}: {_accepted()}.")


def too_large(settings: Settings) -> ProblemError:
    return ProblemError(
        413,
        PAYLOAD_TOO_LARGE,
        f"An import file may have at most {settings.import_max_bytes} bytes and "
        f"{settings.import_max_rows} rows.",
        headers={"Connection": "close"},
    )


@dataclass
class _FilePart:
    """The `file` part of a multipart body, as python-multipart streams it."""

    boundary: bytes
    out: list[bytes] = field(default_factory=list)
    filename: str | None = None
    format: Format | None = None
    files: int = 0
    other_fields: list[str] = field(default_factory=list)
    ended: bool = False
    _in_file: bool = False
    _field: bytes = b""
    _value: bytes = b""
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    parser: Any = None

    def __post_init__(self) -> None:
        self.parser = MultipartParser(
            self.boundary,
            callbacks={
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def write(self, chunk: bytes) -> list[bytes]:
        try:
            self.parser.write(chunk)
        except MultipartParseError as exc:
            raise ProblemError(400, MALFORMED, "The multipart body is malformed.") from exc
        out, self.out = self.out, []
        return out

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.lower()] = self._value
        self._field = self._value = b""

    def _headers_finished(self) -> None:
        _, disposition = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if name != "file":
            self.other_fields.append(name)
            return
        self.files += 1
        self._in_file = self.files == 1
        raw_name = disposition.get(b"filename")
        self.filename = raw_name.decode("utf-8", "replace")[:255] if raw_name else None
        part_type, _ = parse_options_header(self._headers.get(b"content-type", b""))
        self.format = MEDIA_TYPES.get(part_type.decode("latin-1"))
        if self.format is None and self.filename:
            for ext, fmt in EXTENSIONS.items():
                if self.filename.lower().endswith(ext):
                    self.format = fmt
        if self.format is None:
            # The request's own type (multipart) is supported: the part is invalid input.
            raise validation_error(
                [
                    (
                        "body.file",
                        "must be text/csv or application/x-ndjson (its Content-Type, or a "
                        "name ending in .csv, .ndjson or .jsonl)",
                    )
                ]
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.out.append(data[start:end])

    def _part_end(self) -> None:
        self._in_file = False

    def _end(self) -> None:
        self.ended = True


@dataclass
class Received:
    format: Format
    filename: str | None
    size: int
    sha256: str
    columns: list[str] | None
    splitter: RecordSplitter


class _BlobSink:
    """A GCS resumable upload fed in 1 MiB pieces from a worker thread."""

    def __init__(self, blobs: GcsBlobStore, key: str, content_type: str) -> None:
        self.blob = blobs.bucket.blob(key)
        self.content_type = content_type
        self.buffer = bytearray()
        self.writer: Any = None

    async def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        if len(self.buffer) >= UPLOAD_CHUNK:
            await self._flush()

    async def _flush(self) -> None:
        data, self.buffer = bytes(self.buffer), bytearray()
        if self.writer is None:
            self.writer = await asyncio.to_thread(
                self.blob.open,
                "wb",
                chunk_size=UPLOAD_CHUNK,
                content_type=self.content_type,
                ignore_flush=True,
            )
        await asyncio.to_thread(self.writer.write, data)

    async def close(self) -> None:
        if self.writer is None:  # small file: one request
            await asyncio.to_thread(
                self.blob.upload_from_string, bytes(self.buffer), content_type=self.content_type
            )
            return
        if self.buffer:
            await self._flush()
        await asyncio.to_thread(self.writer.close)


async def _body_chunks(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


async def receive_upload(
    request: Request,
    kind: str,
    params: dict[bytes, bytes],
    settings: Settings,
    blobs: GcsBlobStore,
    key: str,
) -> Received:
    """Stream the file to `key`, returning what it holds; raises the 4xx problem otherwise."""
    multipart = _FilePart(params[b"boundary"]) if kind == "multipart" else None
    fmt: Format | None = None if multipart else kind  # type: ignore[assignment]
    digest = hashlib.sha256()
    splitter: RecordSplitter | None = None
    sink: _BlobSink | None = None
    columns: list[str] | None = None
    size = 0
    try:
        async for chunk in _body_chunks(request):
            pieces = multipart.write(chunk) if multipart else [chunk]
            if multipart and multipart.format is not None:
                fmt = multipart.format
            for piece in pieces:
                assert fmt is not None
                if splitter is None or sink is None:
                    splitter = _splitter(fmt, settings)
                    sink = _BlobSink(blobs, key, CONTENT_TYPES[fmt])
                size += len(piece)
                if size > settings.import_max_bytes:
                    raise too_large(settings)
                digest.update(piece)
                splitter.feed(piece)
                if columns is None and splitter.header is not None:
                    columns = parse_header(splitter.header)  # 422 as soon as it is known
                await sink.write(piece)
        if multipart is not None:
            _check_form(multipart)
            fmt = multipart.format
        assert fmt is not None
        if splitter is None or sink is None:
            splitter = _splitter(fmt, settings)
            sink = _BlobSink(blobs, key, CONTENT_TYPES[fmt])
        splitter.finish()
        if columns is None and splitter.header is not None:
            columns = parse_header(splitter.header)
        await sink.close()
    except TooManyRows as exc:
        raise too_large(settings) from exc
    except ImportFileError as exc:
        raise validation_error(exc.errors) from exc
    return Received(
        format=fmt,
        filename=multipart.filename if multipart else None,
        size=size,
        sha256=digest.hexdigest(),
        columns=columns,
        splitter=splitter,
    )


def _splitter(fmt: Format, settings: Settings) -> RecordSplitter:
    return RecordSplitter(
        fmt,
        has_header=fmt == "csv",
        strip_bom=True,
        batch_rows=settings.import_batch_rows,
        max_rows=settings.import_max_rows,
    )


def _check_form(form: _FilePart) -> None:
    if not form.ended:
        raise ProblemError(400, MALFORMED, "The multipart body ends before its closing boundary.")
    if form.files != 1 or form.format is None:
        raise validation_error([("body.file", "send exactly one `file` part")])
    if form.other_fields:
        names = ", ".join(repr(n) for n in form.other_fields)
        raise validation_error([("body", f"unexpected form fields {names}: only `file`")])


async def discard(blobs: GcsBlobStore, key: str) -> None:
    """Delete an upload that became no import (a replay, or refused after it was stored)."""
    try:
        await blobs.delete(key)
    except BlobNotFound:
        pass


async def read_range(blobs: GcsBlobStore, key: str, start: int, end: int) -> bytes:
    """Bytes [start, end) of a stored file (one batch)."""
    from google.api_core import exceptions as gexc

    blob = blobs.bucket.blob(key)
    try:
        data: bytes = await asyncio.to_thread(
            blob.download_as_bytes, start=start, end=end - 1, checksum=None
        )
    except gexc.NotFound as exc:
        raise BlobNotFound(key) from exc
    return data
