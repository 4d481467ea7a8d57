"""Signed references: what round-trips, and that nothing else is ever taken for one."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import reference
from gateway.reference import Forged, Reference

KEY = b"k" * 32
OLD_KEY = b"o" * 40
SAMPLE = Reference(
    store_id="s3://documents/gateway",
    document_id="0f8e1d2c-3b4a-4596-8877-665544332211",
    content_hash="ab" * 32,
    size=1048577,
    content_type="application/pdf",
    file_name="Отчёт 2026.pdf",
    expires_at=None,
    href="/documents/0f8e1d2c-3b4a-4596-8877-665544332211?contentHash=" + "ab" * 32,
)

references = st.builds(
    Reference,
    store_id=st.sampled_from(["file:///var/lib/documents", "s3://bucket", "s3://b/p/q"]),
    document_id=st.uuids().map(str),
    content_hash=st.binary(min_size=32, max_size=32).map(bytes.hex),
    size=st.integers(min_value=0, max_value=1 << 50),
    content_type=st.none() | st.text(max_size=80),
    file_name=st.none() | st.text(max_size=300),
    expires_at=st.none() | st.just("2026-12-31T23:59:59Z"),
    href=st.just("/documents/x"),
    custom_properties=st.none()
    | st.dictionaries(st.text(max_size=10), st.integers() | st.text(max_size=20), max_size=3),
)


def test_a_reference_round_trips() -> None:
    data = reference.encode(SAMPLE, KEY)
    assert reference.decode(data, [KEY]) == SAMPLE
    assert json.loads(data)["signature"].startswith("hmac-sha256:")


@given(references)
def test_any_reference_round_trips_within_a_kibibyte(ref: Reference) -> None:
    data = reference.encode(ref, KEY)
    assert len(data) <= reference.MAX_BYTES
    decoded = reference.decode(data, [KEY])
    assert isinstance(decoded, Reference)
    # The name may be cut to fit; everything that locates the content never is.
    assert (
        dataclasses.replace(decoded, file_name=ref.file_name, content_type=ref.content_type) == ref
    )


@given(references, st.data())
def test_any_change_to_a_references_bytes_fails_verification(
    ref: Reference, data: st.DataObject
) -> None:
    signed = reference.encode(ref, KEY)
    index = data.draw(st.integers(min_value=0, max_value=len(signed) - 1))
    change = data.draw(st.sampled_from(["replace", "delete", "insert"]))
    byte = data.draw(st.integers(min_value=0, max_value=255))
    if change == "replace":
        if signed[index] == byte:
            byte = (byte + 1) % 256
        changed = signed[:index] + bytes([byte]) + signed[index + 1 :]
    elif change == "delete":
        changed = signed[:index] + signed[index + 1 :]
    else:
        changed = signed[:index] + bytes([byte]) + signed[index:]
    assert not isinstance(reference.decode(changed, [KEY]), Reference)


def test_a_reference_signed_with_a_retired_key_verifies_while_the_key_is_listed() -> None:
    data = reference.encode(SAMPLE, OLD_KEY)
    assert reference.decode(data, [KEY, OLD_KEY]) == SAMPLE
    assert isinstance(reference.decode(data, [KEY]), Forged)


def test_a_forged_reference_is_recognised_as_forged_and_never_resolved() -> None:
    members = json.loads(reference.encode(SAMPLE, KEY))
    members["contentHash"] = "cd" * 32  # another document's content
    forged = json.dumps(members, ensure_ascii=False, separators=(",", ":")).encode()
    assert isinstance(reference.decode(forged, [KEY]), Forged)
    members["signature"] = "hmac-sha256:"
    unsigned = json.dumps(members, ensure_ascii=False, separators=(",", ":")).encode()
    assert isinstance(reference.decode(unsigned, [KEY]), Forged)


def test_the_same_reference_written_another_way_is_not_taken() -> None:
    members = json.loads(reference.encode(SAMPLE, KEY))
    escaped = json.dumps(members, separators=(",", ":")).encode()  # \u escapes
    assert isinstance(reference.decode(escaped, [KEY]), Forged)
    pretty = json.dumps(members, ensure_ascii=False).encode()
    assert reference.decode(pretty, [KEY]) is None


@pytest.mark.parametrize(
    "data", [b"", b"%PDF-1.7", b'{"a":1}', b"x" * 2000, b'{"engine-gateway":"document/2"}']
)
def test_other_small_files_are_not_references(data: bytes) -> None:
    assert reference.decode(data, [KEY]) is None


def test_a_long_name_is_cut_to_fit() -> None:
    named = dataclasses.replace(SAMPLE, file_name="\x01" * 300)
    data = reference.encode(named, KEY)
    assert len(data) <= reference.MAX_BYTES
    assert isinstance(reference.decode(data, [KEY]), Reference)


def test_the_key_file_has_one_key_a_line_the_first_signing() -> None:
    text = "# rotated 2026-12\n" + "a" * 64 + "\n\n" + "b" * 32 + "\n"
    assert reference.parse_keys(text) == (b"a" * 64, b"b" * 32)


@pytest.mark.parametrize("text", ["", "# only a comment\n", "short\n"])
def test_a_key_file_without_a_usable_key_is_refused(text: str) -> None:
    with pytest.raises(reference.KeyFileError):
        reference.parse_keys(text)


def test_a_type_and_name_of_escaped_control_characters_still_fit() -> None:
    """Found by tests/fuzz/reference_target.py: each control character is six bytes
    escaped, so a type of 200 of them outgrew 1 KiB (and encode recursed for ever)."""
    odd = dataclasses.replace(SAMPLE, content_type="\x01" * 200, file_name="\x02" * 255)
    data = reference.encode(odd, KEY)
    assert len(data) <= reference.MAX_BYTES
    decoded = reference.decode(data, [KEY])
    assert isinstance(decoded, Reference)
    assert decoded.content_hash == SAMPLE.content_hash


def test_custom_properties_round_trip_and_their_absence_keeps_the_old_form() -> None:
    with_properties = dataclasses.replace(SAMPLE, custom_properties={"case": "A-17", "n": 3})
    data = reference.encode(with_properties, KEY)
    assert b'"expiresAt":null,"customProperties":{"case":"A-17","n":3}}' in data
    assert reference.decode(data, [KEY]) == with_properties
    assert b"customProperties" not in reference.encode(SAMPLE, KEY)
    # Written as null, it is not the form the gateway writes: refused.
    plain = reference.encode(SAMPLE, KEY)
    forged = plain.replace(b'"expiresAt":null', b'"expiresAt":null,"customProperties":null')
    assert isinstance(reference.decode(forged, [KEY]), Forged)
