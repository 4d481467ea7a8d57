"""Which headers pass the gateway in each direction: pure functions, no I/O.

A proxy forwards end-to-end headers and drops hop-by-hop ones (RFC 9110 §7.6.1): the fixed
set below plus every field named in `Connection`. The gateway re-frames bodies itself, so
`Transfer-Encoding` never passes; `Content-Length` does, because bodies pass unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy

# Lower-case names: membership tests lower-case the field name first.
HOP_BY_HOP = frozenset(
    name.lower()
    for name in (
        "Connection",
        "Keep-Alive",
        "Proxy-Connection",
        "TE",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Trailer",
    )
)

# The gateway answers `Expect: 100-continue` itself (aiohttp does, before the handler
# reads the body); forwarding it would make the engine send a second interim response.
REQUEST_ONLY_DROPPED = frozenset({"expect", "host"})

Headers = CIMultiDict[str] | CIMultiDictProxy[str]


def connection_listed(headers: Headers) -> frozenset[str]:
    """Field names (lower-case) a sender listed in `Connection`, which are hop-by-hop too."""
    return frozenset(
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
        if token.strip()
    )


def end_to_end(headers: Headers, also_dropped: Iterable[str] = ()) -> CIMultiDict[str]:
    """A copy of `headers` without hop-by-hop fields, order and repeats kept."""
    dropped = HOP_BY_HOP | connection_listed(headers) | frozenset(also_dropped)
    return CIMultiDict(
        (name, value) for name, value in headers.items() if name.lower() not in dropped
    )


def _append(existing: str | None, value: str) -> str:
    return value if not existing else f"{existing}, {value}"


def upstream_request_headers(
    incoming: Headers, *, client_address: str | None, scheme: str, host: str | None
) -> CIMultiDict[str]:
    """Headers for the engine: end-to-end ones, `Authorization` unchanged, and X-Forwarded-*.

    `Host` is re-sent from the client's value (not the engine's address) so the links the
    engine builds in its JSON (`links[].href`) point at the gateway, as a client expects.
    X-Forwarded-Proto/-Host set by a reverse proxy in front (nginx) are kept; -For is
    appended to, as every proxy in a chain does.
    """
    outgoing = end_to_end(incoming, REQUEST_ONLY_DROPPED)
    if host:
        outgoing["Host"] = host
    if client_address:
        outgoing["X-Forwarded-For"] = _append(incoming.get("X-Forwarded-For"), client_address)
    outgoing.setdefault("X-Forwarded-Proto", scheme)
    if host:
        outgoing.setdefault("X-Forwarded-Host", host)
    return outgoing


def downstream_response_headers(upstream: Headers) -> CIMultiDict[str]:
    """Headers for the client: the engine's end-to-end headers, `Content-Length` included."""
    return end_to_end(upstream)
