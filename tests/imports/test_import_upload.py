"""The upload's request parsing without I/O: media types, and the multipart `file` part as
python-multipart streams it, fed in pieces of any size (a boundary split across chunks)."""

from __future__ import annotations

import pytest

from services.client_api.imports_upload import _FilePart, media_kind
from services.client_api.problems import ProblemError

BOUNDARY = b"b0undary-x"


def form(*parts: tuple[str, str | None, str | None, bytes]) -> bytes:
    out = b""
    for name, filename, content_type, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += b"--" + BOUNDARY + b"\r\nContent-Disposition: " + disposition.encode() + b"\r\n"
        if content_type:
            out += b"Content-Type: " + content_type.encode() + b"\r\n"
        out += b"\r\n" + data + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n"


@pytest.mark.parametrize("chunk", [1, 2, 7, 64, 100_000])
def test_the_file_part_streams_whatever_the_chunking(chunk: int) -> None:
    data = b"external_id,name\r\n" + b"crm-1,Jane\r\n" * 300 + b"--b0undary-y\r\n"
    body = form(("file", "debtors.CSV", None, data))
    part = _FilePart(BOUNDARY)
    got = b"".join(b"".join(part.write(body[i : i + chunk])) for i in range(0, len(body), chunk))
    assert got == data
    assert (part.filename, part.format, part.files, part.ended) == ("debtors.CSV", "csv", 1, True)


def test_the_part_type_decides_and_other_fields_are_noted() -> None:
    part = _FilePart(BOUNDARY)
    body = form(("note", None, None, b"x"), ("file", "a.bin", "application/x-ndjson", b"{}\n"))
    assert b"".join(part.write(body)) == b"{}\n"
    assert part.format == "ndjson" and part.other_fields == ["note"]
    with pytest.raises(ProblemError) as exc:
        _FilePart(BOUNDARY).write(form(("file", "a.xlsx", "application/zip", b"PK")))
    assert exc.value.status == 422
    with pytest.raises(ProblemError) as exc:
        _FilePart(BOUNDARY).write(b"--nope\r\n\r\n")
    assert exc.value.status == 400


def test_media_types() -> None:
    assert media_kind("text/csv")[0] == "csv"
    assert media_kind("text/csv; charset=UTF-8")[0] == "csv"
    assert media_kind("application/x-ndjson")[0] == "ndjson"
    assert media_kind("multipart/form-data; boundary=abc")[0] == "multipart"
    for bad, status in [
        ("application/json", 415),
        ("text/csv; charset=latin-1", 415),
        (None, 415),
        ("multipart/form-data", 400),
    ]:
        with pytest.raises(ProblemError) as exc:
            media_kind(bad)
        assert exc.value.status == status, bad
