from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import multipart
from gateway.multipart import FormError, FormScanner, Part

BOUNDARY = b"----gatewayTestBoundary7f3a"


def form(*parts: tuple[str, bytes], boundary: bytes = BOUNDARY, close: bool = True) -> bytes:
    body = b""
    for headers, content in parts:
        body += b"--" + boundary + b"\r\n" + headers.encode() + b"\r\n\r\n" + content + b"\r\n"
    return body + (b"--" + boundary + b"--\r\n" if close else b"")


DATA = (
    'Content-Disposition: form-data; name="data"; filename="a.bin"\r\nContent-Type: application/pdf'
)
VALUE_TYPE = 'Content-Disposition: form-data; name="valueType"'


def scan(body: bytes, splits: list[int] | None = None) -> FormScanner:
    scanner = FormScanner(BOUNDARY)
    cuts = sorted(set(splits or []))
    start = 0
    for cut in [*cuts, len(body)]:
        scanner.feed(body[start:cut])
        start = cut
    return scanner


def test_parts_are_seen_with_name_filename_type_and_short_text() -> None:
    scanner = scan(form((DATA, b"%PDF-1.7"), (VALUE_TYPE, b"File")))
    assert scanner.finish() == [
        Part("data", "a.bin", "application/pdf", None),
        Part("valueType", None, None, b"File"),
    ]


@settings(max_examples=300)
@given(
    content=st.binary(max_size=3000),
    splits=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_any_content_and_any_split_points_release_the_body_unchanged(
    content: bytes, splits: list[int]
) -> None:
    body = form((DATA, content), (VALUE_TYPE, b"Bytes"))
    if (b"\r\n--" + BOUNDARY) in b"\r\n" + content:
        return  # not a valid form: the content would end the part
    scanner = scan(body, [s for s in splits if s <= len(body)])
    assert scanner.closed
    assert scanner.finish()[0] == Part("data", "a.bin", "application/pdf", None)
    # Everything before the closing delimiter may go; the delimiter waits for approval.
    assert scanner.releasable() == body.rindex(b"\r\n--" + BOUNDARY + b"--")


# Content made of near-delimiters (a delimiter's prefix, cut anywhere) and filler, fed in
# chunks of any size: the scanner's fast path for file content (FormScanner._content_only)
# must see exactly what the byte-by-byte path sees, a delimiter split across chunks included.
_NEAR = [(b"\r\n--" + BOUNDARY)[:k] for k in range(1, len(BOUNDARY) + 4)]


@settings(max_examples=300)
@given(
    pieces=st.lists(st.one_of(st.sampled_from(_NEAR), st.binary(max_size=200)), max_size=30),
    chunk=st.integers(min_value=1, max_value=300),
)
def test_chunked_feeding_sees_what_byte_by_byte_feeding_sees(
    pieces: list[bytes], chunk: int
) -> None:
    content = b"".join(pieces)
    body = form((DATA, content), (VALUE_TYPE, b"Bytes"))
    byte_by_byte = scan(body, list(range(1, len(body))))
    chunked = scan(body, list(range(chunk, len(body), chunk)))
    assert chunked.closed == byte_by_byte.closed
    assert chunked.close_offset == byte_by_byte.close_offset
    assert chunked.parts == byte_by_byte.parts


@given(content=st.binary(max_size=2000), cut=st.integers(min_value=0))
def test_a_body_cut_anywhere_never_releases_its_closing_delimiter(content: bytes, cut: int) -> None:
    body = form((DATA, content), (VALUE_TYPE, b"Bytes"))
    if (b"\r\n--" + BOUNDARY) in b"\r\n" + content:
        return
    closing = body.rindex(b"\r\n--" + BOUNDARY + b"--")
    truncated = body[: cut % (closing + len(BOUNDARY) + 6)]
    scanner = scan(truncated)
    assert scanner.releasable() <= closing
    assert not scanner.closed


def test_body_without_closing_boundary_is_an_error_at_its_end() -> None:
    scanner = scan(form((DATA, b"abc"), close=False))
    with pytest.raises(FormError, match="closing boundary"):
        scanner.finish()


def test_part_header_block_of_512_bytes_passes_and_513_fails() -> None:
    def with_block(size: int) -> bytes:
        base = 'Content-Disposition: form-data; name="data"\r\nX-Pad: '
        return form((base + "p" * (size - len(base) - 4), b"x"))

    assert scan(with_block(512)).finish()[0].field_name == "data"
    with pytest.raises(FormError, match="512 bytes"):
        scan(with_block(513))


def test_bare_lf_line_endings_are_named_in_the_error() -> None:
    body = form((DATA, b"abc")).replace(b"\r\n", b"\n")
    with pytest.raises(FormError, match="bare LF"):
        scan(body).finish()


def test_delimiter_followed_by_other_bytes_ends_the_form_as_the_engine_does() -> None:
    body = b"--" + BOUNDARY + b"\r\n" + DATA.encode() + b"\r\n\r\nhel\r\n--" + BOUNDARY + b"lo"
    assert scan(body).finish() == [Part("data", "a.bin", "application/pdf", None)]


def test_parts_without_a_form_data_name_are_skipped() -> None:
    scanner = scan(form(("Content-Type: text/plain", b"x"), (DATA, b"y")))
    assert [part.field_name for part in scanner.finish()] == ["data"]


def test_preamble_and_epilogue_are_allowed() -> None:
    body = b"preamble\r\n" + form((DATA, b"y")) + b"epilogue"
    assert [part.field_name for part in scan(body).finish()] == ["data"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('form-data; name="data"; filename="a.txt"', {"name": "data", "filename": "a.txt"}),
        ("form-data; name=data; filename=", {"name": "data", "filename": None}),
        ('form-data; NAME="x;y"', {"name": "x;y"}),
        ("form-data; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", {"filename": "résumé.pdf"}),
        ('form-data; name="a\\"b"', {"name": 'a\\"b'}),
    ],
)
def test_parameters_are_parsed_as_commons_fileupload_does(
    value: str, expected: dict[str, str | None]
) -> None:
    params = multipart.parse_parameters(value)
    assert {k: params[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ("multipart/form-data; boundary=abc", b"abc"),
        ('multipart/form-data; boundary="a:b c"', b"a:b c"),
        ("multipart/form-data; charset=utf-8; boundary=xyz", b"xyz"),
        ("multipart/form-data", None),
    ],
)
def test_boundary_is_read_from_the_content_type(content_type: str, boundary: bytes | None) -> None:
    assert multipart.boundary_of(content_type) == boundary


