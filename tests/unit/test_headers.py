from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway import headers

TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1)
VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126))
# The fields the gateway treats specially, and any other token; either in any letter case.
SPECIAL_NAMES = [
    *sorted(headers.HOP_BY_HOP | headers.REQUEST_ONLY_DROPPED),
    "Authorization",
    "Content-Length",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
]


def any_letter_case(name: str) -> st.SearchStrategy[str]:
    upper = st.lists(st.booleans(), min_size=len(name), max_size=len(name))
    return upper.map(
        lambda flags: "".join(
            c.upper() if u else c.lower() for c, u in zip(name, flags, strict=True)
        )
    )


NAME = st.one_of(st.sampled_from(SPECIAL_NAMES), TOKEN).flatmap(any_letter_case)
LIST_SEPARATOR = st.sampled_from([",", ", ", " ,", "\t,\t", ",,"])
CONNECTION = st.tuples(
    st.sampled_from(["Connection", "connection", "CONNECTION"]),
    st.lists(st.tuples(NAME, LIST_SEPARATOR), max_size=4).map(
        lambda tokens: "".join(name + separator for name, separator in tokens)
    ),
)
FIELDS = st.lists(st.one_of(st.tuples(NAME, VALUE), CONNECTION), max_size=12)
# What the gateway writes itself, whatever the client listed in Connection.
SET_BY_GATEWAY = frozenset({"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})


def listed(fields: list[tuple[str, str]]) -> frozenset[str]:
    return frozenset(
        token.strip().lower()
        for name, value in fields
        if name.lower() == "connection"
        for token in value.split(",")
    )


def upstream(fields: list[tuple[str, str]], client_address: str | None) -> CIMultiDict[str]:
    """As the proxy calls it: `host` is the first Host field the client sent."""
    host = next((value for name, value in fields if name.lower() == "host"), None)
    return headers.upstream_request_headers(
        CIMultiDict(fields), client_address=client_address, scheme="http", host=host
    )


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


@given(FIELDS)
def test_no_hop_by_hop_field_passes_either_way(fields: list[tuple[str, str]]) -> None:
    dropped = headers.HOP_BY_HOP | listed(fields)
    sent_up = {name.lower() for name in upstream(fields, "10.0.0.1")}
    assert not sent_up & (dropped - SET_BY_GATEWAY)
    assert "expect" not in sent_up
    sent_down = {name.lower() for name in headers.downstream_response_headers(CIMultiDict(fields))}
    assert not sent_down & dropped


@given(st.lists(st.tuples(TOKEN, LIST_SEPARATOR), min_size=1), st.sampled_from(["", " ", "\t"]))
def test_connection_lists_each_token_trimmed_and_lower_cased(
    tokens: list[tuple[str, str]], padding: str
) -> None:
    value = padding + "".join(padding + name + padding + sep for name, sep in tokens)
    found = headers.connection_listed(CIMultiDict([("Connection", value)]))
    assert found == {name.lower() for name, _ in tokens}


@given(FIELDS, st.sampled_from(["127.0.0.1", "2001:db8::7"]))
def test_forwarded_for_is_one_field_ending_with_the_client(
    fields: list[tuple[str, str]], client_address: str
) -> None:
    outgoing = upstream(fields, client_address)
    (forwarded_for,) = outgoing.getall("X-Forwarded-For")
    assert forwarded_for == client_address or forwarded_for.endswith(", " + client_address)


@given(FIELDS)
def test_host_is_the_clients_first_and_only_once(fields: list[tuple[str, str]]) -> None:
    host = next((value for name, value in fields if name.lower() == "host"), None)
    assert upstream(fields, None).getall("Host", []) == ([host] if host else [])


@given(FIELDS)
def test_forwarded_proto_and_host_from_a_proxy_in_front_are_kept(
    fields: list[tuple[str, str]],
) -> None:
    outgoing = upstream(fields, None)
    hop_by_hop = listed(fields)
    for name in ("x-forwarded-proto", "x-forwarded-host"):
        sent = [v for n, v in fields if n.lower() == name and name not in hop_by_hop]
        if sent:
            assert outgoing.getall(name) == sent


def test_every_forwarded_for_line_is_kept() -> None:
    incoming = CIMultiDict(
        [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "198.51.100.2")]
    )
    outgoing = headers.upstream_request_headers(
        incoming, client_address="127.0.0.1", scheme="http", host=None
    )
    assert outgoing.getall("X-Forwarded-For") == ["203.0.113.7, 198.51.100.2, 127.0.0.1"]


@given(st.text())
def test_sendable_replaces_exactly_the_control_characters_but_tab(value: str) -> None:
    expected = "".join(" " if (ord(c) < 32 and c != "\t") or c == "\x7f" else c for c in value)
    assert headers.sendable(value) == expected
