"""Integrity digests (RFC 9530): the fields read and written, and the hashing; pure, no I/O.

`Repr-Digest` and `Content-Digest` are Structured Field dictionaries (RFC 9651) of
algorithm → byte sequence; `Want-Repr-Digest` and `Want-Content-Digest` of algorithm →
preference 0 to 10, 0 meaning "not this one". http-sf parses them exactly as RFC 9651 says.
Only the algorithms RFC 9530 registers as active are computed (sha-256, sha-512); the
deprecated ones (md5, sha, unixsum, unixcksum, adler, crc32c) are ignored, as §5 allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import http_sf

ALGORITHMS = ("sha-256", "sha-512")
DEFAULT_ALGORITHM = "sha-256"
_HASHES = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}

FIELDS = ("Repr-Digest", "Content-Digest")


class DigestFieldError(ValueError):
    """A digest field that is not what RFC 9530 says it is; the message says why."""


def parse_digests(name: str, value: str) -> dict[str, bytes]:
    """The supported digests of a `Repr-Digest`/`Content-Digest` field value."""
    members = _dictionary(name, value)
    found: dict[str, bytes] = {}
    for algorithm, item in members.items():
        if algorithm not in _HASHES:
            continue
        if not isinstance(item, bytes):
            raise DigestFieldError(f"{name}: the {algorithm} digest must be a byte sequence :…:")
        expected_size = _HASHES[algorithm]().digest_size
        if len(item) != expected_size:
            raise DigestFieldError(
                f"{name}: a {algorithm} digest is {expected_size} bytes, this one {len(item)}"
            )
        found[algorithm] = item
    return found


def parse_wanted(name: str, value: str) -> frozenset[str]:
    """The supported algorithms a `Want-*-Digest` field asks for (preference above 0)."""
    members = _dictionary(name, value)
    wanted = set()
    for algorithm, item in members.items():
        if not isinstance(item, int) or isinstance(item, bool) or not 0 <= item <= 10:
            raise DigestFieldError(f"{name}: the preference for {algorithm} must be 0 to 10")
        if algorithm in _HASHES and item > 0:
            wanted.add(algorithm)
    return frozenset(wanted)


def _dictionary(name: str, value: str) -> dict[str, object]:
    """Each member's value, its parameters left out (RFC 9530 defines none)."""
    try:
        parsed = http_sf.parse(value.encode("latin-1", errors="replace"), tltype="dictionary")
    except http_sf.StructuredFieldError as error:
        raise DigestFieldError(f"{name} is not a Structured Field dictionary: {error}") from None
    assert isinstance(parsed, dict)
    # An item is (value, parameters); an inner list is (items, parameters) too.
    return {
        key: member[0] if isinstance(member, tuple) else member for key, member in parsed.items()
    }


def format_digests(digests: Mapping[str, bytes]) -> str:
    """A field value, algorithms in ALGORITHMS order."""
    members: http_sf.DictionaryType = {a: (digests[a], {}) for a in ALGORITHMS if a in digests}
    return http_sf.ser(members)


@dataclass
class Hashes:
    """Running digests of one body, in the algorithms asked for."""

    algorithms: frozenset[str]

    def __post_init__(self) -> None:
        self._running = {a: _HASHES[a]() for a in ALGORITHMS if a in self.algorithms}

    def update(self, data: bytes | memoryview) -> None:
        for running in self._running.values():
            running.update(data)

    def digests(self) -> dict[str, bytes]:
        return {a: running.digest() for a, running in self._running.items()}


def mismatched(expected: Mapping[str, bytes], computed: Mapping[str, bytes]) -> str | None:
    """The first algorithm whose claimed digest differs from the computed one, if any."""
    for algorithm in ALGORITHMS:
        if algorithm in expected and expected[algorithm] != computed.get(algorithm):
            return algorithm
    return None


def needed(*groups: Iterable[str]) -> frozenset[str]:
    """The algorithms to compute: sha-256 always, and whatever else was named."""
    return frozenset({DEFAULT_ALGORITHM}.union(*groups))
