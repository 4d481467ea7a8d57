"""Fuzzing `gateway.disposition`: any filename gives a header of visible ASCII that reads
back to the sanitized name, any engine header is judged and rebuilt without error, and
nothing a browser would take for active content is ever shown inline.

Input: a payload, then control bytes at the end; the last one picks what the payload is:
0: a filename (then: UTF-8 as the engine's header carries it, or UTF-16 for any code point
   a JSON string can hold; attachment or inline), 1: the engine's Content-Disposition,
2: the engine's Content-Type (then: the disposition asked for, and the default).
"""

from __future__ import annotations

import email.message
import email.utils
import re
import string
import sys

import atheris

with atheris.instrument_imports(include=["gateway"]):
    from gateway.disposition import (
        ATTACHMENT,
        FALLBACK_REPLACED,
        INLINE,
        MAX_FILENAME_UTF8_BYTES,
        WINDOWS_RESERVED,
        EngineDisposition,
        Quality,
        ascii_fallback,
        content_disposition,
        disposition_type,
        download_headers,
        parse_engine_disposition,
        rebuild,
        sanitize,
    )

FILENAME, ENGINE_HEADER, CONTENT_TYPE = range(3)
REQUESTED = (None, ATTACHMENT, INLINE, "")
# WHATWG MIME Sniffing: token code points, and the whitespace a browser trims.
TOKEN = frozenset("!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits)
HTTP_WHITESPACE = " \t\r\n"
# Sent as a space in a header value (RFC 9110 §5.5; gateway.headers.sendable).
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
SHOWN_INLINE_PREFIXES = ("image/", "audio/", "video/")
SHOWN_INLINE = frozenset({"text/plain", "text/csv", "application/pdf", "application/json"})
# Controls, line and paragraph separators, bidirectional controls, the BOM.
UNSAFE = frozenset(
    [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))]
    + list("\u2028\u2029\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    + ["\ufeff"]
)


def parsed_by_email_package(header: str) -> tuple[str, str | None]:
    """An independent RFC 2231/6266 reading (the standard library's email package),
    `filename*` preferred as RFC 6266 §4.3 asks."""
    message = email.message.Message()
    message["Content-Disposition"] = header
    params = message.get_params(header="content-disposition") or []
    extended = [value for name, value in params if name == "filename" and isinstance(value, tuple)]
    plain = [value for name, value in params if name == "filename" and isinstance(value, str)]
    name = email.utils.collapse_rfc2231_value(extended[0]) if extended else None
    if name is None and plain:
        name = plain[0]
    return message.get_content_disposition() or "", name


def is_visible_ascii(text: str) -> bool:
    return all(" " <= char <= "~" for char in text)


def check_safe_name(name: str) -> None:
    assert name, name
    assert not set(name) & {"/", "\\"}, name
    assert not name.startswith("."), name
    assert not name.endswith((".", " ")), name
    assert not set(name) & UNSAFE, ascii(name)
    assert not any("\ud800" <= char <= "\udfff" for char in name), ascii(name)
    assert len(name.encode()) <= MAX_FILENAME_UTF8_BYTES, name
    assert name.partition(".")[0].upper().rstrip(" ") not in WINDOWS_RESERVED, name


def check_filename(filename: str, kind: str) -> None:
    name = sanitize(filename)
    check_safe_name(name)
    fallback = ascii_fallback(name)
    check_safe_name(fallback)
    assert is_visible_ascii(fallback), ascii(fallback)
    assert not set(fallback) & FALLBACK_REPLACED, fallback

    header = content_disposition(filename, kind)
    assert is_visible_ascii(header), ascii(header)
    assert header.startswith(f'{kind}; filename="{fallback}"'), (header, fallback)
    assert parsed_by_email_package(header) == (kind, name), ascii((header, name))
    assert parse_engine_disposition(header) == EngineDisposition(Quality.EXACT, name), header

    found = download_headers(filename, kind)
    assert found["Content-Disposition"] == header
    assert found["X-Content-Type-Options"] == "nosniff"
    assert ("Content-Security-Policy" in found) == (kind == INLINE), found


def check_engine_header(value: str) -> None:
    judged = parse_engine_disposition(value)
    assert (judged.filename is None) == (judged.quality is Quality.MISSING), judged
    rebuilt = rebuild(value)
    assert is_visible_ascii(rebuilt), ascii(rebuilt)
    kind = INLINE if value.partition(";")[0].strip().lower() == INLINE else ATTACHMENT
    assert rebuilt.partition(";")[0] == kind, (value, rebuilt)
    if judged.filename is None:
        assert rebuilt == kind, rebuilt
    else:
        assert parse_engine_disposition(rebuilt) == EngineDisposition(
            Quality.EXACT, sanitize(judged.filename)
        ), ascii((value, rebuilt))


def split_outside_quotes(value: str) -> list[str]:
    """Fetch's "get, decode, and split": commas inside a quoted string do not split."""
    values, current, quoted, escaped = [], "", False, False
    for char in value:
        if char == "," and not quoted:
            values.append(current)
            current = ""
            continue
        current += char
        if quoted and escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
    return [*values, current]


def browser_media_type(content_type: str | None) -> str | None:
    """The media type a browser takes from a Content-Type (Fetch, "extract a MIME type"):
    the last of its values that parses; None when none does, and the browser sniffs."""
    found = None
    for value in split_outside_quotes(content_type or ""):
        essence = value.strip(HTTP_WHITESPACE).partition(";")[0].rstrip(HTTP_WHITESPACE)
        kind, slash, subtype = essence.partition("/")
        valid = slash and kind and subtype and set(kind) | set(subtype) <= TOKEN
        if valid and essence != "*/*":
            found = essence.lower()
    return found


def check_content_type(content_type: str | None, requested: str | None, default: str) -> None:
    presented = disposition_type(requested, default, content_type)
    assert presented in (ATTACHMENT, INLINE), presented
    if presented == INLINE:
        assert (requested or default) == INLINE
        # What reaches the browser: a control character goes out as a space, or the response
        # not at all (aiohttp refuses to send one).
        seen = browser_media_type(CONTROL.sub(" ", content_type or ""))
        # None: the browser sniffs, but under nosniff (on every download) never into HTML or
        # script (MIME Sniffing §7, "sniff-scriptable" off).
        if seen is not None:
            assert "xml" not in seen, seen
            assert seen in SHOWN_INLINE or seen.startswith(SHOWN_INLINE_PREFIXES), ascii(
                (content_type, seen)
            )


def TestOneInput(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    mode = provider.ConsumeIntInRange(0, 2)
    if mode == FILENAME:
        utf16 = provider.ConsumeIntInRange(0, 1) == 1
        kind = INLINE if provider.ConsumeIntInRange(0, 1) == 1 else ATTACHMENT
        raw = provider.ConsumeBytes(provider.remaining_bytes())
        if utf16:
            filename = raw[: len(raw) // 2 * 2].decode("utf-16-le", "surrogatepass")
        else:
            filename = raw.decode("utf-8", "surrogateescape")
        check_filename(filename, kind)
    elif mode == ENGINE_HEADER:
        check_engine_header(
            provider.ConsumeBytes(provider.remaining_bytes()).decode("utf-8", "surrogateescape")
        )
    else:
        requested = REQUESTED[provider.ConsumeIntInRange(0, len(REQUESTED) - 1)]
        default = INLINE if provider.ConsumeIntInRange(0, 1) == 1 else ATTACHMENT
        raw = provider.ConsumeBytes(provider.remaining_bytes())
        content_type = raw.decode("utf-8", "surrogateescape") if raw else None
        check_content_type(content_type, requested, default)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
