from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.jsontext import BodyText, Utf8, detect_encoding, jackson_text

TEXT = '{"variables": {"näme": {"type": "Bytes", "value": "QUJD"}}}'


@pytest.mark.parametrize(
    "encoding",
    ["utf-8", "utf-8-sig", "utf-16-le", "utf-16-be", "utf-16", "utf-32-le", "utf-32-be", "utf-32"],
)
def test_every_encoding_jackson_detects_becomes_the_same_utf8(encoding: str) -> None:
    raw = TEXT.encode(encoding)
    text = BodyText()
    out = b"".join(text.feed(raw[i : i + 3]) for i in range(0, len(raw), 3)) + text.finish()
    assert out == TEXT.encode()


@pytest.mark.parametrize(
    ("head", "found"),
    [
        (b'{"a"', (None, 0)),
        (b"\xef\xbb\xbf{", (None, 3)),
        (b"{\x00\x22\x00", ("utf-16-le", 0)),
        (b"\x00{\x00\x22", ("utf-16-be", 0)),
        (b"\xff\xfe{\x00", ("utf-16-le", 2)),
        (b"{\x00\x00\x00", ("utf-32-le", 0)),
        (b"\x00\x00\x00{", ("utf-32-be", 0)),
        (b"\x00\x00\xfe\xff", ("utf-32-be", 4)),
    ],
)
def test_the_encoding_is_detected_from_the_first_four_bytes(
    head: bytes, found: tuple[str | None, int]
) -> None:
    assert detect_encoding(head) == found


def test_overlong_forms_are_read_as_jackson_reads_them() -> None:
    assert jackson_text(b"\xc0\xaf\xc1\xa5\xe0\x81\xb4") == "/et"


def test_a_sequence_cut_between_pieces_is_joined() -> None:
    decoder = Utf8()
    assert decoder.decode(b"a\xc3") == [ord("a")]
    assert decoder.decode(b"\xa9b") == [0xE9, ord("b")]


@given(st.text())
def test_valid_utf8_reads_as_python_reads_it(text: str) -> None:
    raw = text.encode("utf-8", "surrogatepass")
    assert jackson_text(raw) == text.encode("utf-16-le", "surrogatepass").decode(
        "utf-16-le", "replace"
    )
