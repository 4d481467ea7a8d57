"""Fuzzing `gateway.reference`: no bytes but the ones this module writes, signed with one of
the keys, are ever taken for a reference, and what is taken writes back to the same bytes.

Input: the bytes given to `decode`; with the last byte odd, a reference is written from the
input first (its name and type from the payload) and then one byte of it changed where the
input says, so the fuzzer explores near-valid references too.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["gateway"]):
    from gateway.reference import Reference, decode, encode

KEY, OTHER = b"k" * 32, b"q" * 32
HASH = "0" * 64
DOCUMENT = "00000000-0000-4000-8000-000000000000"


def TestOneInput(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    near = provider.ConsumeBool()
    if near:
        name = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 300))
        content_type = provider.ConsumeUnicodeNoSurrogates(provider.ConsumeIntInRange(0, 250))
        size = provider.ConsumeIntInRange(0, 1 << 53)
        written = encode(
            Reference("s3://b", DOCUMENT, HASH, size, content_type, name, None, "/d"), KEY
        )
        assert len(written) <= 1024
        assert isinstance(decode(written, [OTHER, KEY]), Reference)
        index = provider.ConsumeIntInRange(0, len(written) - 1)
        byte = provider.ConsumeIntInRange(0, 255)
        if written[index] == byte:
            return
        candidate = written[:index] + bytes([byte]) + written[index + 1 :]
    else:
        candidate = provider.ConsumeBytes(provider.remaining_bytes())
    found = decode(candidate, [KEY])
    if isinstance(found, Reference):
        assert not near, candidate  # one changed byte never verifies
        assert encode(found, KEY) == candidate, candidate
    assert not isinstance(decode(candidate, [OTHER]), Reference)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