ACCEPTED = [
    [Part("data", None, None)],
    [Part("data", None, None), Part("valueType", None, None, b"Bytes")],
    [Part("valueType", None, None, b"File"), Part("data", "a.pdf", None)],
    [Part("data", "", None), Part("valueType", None, "text/plain", b"file")],
    [Part("data", None, None), Part("valueType", None, None, b"String")],
    [Part("type", None, None, b"java.util.ArrayList"), Part("data", None, "application/json")],
    [Part("data", None, None), Part("extra", None, None), Part("valueType", None, None, b"bytes")],
]


@pytest.mark.parametrize("parts", ACCEPTED)
def test_forms_the_engine_accepts_pass(parts: list[Part]) -> None:
    multipart.check_variable_form(parts)


REJECTED = [
    ([], "no part named 'data'"),
    ([Part("valueType", None, None, b"Bytes")], "no part named 'data'"),
    ([Part("data", None, None), Part("valueType", None, None, b"File")], "needs a filename"),
    ([Part("data", None, None), Part("valueType", None, None, b"Json")], "Unsupported value type"),
    ([Part("data", None, None), Part("valueType", None, None, b"BYTES")], "Unsupported value type"),
    ([Part("data", None, None), Part("valueType", None, None, b"")], "empty"),
    (
        [Part("data", None, None), Part("valueType", None, "application/json", b"Bytes")],
        "text/plain",
    ),
    (
        [Part("type", None, None, b"x"), Part("data", None, "text/plain")],
        "Unrecognized content type",
    ),
    ([Part("type", None, None, b"x")], "needs a 'data' part"),
]


