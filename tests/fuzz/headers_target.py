"""Fuzzing `gateway.headers`: whatever header block a client or the engine sends, no
hop-by-hop field passes, every end-to-end field passes unchanged and in order, and the
X-Forwarded-* fields say what the chain of proxies saw.

Input: a header block as it arrives (`Name: value` lines), then two control bytes at the
end: the client's address (none, IPv4, IPv6) and the scheme.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable

import atheris
from multidict import CIMultiDict

with atheris.instrument_imports(include=["gateway"]):
    from gateway import headers

# RFC 9110 §7.6.1 and RFC 9112 §7, written out again rather than imported, so a name lost
# from the gateway's own set is caught.
RFC_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "proxy-authorization",
        "proxy-authenticate",
        "trailer",
    }
)
# The gateway writes these itself; a Connection token naming one cannot remove its own value.
SET_BY_GATEWAY = frozenset({"host", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"})
CLIENT_ADDRESSES = (None, "127.0.0.1", "2001:db8::7")
SCHEMES = ("http", "https")
# RFC 9110 §5.5: no control character but HTAB in a field value (aiohttp refuses to send one).
CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")

Fields = list[tuple[str, str]]


def header_fields(block: bytes) -> Fields:
    """Name-value pairs as aiohttp hands them over: UTF-8 with surrogate escapes for other
    bytes, names and values trimmed."""
    fields = []
    for line in block.decode("utf-8", "surrogateescape").split("\n"):
        name, colon, value = line.removesuffix("\r").partition(":")
        if colon and name.strip():
            fields.append((name.strip(), value.strip(" \t")))
    return fields


def ascii_lower(name: str) -> str:
    """How the next hop (a Java servlet container) compares field names: ASCII only."""
    return "".join(char.lower() if char.isascii() else char for char in name)


def listed_in_connection(fields: Fields) -> frozenset[str]:
    """The tokens of every Connection field as the next hop reads them: comma-separated,
    optional whitespace (SP, HTAB) trimmed, ASCII case-insensitive."""
    return frozenset(
        ascii_lower(token.strip(" \t"))
        for name, value in fields
        if ascii_lower(name) == "connection"
        for token in value.split(",")
    )


def maybe_listed(fields: Fields) -> frozenset[str]:
    """Every name a looser reading of Connection could drop (any whitespace, Unicode case):
    a field outside these must pass."""
    return frozenset(
        token.strip().lower()
        for name, value in fields
        if name.lower() == "connection"
        for token in value.split(",")
    )


def is_subsequence(short: Iterable[tuple[str, str]], long: Iterable[tuple[str, str]]) -> bool:
    remaining = iter(long)
    return all(field in remaining for field in short)


def check_end_to_end(
    fields: Fields,
    result: Fields,
    also_dropped: frozenset[str],
    sent: Callable[[str], str] = str,
) -> None:
    """`result` is `fields` without hop-by-hop ones, order and repeats kept, each value as
    `sent` makes it."""
    hop_by_hop = RFC_HOP_BY_HOP | listed_in_connection(fields) | also_dropped
    assert not [name for name, _ in result if ascii_lower(name) in hop_by_hop], result
    assert is_subsequence(result, [(name, sent(value)) for name, value in fields]), (result, fields)
    loose = RFC_HOP_BY_HOP | maybe_listed(fields) | also_dropped
    must_pass = [(name, sent(value)) for name, value in fields if name.lower() not in loose]
    assert is_subsequence(must_pass, result), (must_pass, result)


def sendable(value: str) -> str:
    return CONTROL.sub(" ", value)


def check_upstream(fields: Fields, client_address: str | None, scheme: str) -> None:
    host = next((value for name, value in fields if name.lower() == "host"), None)
    outgoing = headers.upstream_request_headers(
        CIMultiDict(fields), client_address=client_address, scheme=scheme, host=host
    )
    result = list(outgoing.items())
    # What the client sent, forwarded: everything but the fields the gateway writes.
    forwarded = [(name, value) for name, value in result if name.lower() not in SET_BY_GATEWAY]
    sent = [(name, value) for name, value in fields if name.lower() not in SET_BY_GATEWAY]
    check_end_to_end(sent, forwarded, frozenset({"expect"}))

    # Of the fields the gateway writes, what the client sent and did not make hop-by-hop
    # (read as loosely as the gateway reads Connection: that reading is checked above).
    listed = maybe_listed(fields)
    kept = {
        name: [v for n, v in fields if n.lower() == name]
        for name in SET_BY_GATEWAY
        if name not in listed
    }
    assert outgoing.getall("Host", []) == ([host] if host else [])
    earlier = [v.strip() for v in kept.get("x-forwarded-for", []) if v.strip()]
    if client_address:
        forwarded_for = outgoing.getall("X-Forwarded-For")
        assert len(forwarded_for) == 1, result
        # Every address the chain recorded, in order, then this client (RFC 9110 §5.3: the
        # field lines of one name are one list).
        if "x-forwarded-for" not in listed:
            assert forwarded_for == [", ".join([*earlier, client_address])], (fields, result)
        else:
            assert forwarded_for[0].endswith(client_address), result
    else:
        assert outgoing.getall("X-Forwarded-For", []) == kept.get("x-forwarded-for", [])
    assert outgoing.getall("X-Forwarded-Proto") == (kept.get("x-forwarded-proto") or [scheme])
    expected_host = kept.get("x-forwarded-host") or ([host] if host else [])
    assert outgoing.getall("X-Forwarded-Host", []) == expected_host


def TestOneInput(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    client_address = CLIENT_ADDRESSES[provider.ConsumeIntInRange(0, len(CLIENT_ADDRESSES) - 1)]
    scheme = SCHEMES[provider.ConsumeIntInRange(0, len(SCHEMES) - 1)]
    fields = header_fields(provider.ConsumeBytes(provider.remaining_bytes()))

    check_end_to_end(fields, list(headers.end_to_end(CIMultiDict(fields)).items()), frozenset())
    check_upstream(fields, client_address, scheme)
    # The same block as the engine's response: the client gets its end-to-end fields, each
    # value one that aiohttp can send.
    downstream = list(headers.downstream_response_headers(CIMultiDict(fields)).items())
    check_end_to_end(fields, downstream, frozenset(), sendable)
    assert not [value for _, value in downstream if CONTROL.search(value)], downstream


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
