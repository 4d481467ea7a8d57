"""Fuzzing `gateway.multipart`: the form scanner and the variable-form validator accept a
body or refuse it with `FormError`, never another exception; a body fed in any chunks,
as bytes or memoryviews, gives what it gives in one piece (the parts, and the content it
reports for each, part by part, in order); the closing delimiter is never
released before the form is complete; and a raw upload's wrapped form is one the scanner
and the validator accept, with the content unchanged.

Input: a payload, then control bytes at the end; the last one picks what the payload is:
0: a form, its Content-Type on the first line and its body after (then: up to 8 split
   points, and whether every other chunk is a memoryview);
1: a raw upload, its Content-Type, `filename` and `valueType` on the first three lines and
   its content after (then: whether a filename was given).
"""

from __future__ import annotations

import contextlib
import re
import sys
from dataclasses import dataclass

import atheris

with atheris.instrument_imports(include=["gateway"]):
    from gateway.multipart import (
        TEXT_PART_KEEP_BYTES,
        TEXT_PARTS,
        Content,
        FormError,
        FormScanner,
        Part,
        PartBegins,
        PartEnds,
        boundary_of,
        check_variable_form,
        parse_parameters,
        wrap_raw_body,
    )

FORM, RAW_UPLOAD = range(2)
MAX_SPLITS = 8
# What aiohttp refuses in a header value (and so never hands to the gateway).
NOT_IN_HEADER_VALUES = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


@dataclass(frozen=True)
class Outcome:
    parts: list[Part] | None
    contents: list[tuple[Part, bytes]] | None  # every part ended, and its reported content
    close_offset: int | None
    released: int | None
    error: str | None


def scan(boundary: bytes, chunks: list[bytes | memoryview], close_offset: int | None) -> Outcome:
    """The scanner over `chunks`; `close_offset`, when known, bounds every release."""
    scanner = FormScanner(boundary, report=True)
    fed = released = 0
    contents: list[tuple[Part, bytes]] = []
    current: bytearray | None = None
    try:
        for chunk in chunks:
            for event in scanner.feed(chunk):
                if isinstance(event, PartBegins):
                    assert current is None, event
                    current = bytearray()
                elif isinstance(event, Content):
                    assert current is not None, event
                    assert len(event.data) > 0, event
                    current += event.data
                else:
                    assert isinstance(event, PartEnds)
                    assert current is not None, event
                    contents.append((event.part, bytes(current)))
                    current = None
            fed += len(chunk)
            now = scanner.releasable()
            assert released <= now <= fed, (released, now, fed)
            assert close_offset is None or now <= close_offset, (now, close_offset)
            released = now
        parts = scanner.finish()
    except FormError as error:
        return Outcome(None, None, None, None, str(error))
    assert parts == [part for part, _ in contents if part.field_name is not None]
    for part, content in contents:
        assert part.text is None or part.text == content, (part, content)
    for part in parts:
        assert part.field_name is not None, part
        assert part.text is None or part.field_name in TEXT_PARTS, part
        assert part.text is None or len(part.text) <= TEXT_PART_KEEP_BYTES, part
    with contextlib.suppress(FormError):  # either answer will do, no other exception
        check_variable_form(parts)
    return Outcome(parts, contents, scanner.close_offset, released, None)


def check_form(boundary: bytes, body: bytes, splits: list[int], views: bool) -> Outcome:
    whole = scan(boundary, [body], None)
    if whole.close_offset is not None:
        # The delimiter held back is the closing one, the engine's parsing stops there.
        assert whole.released == whole.close_offset
        assert body.startswith(b"--" + boundary, whole.close_offset) or body.startswith(
            b"\r\n--" + boundary, whole.close_offset
        ), whole
    cuts = sorted({split % (len(body) + 1) for split in splits})
    pieces = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    chunks: list[bytes | memoryview] = [
        memoryview(piece) if views and index % 2 else piece for index, piece in enumerate(pieces)
    ]
    chunked = scan(boundary, chunks, whole.close_offset)
    assert chunked == whole, (cuts, views, chunked, whole)
    return whole


def check_raw_upload(
    content_type: str, filename: str | None, value_type: str | None, content: bytes
) -> None:
    # As the gateway's raw upload does: valueType defaults from the filename, both query
    # parameters, so never with surrogates (yarl decodes undecodable bytes to U+FFFD).
    value_type = value_type or ("File" if filename is not None else "Bytes")
    try:
        wrapped = wrap_raw_body(value_type=value_type, filename=filename, content_type=content_type)
        check_variable_form(
            [Part("data", filename, None), Part("valueType", None, None, value_type.encode())]
        )
    except FormError:
        return
    body = wrapped.head + content + wrapped.tail
    assert wrapped.length(len(content)) == len(body)
    assert body[len(wrapped.head) : len(wrapped.head) + len(content)] == content
    boundary = boundary_of(wrapped.content_type)
    assert boundary is not None, wrapped.content_type
    outcome = check_form(boundary, body, [len(wrapped.head), len(body) - len(wrapped.tail)], True)
    assert outcome.parts is not None, outcome.error
    check_variable_form(outcome.parts)  # the engine takes the form the gateway built
    data, sent_type = outcome.parts
    assert data.field_name == "data", data
    assert data.text is None, data
    assert data.filename == (filename.strip() if filename is not None else None), data
    # The client's bytes, read back as the engine reads part headers (UTF-8, U+FFFD).
    media_type = content_type.partition(";")[0].strip() or "application/octet-stream"
    as_read = media_type.encode(errors="surrogateescape").decode(errors="replace")
    assert (data.content_type or "").startswith(as_read), (data, content_type)
    assert sent_type == Part("valueType", None, "text/plain; charset=UTF-8", value_type.encode())


def TestOneInput(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    mode = provider.ConsumeIntInRange(0, 1)
    if mode == FORM:
        count = provider.ConsumeIntInRange(0, MAX_SPLITS)
        splits = [provider.ConsumeIntInRange(0, 4095) for _ in range(count)]
        views = provider.ConsumeIntInRange(0, 1) == 1
        first_line, _, body = provider.ConsumeBytes(provider.remaining_bytes()).partition(b"\n")
        content_type = first_line.removesuffix(b"\r").decode("utf-8", "surrogateescape")
        parse_parameters(content_type)
        boundary = boundary_of(content_type)
        assert boundary != b"", content_type
        if boundary is not None:
            check_form(boundary, body, splits, views)
    else:
        has_filename = provider.ConsumeIntInRange(0, 1) == 1
        lines = provider.ConsumeBytes(provider.remaining_bytes()).split(b"\n", 3)
        content_type, filename, value_type, content = [*lines, b"", b"", b"", b""][:4]
        header_value = content_type.removesuffix(b"\r").decode("utf-8", "surrogateescape")
        if NOT_IN_HEADER_VALUES.search(header_value):
            return
        check_raw_upload(
            header_value,
            filename.removesuffix(b"\r").decode("utf-8", "replace") if has_filename else None,
            value_type.removesuffix(b"\r").decode("utf-8", "replace") or None,
            content,
        )


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