@pytest.mark.parametrize(("parts", "message"), REJECTED)
def test_forms_the_engine_rejects_fail_with_a_clear_message(
    parts: list[Part], message: str
) -> None:
    with pytest.raises(FormError, match=message):
        multipart.check_variable_form(parts)


def test_later_parts_of_the_same_name_win_as_in_the_engine() -> None:
    multipart.check_variable_form(
        [
            Part("data", None, None),
            Part("valueType", None, None, b"Json"),
            Part("valueType", None, None, b"Bytes"),
        ]
    )


@given(
    content=st.binary(max_size=2000),
    filename=st.one_of(st.none(), st.text(min_size=1, max_size=40)),
    charset=st.sampled_from([None, "utf-8", "ISO-8859-1"]),
)
def test_wrapped_raw_body_parses_back_to_the_same_bytes(
    content: bytes, filename: str | None, charset: str | None
) -> None:
    content_type = "text/plain" + (f"; charset={charset}" if charset else "")
    value_type = "File" if filename is not None else "Bytes"
    wrapped = multipart.wrap_raw_body(
        value_type=value_type, filename=filename, content_type=content_type
    )
    body = wrapped.head + content + wrapped.tail
    boundary = multipart.boundary_of(wrapped.content_type)
    assert boundary is not None
    scanner = FormScanner(boundary)
    scanner.feed(body)
    parts = scanner.finish()
    multipart.check_variable_form(parts)
    assert parts[0].field_name == "data"
    assert parts[0].filename == (filename.strip() if filename is not None else None)
    expected_type = "text/plain" + (f"; encoding={charset}" if charset and filename else "")
    assert parts[0].content_type == expected_type
    assert parts[1].text == value_type.encode()
    start = len(wrapped.head)
    assert body[start : start + len(content)] == content
    assert wrapped.length(len(content)) == len(body)


# Bodies made of what forms are made of, in any order: delimiters, line ends, part headers.
FORM_PIECES = st.lists(
    st.one_of(
        st.sampled_from(
            [
                b"--" + BOUNDARY,
                b"\r\n--" + BOUNDARY,
                b"--",
                b"\r\n",
                b"\r\n\r\n",
                b"\n",
                DATA.encode(),
                VALUE_TYPE.encode(),
                b"Bytes",
            ]
        ),
        st.binary(max_size=40),
    ),
    max_size=30,
).map(b"".join)


def outcome(body: bytes, splits: list[int]) -> tuple[list[Part] | None, int | None, str | None]:
    try:
        scanner = scan(body, splits)
        return scanner.finish(), scanner.close_offset, None
    except FormError as error:
        return None, None, str(error)


@settings(max_examples=300)
@given(body=FORM_PIECES, splits=st.lists(st.integers(min_value=1, max_value=1200), max_size=8))
def test_any_body_gives_the_same_parts_or_error_in_any_chunks(
    body: bytes, splits: list[int]
) -> None:
    assert outcome(body, [s for s in splits if s < len(body)]) == outcome(body, [])


PARTS = st.lists(
    st.builds(
        Part,
        st.one_of(st.none(), st.sampled_from(["data", "valueType", "type", "other"])),
        st.one_of(st.none(), st.text(max_size=5)),
        st.one_of(
            st.none(), st.sampled_from(["application/json", "text/plain"]), st.text(max_size=9)
        ),
        st.one_of(
            st.none(), st.sampled_from([b"Bytes", b"File", b"file", b"String", b""]), st.binary()
        ),
    ),
    max_size=5,
)


@given(PARTS)
def test_the_variable_form_check_accepts_or_refuses_with_a_form_error(parts: list[Part]) -> None:
    with contextlib.suppress(FormError):
        multipart.check_variable_form(parts)


# Lone surrogates too: aiohttp hands over a header byte that is not UTF-8 as one.
ANY_TEXT = st.lists(st.one_of(st.characters(), st.characters(categories=["Cs"]))).map("".join)


@given(ANY_TEXT, st.sampled_from([";", ","]))
def test_parameters_of_any_header_are_read_without_error(value: str, separator: str) -> None:
    for name in multipart.parse_parameters(value, separator):
        assert name == name.lower()


