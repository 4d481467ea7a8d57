"""The engine's base64 decoders, against what the engines did with the same values: each row
was sent to Operaton 1.0.3 and Camunda 7.24 as `PUT …/variables/{name}` and read back from
`…/data` (docs/files-in-json.md has the run). None: the engine refused the value."""

from __future__ import annotations

import base64
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.base64decoding import (
    BYTES,
    FILE,
    CodecDecoding,
    JacksonDecoding,
    JavaDecoding,
    ValueDecoding,
)

# value (as the engine's Java string) → (Bytes in both engines, File in Operaton, File in Camunda)
MEASURED: list[tuple[str, str | None, str | None, str]] = [
    ("QUJD", "414243", "414243", "414243"),
    ("QUJ", None, "4142", "4142"),
    ("QUI=", "4142", "4142", "4142"),
    ("QQ==", "41", "41", "41"),
    ("QQ=", None, None, "41"),
    ("QQ===", None, None, "41"),
    ("Q", None, None, ""),
    ("QR==", "41", "41", "41"),
    ("QUJD\nQUJD", "414243414243", None, "414243414243"),
    ("QU\nJD", None, None, "414243"),
    ("QUJD QUJD", "414243414243", None, "414243414243"),
    (" QUJD", "414243", None, "414243"),
    ("QUJD ", "414243", None, "414243"),
    ("QUJD\r\nQUJD", "414243414243", None, "414243414243"),
    ("@@@@", None, None, ""),
    ("QUJD====", None, None, "414243"),
    ("QQ==QUJD", "41414243", None, "41"),
    ('QUJD"xyz', "414243", None, "414243c72c"),
    ("QU\\u004aD", "414243", None, "414bb4d38683"),
    ("QUJD\\n", "414243", None, "414243"),
    ("-_-_", None, None, "fbffbf"),
    ("", "", "", ""),
    ("QUJD\t", "414243", None, "414243"),
]


def _chars(value: str) -> list[int]:
    return [ord(c) if ord(c) < 0x80 else 0x80 for c in value]


def _jackson(value: str) -> bytes | None:
    decoding = JacksonDecoding()
    data = b"".join(decoding.char(c) for c in _chars(value)) + decoding.end()
    return None if decoding.error else data


def _codec(value: str) -> bytes:
    decoding = CodecDecoding()
    return b"".join(decoding.char(c) for c in _chars(value)) + decoding.end()


def _java_accepts(value: str) -> bool:
    decoding = JavaDecoding()
    for char in _chars(value):
        decoding.char(char)
    decoding.end()
    return decoding.error is None


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


@pytest.mark.parametrize(("value", "as_bytes", "operaton_file", "camunda_file"), MEASURED)
def test_each_decoder_does_what_its_engine_did(
    value: str, as_bytes: str | None, operaton_file: str | None, camunda_file: str
) -> None:
    assert _hex(_jackson(value)) == as_bytes
    assert _codec(value).hex() == camunda_file
    # Operaton stores what Camunda does, where java.util.Base64 takes the value at all.
    assert (camunda_file if _java_accepts(value) else None) == operaton_file


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_base64_as_clients_write_it_decodes_the_same_every_way(content: bytes) -> None:
    encoded = base64.b64encode(content).decode()
    assert _jackson(encoded) == content
    assert _codec(encoded) == content
    assert _java_accepts(encoded)
    assert _java_accepts(encoded.rstrip("="))  # padding is optional for java.util.Base64


ALPHABET = re.compile(r"[A-Za-z0-9+/]+")


def _decoded(value: str, known: str | None, cuts: list[int]) -> tuple[bytes, ValueDecoding]:
    """`value` through ValueDecoding as jsonvalues feeds it: runs of the alphabet in bulk,
    other characters one by one, the runs cut at `cuts`."""
    decoding = ValueDecoding(known)
    out = b""
    position = 0
    for found in ALPHABET.finditer(value):
        for char in _chars(value[position : found.start()]):
            out += decoding.char(char)
        run = found.group().encode()
        points = sorted({cut % (len(run) + 1) for cut in cuts})
        for start, end in zip([0, *points], [*points, len(run)], strict=True):
            if end > start:
                out += decoding.run(run[start:end])
        position = found.end()
    for char in _chars(value[position:]):
        out += decoding.char(char)
    return out + decoding.end(), decoding


VALUES = st.text(alphabet='QUJDAB+/=\n \\"@-_u004a', max_size=40)


@settings(max_examples=500)
@given(
    value=VALUES,
    known=st.sampled_from([None, FILE, BYTES]),
    cuts=st.lists(st.integers(0), max_size=4),
)
def test_the_stream_handed_on_is_the_stored_bytes_wherever_it_says_so(
    value: str, known: str | None, cuts: list[int]
) -> None:
    out, decoding = _decoded(value, known, cuts)
    as_bytes, as_file = _jackson(value), _codec(value)
    if decoding.exact_for(BYTES) and as_bytes is not None:
        assert out == as_bytes
    if decoding.exact_for(FILE):
        assert out == as_file
    assert decoding.decoded_bytes[FILE] == len(as_file)
    if known is not None:
        assert decoding.exact_for(known)  # a type known from the start is always followed
