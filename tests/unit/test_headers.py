from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway import headers

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1)


def test_fixed_hop_by_hop_headers_are_dropped() -> None:
    incoming = CIMultiDict(
        [
            ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
            ("Proxy-Connection", "keep-alive"),
            ("TE", "trailers"),
            ("Transfer-Encoding", "chunked"),
            ("Upgrade", "h2c"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("Content-Type", "application/json"),
        ]
    )
    assert list(headers.end_to_end(incoming).items()) == [("Content-Type", "application/json")]


def test_headers_named_in_connection_are_dropped() -> None:
    incoming = CIMultiDict([("Connection", "X-Secret, close"), ("x-secret", "1"), ("X-Kept", "2")])
    assert list(headers.end_to_end(incoming).items()) == [("X-Kept", "2")]


def test_authorization_passes_unchanged() -> None:
    incoming = CIMultiDict([("Authorization", "Basic ZGVtbzpkZW1v")])
    outgoing = headers.upstream_request_headers(
        incoming, client_address="127.0.0.1", scheme="http", host="gw:8000"
    )
    assert outgoing["Authorization"] == "Basic ZGVtbzpkZW1v"


def test_forwarded_for_is_appended_and_proto_host_are_kept() -> None:
    incoming = CIMultiDict(
        [
            ("Host", "gw.example"),
            ("X-Forwarded-For", "203.0.113.7"),
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-Host", "public.example"),
        ]
    )
    outgoing = headers.upstream_request_headers(
        incoming, client_address="127.0.0.1", scheme="http", host="gw.example"
    )
    assert outgoing["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"
    assert outgoing["X-Forwarded-Proto"] == "https"
    assert outgoing["X-Forwarded-Host"] == "public.example"
    assert outgoing.getall("Host") == ["gw.example"]


def test_forwarded_headers_are_set_when_absent() -> None:
    outgoing = headers.upstream_request_headers(
        CIMultiDict(), client_address="10.1.2.3", scheme="http", host="gw:8000"
    )
    assert outgoing["X-Forwarded-For"] == "10.1.2.3"
    assert outgoing["X-Forwarded-Proto"] == "http"
    assert outgoing["X-Forwarded-Host"] == "gw:8000"


def test_expect_is_not_forwarded() -> None:
    outgoing = headers.upstream_request_headers(
        CIMultiDict([("Expect", "100-continue")]), client_address=None, scheme="http", host=None
    )
    assert "Expect" not in outgoing


def test_response_keeps_content_length_and_encoding() -> None:
    upstream = CIMultiDict(
        [("Content-Length", "10"), ("Content-Encoding", "gzip"), ("Transfer-Encoding", "chunked")]
    )
    assert dict(headers.downstream_response_headers(upstream)) == {
        "Content-Length": "10",
        "Content-Encoding": "gzip",
    }


@given(
    st.lists(st.tuples(TOKEN, st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126))))
)
def test_end_to_end_keeps_every_other_header_in_order(fields: list[tuple[str, str]]) -> None:
    incoming = CIMultiDict(fields)
    dropped = headers.HOP_BY_HOP | headers.connection_listed(incoming)
    expected = [(name, value) for name, value in fields if name.lower() not in dropped]
    result = list(headers.end_to_end(incoming).items())
    assert result == expected
    assert not any(name.lower() in headers.HOP_BY_HOP for name, _ in result)