@given(ANY_TEXT)
def test_any_content_type_has_a_boundary_or_none(content_type: str) -> None:
    assert multipart.boundary_of(content_type) != b""


# RFC 2046 §5.1.1: the characters of a boundary, which may not end in a space.
BCHARS = st.text(
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ",
    min_size=1,
    max_size=70,
).filter(lambda boundary: not boundary.endswith(" "))


@given(BCHARS, st.sampled_from(["", "charset=UTF-8; "]))
def test_a_quoted_boundary_reads_back_from_its_content_type(boundary: str, before: str) -> None:
    content_type = f'multipart/form-data; {before}boundary="{boundary}"'
    assert multipart.boundary_of(content_type) == boundary.encode()


# Found by tests/fuzz/multipart_target.py.


def test_a_content_type_with_bytes_that_are_not_utf8_goes_into_the_wrapped_form_as_sent() -> None:
    wrapped = multipart.wrap_raw_body(
        value_type="File", filename="a.txt", content_type="text/pl\udce9in; charset=\udcff"
    )
    assert b"\r\nContent-Type: text/pl\xe9in; encoding=\xff\r\n" in wrapped.head


@pytest.mark.parametrize("charset", ["UTF-\x00", "\udce9"])
def test_a_charset_python_cannot_name_leaves_the_value_as_given(charset: str) -> None:
    value = f"{charset}''%41.pdf"
    assert multipart.parse_parameters(f"form-data; filename*={value}")["filename"] == value


def test_a_part_whose_filename_charset_has_a_nul_is_scanned_as_the_engine_reads_it() -> None:
    disposition = "Content-Disposition: form-data; name=data; filename*=UTF-\x00''%41.pdf"
    parts = scan(form((disposition, b"x"), (VALUE_TYPE, b"File"))).finish()
    assert parts[0] == Part("data", "UTF-\x00''%41.pdf", None)


def content_by_part(body: bytes, cuts: list[int]) -> list[tuple[str | None, bytes]]:
    """What a reporting scanner hands over, joined per part."""
    scanner = FormScanner(BOUNDARY, report=True)
    seen: list[tuple[str | None, bytes]] = []
    current: bytearray | None = None
    start = 0
    for cut in [*sorted(set(cuts)), len(body)]:
        for event in scanner.feed(body[start:cut]):
            if isinstance(event, multipart.PartBegins):
                assert current is None
                current = bytearray()
            elif isinstance(event, multipart.Content):
                assert current is not None
                current += event.data
            else:
                assert current is not None
                seen.append((event.part.field_name, bytes(current)))
                current = None
        start = cut
    assert current is None
    return seen


@settings(max_examples=300)
@given(
    content=st.binary(max_size=3000),
    splits=st.lists(st.integers(min_value=0, max_value=4000), max_size=8),
)
def test_reported_content_is_each_part_exactly_at_any_split_points(
    content: bytes, splits: list[int]
) -> None:
    body = form((DATA, content), (VALUE_TYPE, b"File"), ("X-Other: 1", b"no name"))
    if (b"\r\n--" + BOUNDARY) in b"\r\n" + content:
        return  # not a valid form: the content would end the part
    assert content_by_part(body, [s for s in splits if s <= len(body)]) == [
        ("data", content),
        ("valueType", b"File"),
        (None, b"no name"),
    ]


def test_a_large_chunk_of_content_is_reported_as_a_view_not_a_copy() -> None:
    scanner = FormScanner(BOUNDARY, report=True)
    head = form((DATA, b""), close=False)[: -len(b"\r\n")]
    scanner.feed(head)
    chunk = bytes(256 * 1024)
    events = scanner.feed(chunk)
    views = [e.data for e in events if isinstance(e, multipart.Content)]
    assert any(isinstance(view, memoryview) and view.obj is chunk for view in views)


def test_without_report_feed_returns_no_events() -> None:
    scanner = FormScanner(BOUNDARY)
    assert scanner.feed(form((DATA, b"x" * 10_000), (VALUE_TYPE, b"File"))) == []
