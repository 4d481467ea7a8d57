"""Range and If-Range against a document (RFC 9110 §13.1.5, §14)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.ranges import WHOLE, Partial, Unsatisfiable, etag, select

TAG = etag("ab" * 32)
SIZE = 1000


@pytest.mark.parametrize(
    ("range_value", "expected"),
    [
        ("bytes=0-99", Partial(0, 100)),  # the first bytes
        ("bytes=500-599", Partial(500, 600)),  # the middle
        ("bytes=-100", Partial(900, 1000)),  # a suffix
        ("bytes=990-", Partial(990, 1000)),  # from an offset (curl -C -)
        ("bytes=900-5000", Partial(900, 1000)),  # past the end: cut to it
        ("bytes=-5000", Partial(0, 1000)),  # a suffix longer than the document
        ("BYTES = 0-0", Partial(0, 1)),
        ("bytes=1000-", Unsatisfiable()),
        ("bytes=5000-6000", Unsatisfiable()),
        ("bytes=-0", Unsatisfiable()),
        ("bytes=0-1,5-9", WHOLE),  # several: the whole document
        ("bytes=9-5", WHOLE),  # invalid: ignored
        ("lines=0-9", WHOLE),
        ("bytes=", WHOLE),
        ("bytes=a-b", WHOLE),
        ("0-99", WHOLE),
    ],
)
def test_a_range_selects_its_bytes(range_value: str, expected: object) -> None:
    assert select(range_value, None, SIZE, TAG) == expected


def test_no_range_is_the_whole_document() -> None:
    assert select(None, TAG, SIZE, TAG) == WHOLE


def test_if_range_with_the_documents_tag_serves_the_range() -> None:
    assert select("bytes=0-9", TAG, SIZE, TAG) == Partial(0, 10)


@pytest.mark.parametrize(
    "validator", [etag("cd" * 32), "W/" + TAG, "Sat, 05 Dec 2026 10:00:00 GMT", ""]
)
def test_if_range_with_anything_else_serves_the_whole_document(validator: str) -> None:
    assert select("bytes=0-9", validator, SIZE, TAG) == WHOLE


def test_an_empty_document_has_no_satisfiable_range() -> None:
    assert select("bytes=0-", None, 0, TAG) == Unsatisfiable()
    assert select("bytes=-1", None, 0, TAG) == Unsatisfiable()


def test_content_range_names_the_bytes_and_the_size() -> None:
    assert Partial(0, 100).content_range(SIZE) == "bytes 0-99/1000"
    assert Unsatisfiable.content_range(SIZE) == "bytes */1000"


@given(st.text(max_size=40), st.none() | st.text(max_size=70), st.integers(0, 1 << 40))
def test_any_field_selects_bytes_inside_the_document(
    range_value: str, if_range: str | None, size: int
) -> None:
    chosen = select(range_value, if_range, size, TAG)
    if isinstance(chosen, Partial):
        assert 0 <= chosen.start < chosen.end <= size


@given(st.integers(0, 1 << 40), st.integers(0, 1 << 40), st.integers(1, 1 << 40))
def test_a_single_range_is_the_bytes_it_names_within_the_document(
    first: int, length: int, size: int
) -> None:
    chosen = select(f"bytes={first}-{first + length}", None, size, TAG)
    if first >= size:
        assert chosen == Unsatisfiable()
    else:
        assert chosen == Partial(first, min(first + length + 1, size))
