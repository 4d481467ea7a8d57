"""Fuzzing `gateway.ranges`: any Range and If-Range select bytes inside the document, a
range a single `first-last` names is exactly those bytes, and nothing raises.

Input: the document's size, whether an If-Range is sent (the document's tag or the
payload's second half), then the Range field.
"""

from __future__ import annotations

import re
import sys

import atheris

with atheris.instrument_imports(include=["gateway"]):
    from gateway.ranges import WHOLE, Partial, Unsatisfiable, etag, select

TAG = etag("0" * 64)
_SIMPLE = re.compile(r"bytes=(\d+)-(\d+)")


def TestOneInput(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    size = provider.ConsumeIntInRange(0, 1 << 40)
    if_range_kind = provider.ConsumeIntInRange(0, 2)
    text = provider.ConsumeBytes(provider.remaining_bytes()).decode("latin-1")
    range_value, _, other = text.partition("\n")
    if_range = (None, TAG, other)[if_range_kind]
    chosen = select(range_value, if_range, size, TAG)
    assert isinstance(chosen, Partial | Unsatisfiable) or chosen == WHOLE
    if isinstance(chosen, Partial):
        assert 0 <= chosen.start < chosen.end <= size, (range_value, size, chosen)
    simple = _SIMPLE.fullmatch(range_value)
    if simple and if_range in (None, TAG):
        first, last = int(simple.group(1)), int(simple.group(2))
        if last >= first:
            expected = Unsatisfiable() if first >= size else Partial(first, min(last + 1, size))
            assert chosen == expected, (range_value, size, chosen)


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
