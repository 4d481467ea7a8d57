"""Which headers pass the gateway in each direction: pure functions, no I/O.

A proxy forwards end-to-end headers and drops hop-by-hop ones (RFC 9110 §7.6.1): the fixed
set below plus every field named in `Connection`. The gateway re-frames bodies itself, so
`Transfer-Encoding` never passes; `Content-Length` does, because bodies pass unchanged.
"""

from __future__ import annotations

import re

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

_REQUEST_DROPPED = HOP_BY_HOP | REQUEST_ONLY_DROPPED

Headers = CIMultiDict[str] | CIMultiDictProxy[str]


def connection_listed(headers: Headers) -> frozenset[str]:
    """Field names (lower-case) a sender listed in `Connection`, which are hop-by-hop too."""
    return frozenset(
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
        if token.strip()
    )


def end_to_end(headers: Headers, fixed: frozenset[str] = HOP_BY_HOP) -> CIMultiDict[str]:
    """A copy of `headers` without hop-by-hop fields (`fixed`, lower-case, and those listed
    in `Connection`), order and repeats kept."""
    dropped = _dropped(headers, fixed)
    return CIMultiDict(
        [(name, value) for name, value in headers.items() if name.lower() not in dropped]
    )


def _dropped(headers: Headers, fixed: frozenset[str]) -> frozenset[str]:
    """`fixed` and the fields `headers` lists in `Connection`, lower-case."""
    return fixed | connection_listed(headers) if "Connection" in headers else fixed


def upstream_request_headers(
    incoming: Headers, *, client_address: str | None, scheme: str, host: str | None
) -> CIMultiDict[str]:
    """Headers for the engine: end-to-end ones, `Authorization` unchanged, and X-Forwarded-*.

    `Host` is re-sent from the client's value (not the engine's address) so the links the
    engine builds in its JSON (`links[].href`) point at the gateway, as a client expects.
    X-Forwarded-Proto/-Host set by a reverse proxy in front (nginx) are kept; -For is
    appended to, as every proxy in a chain does.
    """
    outgoing = end_to_end(incoming, _REQUEST_DROPPED)
    if host:
        outgoing["Host"] = host
    if client_address:
        # Every line a proxy in front sent, as one list (RFC 9110 §5.3), then this client;
        # a line the client named in `Connection` was dropped above, as hop-by-hop.
        earlier = [v.strip() for v in outgoing.getall("X-Forwarded-For", ()) if v.strip()]
        outgoing["X-Forwarded-For"] = ", ".join([*earlier, client_address])
    outgoing.setdefault("X-Forwarded-Proto", scheme)
    if host:
        outgoing.setdefault("X-Forwarded-Host", host)
    return outgoing


# Control characters but HTAB: RFC 9110 §5.5 forbids them in a field value, and aiohttp
# refuses to write them, failing the whole response. Its lenient response parser lets DEL
# through from the engine, and a value it cannot send is better sent with a space.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def sendable(value: str) -> str:
    """`value` with each control character aiohttp cannot send replaced by a space."""
    # A printable string holds no control character: most values skip the expression.
    return value if value.isprintable() else _CONTROL.sub(" ", value)


def downstream_response_headers(upstream: Headers) -> CIMultiDict[str]:
    """Headers for the client: the engine's end-to-end headers, `Content-Length` included,
    each value sendable."""
    dropped = _dropped(upstream, HOP_BY_HOP)
    return CIMultiDict(
        [(name, sendable(value)) for name, value in upstream.items() if name.lower() not in dropped]
    )
