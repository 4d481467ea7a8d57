"""Fuzzing `gateway.jsonvalues`: any body is followed to its end or refused with NotJson or
InvalidValue, never another exception; fed in any chunks, as bytes or memoryviews, it gives
what it gives in one piece (the events, the values' decoded bytes, the refusal); every
value that begins ends, and every stored value is one that ended; and a body that Python's
json module reads is never refused as not JSON (the scanner is a superset of JSON).

Input: the body, then control bytes at the end (atheris reads numbers from there): up to 8
split points, whether every other chunk is a memoryview, and which places the variables
are looked for at.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass

import atheris

with atheris.instrument_imports(include=["gateway"]):
    from gateway.jsonvalues import (
        Decoded,
        InvalidValue,
        NotJson,
        Stored,
        TypedValueEnds,
        ValueBegins,
        ValueEnds,
        ValueScanner,
        parse_place,
    )

MAX_SPLITS = 8
PLACE_SETS = (
    (parse_place("variables.*"), parse_place("instructions[].variables.*")),
    (parse_place("."),),
    (parse_place("*"), parse_place("[].variables.*")),
)
LIMIT_CHARS = 64  # small, so that the limit is reached too


@dataclass(frozen=True)
class Outcome:
    values: list[bytes] | None  # each value's decoded bytes, in order
    stored: list[Stored] | None
    error: type[Exception] | None


def scan(places: tuple[tuple[str, ...], ...], chunks: list[bytes | memoryview]) -> Outcome:
    scanner = ValueScanner(places, string_limit_chars=LIMIT_CHARS)
    values: list[bytes] = []
    stored: list[Stored] = []
    current: bytearray | None = None
    ended: set[int] = set()
    try:
        events = [event for chunk in chunks for event in scanner.feed(chunk)]
        events += scanner.finish()
    except (NotJson, InvalidValue) as error:
        return Outcome(None, None, type(error))
    for event in events:
        if isinstance(event, ValueBegins):
            assert current is None, event
            current = bytearray()
        elif isinstance(event, Decoded):
            assert current is not None, event
            assert event.data, event
            current += event.data
        elif isinstance(event, ValueEnds):
            assert current is not None, event
            values.append(bytes(current))
            ended.add(event.index)
            current = None
        else:
            assert isinstance(event, TypedValueEnds)
            assert current is None, event
            if event.stored is not None:
                assert event.stored.index in ended, event
                assert event.stored.type_name in ("File", "Bytes"), event
                stored.append(event.stored)
    return Outcome(values, stored, None)


def TestOneInput(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    count = provider.ConsumeIntInRange(0, MAX_SPLITS)
    splits = [provider.ConsumeIntInRange(0, 4095) for _ in range(count)]
    views = provider.ConsumeIntInRange(0, 1) == 1
    places = PLACE_SETS[provider.ConsumeIntInRange(0, len(PLACE_SETS) - 1)]
    body = provider.ConsumeBytes(provider.remaining_bytes())
    whole = scan(places, [body])
    cuts = sorted({split % (len(body) + 1) for split in splits})
    pieces = [body[start:end] for start, end in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    chunks: list[bytes | memoryview] = [
        memoryview(piece) if views and index % 2 else piece for index, piece in enumerate(pieces)
    ]
    assert scan(places, chunks) == whole, (cuts, views)
    if whole.error is NotJson:
        try:
            json.loads(body)
        except ValueError:
            return
        raise AssertionError("a body json.loads reads was refused as not JSON")


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
