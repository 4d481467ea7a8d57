from __future__ import annotations

import email.message
import email.utils
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.disposition import (
    ATTACHMENT,
    DEFAULT_FILENAME,
    INLINE,
    MAX_FILENAME_UTF8_BYTES,
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

# Lone surrogates too: a JSON string (the engine's metadata) can hold one, and aiohttp
# hands over a header byte that is not UTF-8 as one (a surrogate escape).
ANY_TEXT = st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"]))).map("".join)
VISIBLE_ASCII = re.compile("[ -~]*")


def parsed_by_email_package(header: str) -> tuple[str, str | None]:
    """An independent RFC 2231/6266 reading: the standard library's email package, with
    `filename*` preferred over `filename` as RFC 6266 §4.3 says a recipient should."""
    message = email.message.Message()
    message["Content-Disposition"] = header
    params = message.get_params(header="content-disposition") or []
    extended = [value for name, value in params if name == "filename" and isinstance(value, tuple)]
    plain = [value for name, value in params if name == "filename" and isinstance(value, str)]
    name = email.utils.collapse_rfc2231_value(extended[0]) if extended else None
    if name is None and plain:
        name = plain[0]
    return message.get_content_disposition() or "", name


@given(st.text())
def test_any_filename_gives_an_ascii_header_without_line_breaks(filename: str) -> None:
    header = content_disposition(filename)
    assert header.isascii()
    assert "\r" not in header
    assert "\n" not in header


@given(st.text())
def test_any_filename_parses_back_to_its_sanitized_name(filename: str) -> None:
    header = content_disposition(filename)
    disposition, name = parsed_by_email_package(header)
    assert disposition == "attachment"
    assert name == sanitize(filename)


@given(st.text())
def test_the_fallback_has_no_quote_backslash_or_slash(filename: str) -> None:
    header = content_disposition(filename)
    fallback = re.match(r'attachment; filename="([^"]*)"', header)
    assert fallback is not None
    assert not set(fallback.group(1)) & {'"', "\\", "/"}


@given(ANY_TEXT)
def test_sanitized_names_are_safe_to_save(filename: str) -> None:
    name = sanitize(filename)
    assert name
    assert not set(name) & {"/", "\\"}
    assert not name.startswith(".")
    assert not name.endswith((".", " "))
    assert len(name.encode()) <= MAX_FILENAME_UTF8_BYTES
    assert not any(ord(char) < 32 or 0x7F <= ord(char) <= 0x9F for char in name)


@pytest.mark.parametrize(
    ("filename", "header"),
    [
        ("report.pdf", 'attachment; filename="report.pdf"'),
        (
            "naïve café.txt",
            "attachment; filename=\"naive cafe.txt\"; filename*=UTF-8''na%C3%AFve%20caf%C3%A9.txt",
        ),
        (
            'quote"back\\slash.txt',
            'attachment; filename="slash.txt"',
        ),
        ("../../etc/passwd", 'attachment; filename="passwd"'),
        ("a;b=c,d.txt", 'attachment; filename="a;b=c,d.txt"'),
        ("CON.txt", 'attachment; filename="_CON.txt"'),
        ("line\nbreak.txt", 'attachment; filename="linebreak.txt"'),
        ("", f'attachment; filename="{DEFAULT_FILENAME}"'),
        ("evil\u202egnp.exe", 'attachment; filename="evilgnp.exe"'),
        ("100%.txt", "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
    ],
)
def test_known_names(filename: str, header: str) -> None:
    assert content_disposition(filename) == header


def test_long_names_keep_their_extension() -> None:
    name = sanitize("é" * 300 + ".pdf")
    assert name.endswith(".pdf")
    assert len(name.encode()) <= MAX_FILENAME_UTF8_BYTES


def test_inline_disposition_and_no_filename() -> None:
    assert content_disposition("a.png", "inline") == 'inline; filename="a.png"'
    assert content_disposition(None) == "attachment"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, EngineDisposition(Quality.MISSING)),
        ("attachment", EngineDisposition(Quality.MISSING)),
        ('attachment; filename="a.txt"', EngineDisposition(Quality.EXACT, "a.txt")),
        (
            "attachment; filename=\"r\udce9sum\udce9.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
            EngineDisposition(Quality.EXACT, "résumé.txt"),
        ),
        (
            'attachment; filename="r\udce9sum\udce9.txt"',
            EngineDisposition(Quality.LOSSY, "r\udce9sum\udce9.txt"),
        ),
        ('attachment; filename="??.txt"', EngineDisposition(Quality.LOSSY, "??.txt")),
        ('attachment; filename="rÃ©sumÃ©.txt"', EngineDisposition(Quality.LOSSY, "rÃ©sumÃ©.txt")),
    ],
)
def test_engine_headers_are_judged(header: str | None, expected: EngineDisposition) -> None:
    assert parse_engine_disposition(header) == expected


@given(st.text(min_size=1))
def test_our_own_header_is_judged_exact_with_its_name(filename: str) -> None:
    header = content_disposition(filename)
    judged = parse_engine_disposition(header)
    assert judged == EngineDisposition(Quality.EXACT, sanitize(filename))


