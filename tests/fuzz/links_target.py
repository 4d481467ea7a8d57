"""Fuzzing `gateway.links`: no path and query but the ones this module writes, signed with
one of the keys, are ever served as a link, and a link taken writes back to the same query.

Input: with its first byte odd, a link is written first and one character of it changed
where the input says, so the fuzzer explores near-valid links too; otherwise the input is
the document id and the query, split at its first `?`.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["gateway"]):
    from gateway.links import Link, query, verify

KEY, OTHER = b"k" * 32, b"q" * 32
DOCUMENT = "00000000-0000-4000-8000-000000000000"
NOW = 1_800_000_000.0


def TestOneInput(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    near = provider.ConsumeBool()
    if near:
        expires = provider.ConsumeIntInRange(int(NOW) + 1, 10**12 - 1)
        kind = "inline" if provider.ConsumeBool() else "attachment"
        written = f"{DOCUMENT}?{query(Link(DOCUMENT, 'ab' * 32, expires, kind), KEY)}"
        path, _, raw_query = written.partition("?")
        assert verify(path, raw_query, [OTHER, KEY], NOW) == Link(
            DOCUMENT, "ab" * 32, expires, kind
        )
        index = provider.ConsumeIntInRange(0, len(written) - 1)
        character = chr(provider.ConsumeIntInRange(0, 0x10FFFF))
        if written[index] == character or 0xD800 <= ord(character) <= 0xDFFF:
            return
        candidate = written[:index] + character + written[index + 1 :]
    else:
        candidate = provider.ConsumeUnicodeNoSurrogates(provider.remaining_bytes())
    document_id, _, raw_query = candidate.partition("?")
    found = verify(document_id, raw_query, [KEY], NOW)
    if isinstance(found, Link):
        assert not near, candidate  # one changed character never verifies
        assert f"{document_id}?{query(found, KEY)}" == candidate, candidate
    assert not isinstance(verify(document_id, raw_query, [OTHER], NOW), Link)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
