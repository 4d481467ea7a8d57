"""Links to a document: what the gateway signs verifies until it expires, and any change to
one, however small, is refused."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import links
from gateway.links import Link, Refused

KEY, NEW_KEY = b"k" * 32, b"n" * 32
SAMPLE = Link("0f8e1d2c-3b4a-4596-8877-665544332211", "ab" * 32, 1_900_000_000, "inline")
NOW = 1_800_000_000.0

samples = st.builds(
    Link,
    document_id=st.uuids().map(str),
    content_hash=st.binary(min_size=32, max_size=32).map(bytes.hex),
    expires=st.integers(min_value=int(NOW) + 1, max_value=10**12 - 1),
    disposition=st.sampled_from(links.DISPOSITIONS),
)


@given(samples)
def test_a_signed_link_verifies_until_it_expires(link: Link) -> None:
    query = links.query(link, KEY)
    assert links.verify(link.document_id, query, [KEY], NOW) == link
    assert links.verify(link.document_id, query, [KEY], link.expires) == Refused("expired")


def test_any_key_of_the_file_verifies_so_a_key_can_be_rotated_in() -> None:
    query = links.query(SAMPLE, KEY)
    assert links.verify(SAMPLE.document_id, query, [NEW_KEY, KEY], NOW) == SAMPLE
    assert links.verify(SAMPLE.document_id, query, [NEW_KEY], NOW) == Refused("altered")


# Every character a URL's path segment or query may hold, and a few it may not.
_CHARACTERS = st.sampled_from("0123456789abcdefABCDEF-_=&%?/.+~ xyzXYZ" + "\u00e9\u0000")


@given(samples, st.data())
def test_any_change_to_a_link_is_refused(link: Link, data: st.DataObject) -> None:
    signed = f"{link.document_id}?{links.query(link, KEY)}"
    position = data.draw(st.integers(min_value=0, max_value=len(signed)))
    change = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    character = data.draw(_CHARACTERS)
    if change == "replace" and position < len(signed):
        altered = signed[:position] + character + signed[position + 1 :]
    elif change == "delete" and position < len(signed):
        altered = signed[:position] + signed[position + 1 :]
    else:
        altered = signed[:position] + character + signed[position:]
    if altered == signed:
        return
    document_id, _, query = altered.partition("?")
    assert isinstance(links.verify(document_id, query, [KEY], NOW), Refused)


@pytest.mark.parametrize(
    "other",
    [
        dataclasses.replace(SAMPLE, document_id="11111111-2222-4333-8444-555555555555"),
        dataclasses.replace(SAMPLE, content_hash="cd" * 32),
        dataclasses.replace(SAMPLE, expires=SAMPLE.expires + 1),
        dataclasses.replace(SAMPLE, disposition="attachment"),
    ],
)
def test_a_link_signed_for_other_values_does_not_verify_for_these(other: Link) -> None:
    query = links.query(other, KEY)
    # The other link's signature put on this link's values.
    signature = query.rsplit("=", 1)[1]
    mine = links.query(SAMPLE, KEY).rsplit("=", 1)[0] + "=" + signature
    assert links.verify(SAMPLE.document_id, mine, [KEY], NOW) == Refused("altered")


def test_a_request_with_any_link_parameter_is_checked_as_a_link() -> None:
    assert links.is_link(["contentHash", "signature"])
    assert links.is_link(["expires"])
    assert not links.is_link(["contentHash", "disposition"])