@pytest.mark.parametrize(
    ("requested", "default", "content_type", "expected"),
    [
        (None, "attachment", "application/pdf", "attachment"),
        (None, "inline", "application/pdf", "inline"),
        ("inline", "attachment", "image/png", "inline"),
        ("attachment", "inline", "image/png", "attachment"),
        ("inline", "attachment", "text/plain;charset=UTF-8", "inline"),
        # Active content, or what a browser could sniff into it, is never shown inline.
        ("inline", "inline", "text/html", "attachment"),
        ("inline", "inline", "TEXT/HTML; charset=UTF-8", "attachment"),
        ("inline", "inline", "image/svg+xml", "attachment"),
        ("inline", "inline", "application/xhtml+xml", "attachment"),
        ("inline", "inline", "application/xml", "attachment"),
        ("inline", "inline", "text/xml", "attachment"),
        ("inline", "inline", "application/atom+xml", "attachment"),
        ("inline", "inline", "text/javascript", "attachment"),
        ("inline", "inline", "application/javascript", "attachment"),
        ("inline", "inline", "application/octet-stream", "attachment"),
        ("inline", "inline", None, "attachment"),
        ("inline", "inline", "", "attachment"),
        # A list of types is read by a browser as its last one it can parse (Fetch).
        ("inline", "inline", "image/png, text/html", "attachment"),
    ],
)
def test_disposition_policy(
    requested: str | None, default: str, content_type: str | None, expected: str
) -> None:
    assert disposition_type(requested, default, content_type) == expected


def test_every_download_is_nosniff_and_inline_ones_are_sandboxed() -> None:
    assert download_headers("a.pdf", "attachment") == {
        "Content-Disposition": 'attachment; filename="a.pdf"',
        "X-Content-Type-Options": "nosniff",
    }
    assert download_headers("a.pdf", "inline") == {
        "Content-Disposition": 'inline; filename="a.pdf"',
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    }


@pytest.mark.parametrize(
    ("engine", "expected"),
    [
        (
            "attachment; filename=\"process/\xe4.png\"; filename*=UTF-8''process%2F%C3%A4.png",
            "attachment; filename=\"a.png\"; filename*=UTF-8''%C3%A4.png",
        ),
        ('inline; filename="diagram.svg"', 'inline; filename="diagram.svg"'),
        ("form-data", "attachment"),
    ],
)
def test_other_engine_dispositions_are_rebuilt_with_their_type(engine: str, expected: str) -> None:
    assert rebuild(engine) == expected


@given(ANY_TEXT, st.sampled_from([ATTACHMENT, INLINE]))
def test_any_code_point_gives_visible_ascii_that_reads_back(filename: str, kind: str) -> None:
    header = content_disposition(filename, kind)
    assert VISIBLE_ASCII.fullmatch(header)
    assert parsed_by_email_package(header) == (kind, sanitize(filename))


@given(ANY_TEXT)
def test_the_fallback_is_a_safe_visible_ascii_name(name: str) -> None:
    fallback = ascii_fallback(name)
    assert VISIBLE_ASCII.fullmatch(fallback)
    assert fallback
    assert not fallback.startswith(".")
    assert not set(fallback) & set('"\\%/')


@given(ANY_TEXT)
def test_any_engine_header_is_judged_and_rebuilt_as_visible_ascii(value: str) -> None:
    judged = parse_engine_disposition(value)
    assert (judged.filename is None) == (judged.quality is Quality.MISSING)
    rebuilt = rebuild(value)
    assert VISIBLE_ASCII.fullmatch(rebuilt)
    assert rebuilt.partition(";")[0] in (ATTACHMENT, INLINE)


@given(
    st.sampled_from(["image/png", "text/plain", "application/pdf", "video/mp4"]),
    st.sampled_from(["text/html", "image/svg+xml", "application/javascript", "text/xml"]),
)
def test_a_list_of_types_is_never_shown_inline(shown: str, active: str) -> None:
    assert disposition_type(INLINE, INLINE, f"{shown}, {active}") == ATTACHMENT
    assert disposition_type(INLINE, INLINE, f"{shown},{active}; charset=UTF-8") == ATTACHMENT


# Found by tests/fuzz/disposition_target.py.


def test_a_raw_latin1_name_from_the_engine_is_rebuilt_without_its_undecodable_bytes() -> None:
    assert (
        rebuild('attachment; filename="r\udce9sum\udce9.txt"') == 'attachment; filename="rsum.txt"'
    )


def test_a_lone_surrogate_in_a_metadata_name_is_dropped() -> None:
    assert content_disposition("a\ud800b.txt") == 'attachment; filename="ab.txt"'


def test_a_replacement_character_in_filename_star_is_exact() -> None:
    header = "attachment; filename=\"_.txt\"; filename*=UTF-8''%EF%BF%BD.txt"
    assert parse_engine_disposition(header) == EngineDisposition(Quality.EXACT, "\ufffd.txt")


@pytest.mark.parametrize("charset", ["\udce9", "UTF-\x00"])
def test_a_charset_python_cannot_name_falls_back_to_the_plain_filename(charset: str) -> None:
    header = f"attachment; filename=\"a.txt\"; filename*={charset}''%41.txt"
    assert parse_engine_disposition(header) == EngineDisposition(Quality.EXACT, "a.txt")
