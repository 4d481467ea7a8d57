"""Which bytes of a document a GET asks for: `Range` and `If-Range` (RFC 9110 §13.1.5,
§14), against the document's size and strong entity tag. Pure: no I/O.

aiohttp almost does this (`BaseRequest.http_range`, used by its FileResponse), and is not
used because of what it does differently: it answers a request for several ranges with 416
instead of serving it; FileResponse compares `If-Range` only as a date (a document has an
entity tag, its SHA-256, and no date that would mean anything across stores); and it
parses the header from the request, not from a value a test or a fuzzer can give it.

Several ranges are served as the whole document (200), as nginx does with `max_ranges 1`:
RFC 9110 §14.2 lets a server ignore a Range, `multipart/byteranges` is what few clients
read (browsers, curl's resume and video players send one range), and building it would
hold a part boundary per range and a second framing for the gateway to get right.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RANGE = re.compile(r"(\d*)[ \t]*-[ \t]*(\d*)")


@dataclass(frozen=True)
class Whole:
    """200: the whole document."""


@dataclass(frozen=True)
class Partial:
    """206: bytes `start` up to `end` (exclusive)."""

    start: int
    end: int

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


@dataclass(frozen=True)
class Unsatisfiable:
    """416: no byte the Range asks for exists."""

    @staticmethod
    def content_range(size: int) -> str:
        return f"bytes */{size}"


Selection = Whole | Partial | Unsatisfiable
WHOLE = Whole()


def etag(content_hash: str) -> str:
    """A document's strong entity tag: its content's SHA-256."""
    return f'"{content_hash}"'


def select(range_value: str | None, if_range: str | None, size: int, entity_tag: str) -> Selection:
    """What to send for a GET with these fields; `entity_tag` is the document's (quoted)."""
    if range_value is None:
        return WHOLE
    if if_range is not None and if_range.strip() != entity_tag:
        # §13.1.5: a weak tag or a date never matches (a document has no Last-Modified),
        # and a validator that does not match means the whole representation.
        return WHOLE
    unit, equals, specs = range_value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return WHOLE  # §14.2: an unknown unit or a malformed field is ignored
    items = [item.strip(" \t") for item in specs.split(",")]
    items = [item for item in items if item]  # §5.6.1: empty list elements are allowed
    if len(items) != 1:
        return WHOLE  # none, or several: served whole (the module's docstring says why)
    found = _RANGE.fullmatch(items[0])
    if found is None:
        return WHOLE
    first, last = found.group(1), found.group(2)
    if not first:
        if not last:
            return WHOLE
        suffix = int(last)
        if suffix == 0 or size == 0:
            return Unsatisfiable()
        return Partial(max(0, size - suffix), size)
    start = int(first)
    if last and int(last) < start:
        return WHOLE  # an invalid range-spec: the field is ignored
    if start >= size:
        return Unsatisfiable()
    end = size if not last else min(int(last) + 1, size)
    return Partial(start, end)
