from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import digest
from gateway.digest import DigestFieldError


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@given(st.binary(), st.sampled_from([frozenset({"sha-256"}), frozenset(digest.ALGORITHMS)]))
def test_a_formatted_digest_parses_back_to_the_same_values(
    data: bytes, algorithms: frozenset[str]
) -> None:
    hashes = digest.Hashes(algorithms)
    hashes.update(data)
    computed = hashes.digests()
    assert set(computed) == algorithms
    assert computed["sha-256"] == hashlib.sha256(data).digest()
    field = digest.format_digests(computed)
    assert digest.parse_digests("Repr-Digest", field) == computed


@given(st.binary(max_size=5000), st.lists(st.integers(min_value=0, max_value=5000), max_size=6))
def test_hashing_in_pieces_is_hashing_the_whole(data: bytes, cuts: list[int]) -> None:
    hashes = digest.Hashes(frozenset(digest.ALGORITHMS))
    start = 0
    for cut in [*sorted(c for c in cuts if c <= len(data)), len(data)]:
        hashes.update(memoryview(data)[start:cut])
        start = cut
    assert hashes.digests()["sha-512"] == hashlib.sha512(data).digest()


def test_the_field_is_written_as_rfc_9530_shows_it() -> None:
    # RFC 9530 Appendix B.1: the digest of {"hello": "world"}.
    value = hashlib.sha256(b'{"hello": "world"}').digest()
    assert digest.format_digests({"sha-256": value}) == (
        "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    )


def test_unsupported_algorithms_and_parameters_are_ignored() -> None:
    sha = hashlib.sha256(b"x").digest()
    field = f"md5=:{_b64(bytes(16))}:, unixsum=1234, sha-256=:{_b64(sha)}:;note=1"
    assert digest.parse_digests("Content-Digest", field) == {"sha-256": sha}
    assert digest.parse_digests("Content-Digest", "md5=:AAAA:") == {}


@pytest.mark.parametrize(
    ("value", "complaint"),
    [
        ("sha-256=X48E9qOokqqr", "byte sequence"),
        ("sha-256=:AAAA:,", "Structured Field"),
        ("sha-256=:AAAA:", "32 bytes"),
        ("sha-256=12", "byte sequence"),
        ("sha-256=:not base64!:", "Structured Field"),
        ("sha-256", "byte sequence"),
    ],
)
def test_malformed_digest_fields_are_refused_with_the_reason(value: str, complaint: str) -> None:
    with pytest.raises(DigestFieldError, match=complaint):
        digest.parse_digests("Repr-Digest", value)


def test_want_fields_name_the_supported_algorithms_with_a_preference_above_zero() -> None:
    assert digest.parse_wanted("Want-Repr-Digest", "sha-512=3, sha-256=0, md5=10") == {"sha-512"}
    with pytest.raises(DigestFieldError, match="0 to 10"):
        digest.parse_wanted("Want-Repr-Digest", "sha-256=11")
    with pytest.raises(DigestFieldError, match="0 to 10"):
        digest.parse_wanted("Want-Repr-Digest", "sha-256=:AAAA:")


def test_the_first_mismatched_algorithm_is_named() -> None:
    computed = {"sha-256": b"a" * 32, "sha-512": b"b" * 64}
    assert digest.mismatched({"sha-256": b"a" * 32}, computed) is None
    assert digest.mismatched({"sha-512": b"c" * 64}, computed) == "sha-512"
    assert digest.mismatched({"sha-512": b"b" * 64}, {"sha-256": b"a" * 32}) == "sha-512"


SF_LIKE = st.text(alphabet='sha-256512md=:;,?*()" \t\x7f\u00e9AZaz09+/', max_size=120)


@given(st.one_of(st.text(max_size=200), SF_LIKE))
def test_any_field_value_parses_or_is_refused_with_a_digest_field_error(value: str) -> None:
    for parse in (digest.parse_digests, digest.parse_wanted):
        try:
            parsed = parse("Repr-Digest", value)
        except DigestFieldError:
            continue
        assert set(parsed) <= set(digest.ALGORITHMS)
