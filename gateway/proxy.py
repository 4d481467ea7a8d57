"""One request's path from the client to the engine and back, top to bottom.

`handle` records the request (transfer.recorded: in flight for the drain, its metrics and
its access line); `_proxy` is its steps: match, the engine's request, body up (upload.py),
headers down, body down (download.py). Bodies are never held: the request
body is piped to the engine as it arrives, the response body is copied chunk by chunk, and
each write waits for the client, so a slow reader slows the engine read (backpressure)
instead of filling memory.

Failure rules (DESIGN.md invariants):
- no answer from the engine → 502/504 in the engine's JSON error shape;
- the engine's body breaks off → the client's connection is aborted, so a short body can
  never look complete (no final chunk, or fewer bytes than Content-Length);
- the client goes away → aiohttp cancels this handler (handler_cancellation), which closes
  the engine connection mid-request, so a half-sent upload is never committed; logged 499;
- the drain timeout runs out (app.py) → the same cancellation, counted as `drain_abort`.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from yarl import URL

from gateway import disposition, download, errors, headers, relay, routes, upload
from gateway.state import CLIENT, CONFIG, CUTTING, DOCUMENTS, ENGINE_UNREACHABLE, METRICS, RELAY
from gateway.transfer import Transfer, Upstream, recorded, refuse

_AIOHTTP_DEFAULTS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


async def handle(request: web.Request) -> web.StreamResponse:
    raw_path = request.rel_url.raw_path
    route = routes.classify(request.method, raw_path, request.app[CONFIG].api_roots)
    counted = request.app[METRICS]
    transfer = Transfer(
        request.method,
        raw_path,
        route,
        counted.bytes_counter("upload", route.label),
        counted.bytes_counter("download", route.label),
    )
    return await recorded(request, transfer, _proxy(request, transfer))


async def _proxy(request: web.Request, transfer: Transfer) -> web.StreamResponse:
    config = request.app[CONFIG]
    downloads = transfer.route.kind is routes.Kind.DOWNLOAD

    # 1. Match: which API root and route (classify); only paths the engine would see as
    #    written; outside every root, what --other-paths says.
    if config.other_paths == "refuse" and not transfer.route.root:
        return refuse(transfer, errors.not_found(transfer.path), "rejected")
    if (unroutable := routes.unroutable(transfer.path)) is not None:
        return refuse(transfer, errors.bad_request(unroutable), "rejected")

    # 2. The engine's request: same method, raw path and query; end-to-end headers.
    path_qs, requested = request.rel_url.raw_path_qs, None
    if downloads:
        asked = download.requested_disposition(request, path_qs)
        if isinstance(asked, errors.GatewayError):
            return refuse(transfer, asked, "rejected")
        requested, path_qs = asked
    outgoing = headers.upstream_request_headers(
        request.headers,
        client_address=request.remote,
        scheme=request.scheme,
        host=request.headers.get("Host"),
    )

    # 3. Body up (upload.py): piped as it arrives, counted against the limit, and by its
    #    kind validated, wrapped and inspected on the way; a large file offloaded into the
    #    document store first, the engine getting its reference (offload.py).
    body = await upload.body_up(request, transfer, outgoing, path_qs)
    if isinstance(body, errors.GatewayError):
        return refuse(transfer, body, transfer.rejection_outcome)
    # The engine takes uploads only as POST; PUT (curl -T) is the gateway's raw upload. A
    # download's HEAD asks with GET when the answer may be a reference (resolve.py).
    method = "POST" if transfer.route.kind is routes.Kind.UPLOAD else request.method
    if downloads and method == "HEAD" and request.app[DOCUMENTS] is not None:
        method = "GET"
    try:
        upstream: Upstream
        if download.relayable(request, transfer.route, config):  # its own connection
            upstream = await relay.ask(request.app[RELAY], method, body.path_qs, outgoing)
        else:
            upstream = await request.app[CLIENT].request(
                method,
                URL(str(config.upstream_origin) + body.path_qs, encoded=True),
                headers=outgoing,
                data=body.data,
                # aiohttp would add its defaults; what the client didn't send, the engine
                # doesn't get.
                skip_auto_headers=_AIOHTTP_DEFAULTS - set(outgoing),
                allow_redirects=False,
            )
    except relay.EngineError as error:
        if error.unreachable:
            request.app[ENGINE_UNREACHABLE].set()
        return refuse(transfer, error.error, error.outcome)
    except aiohttp.ServerTimeoutError as error:
        detail = str(error) or type(error).__name__
        return refuse(transfer, errors.upstream_timeout(detail), "timeout")
    except aiohttp.ClientError as error:
        if request.app[CUTTING].is_set():
            # The drain timeout ran out while the body streamed: aiohttp ends the body, the
            # engine gets an incomplete request and writes nothing.
            return refuse(transfer, errors.shutting_down(), "drain_abort")
        if transfer.rejection is not None:
            # We cut the upload (invalid form, too large, stalled, refused by inspection):
            # the engine got an incomplete body and writes nothing; the client learns why.
            return refuse(transfer, transfer.rejection, transfer.rejection_outcome)
        if isinstance(error, aiohttp.ClientResponseError):
            # The response parser refused the engine's status line or headers.
            return refuse(transfer, errors.upstream_invalid(error.message))
        if isinstance(error, aiohttp.ClientConnectorError):
            request.app[ENGINE_UNREACHABLE].set()
        return refuse(transfer, errors.upstream_unreachable(str(error) or type(error).__name__))

    async with upstream:
        # 4. Headers down: hop-by-hop stripped; a binary download named safely, from the
        #    engine's header if it is exact, else from its metadata; any other
        #    Content-Disposition made safe; a stored upload's Repr-Digest; an engine's
        #    opaque refusal of an upload said clearly.
        if (refusal := await body.engine_refusal(upstream)) is not None:
            return refuse(transfer, refusal, "rejected")
        outgoing_headers = headers.downstream_response_headers(upstream.headers)
        binary = downloads and upstream.status == 200
        if binary:
            outgoing_headers.update(await download.named(request, transfer, upstream, requested))
        elif "Content-Disposition" in outgoing_headers:
            engine_value = outgoing_headers["Content-Disposition"]
            outgoing_headers["Content-Disposition"] = disposition.rebuild(engine_value)
        outgoing_headers.update(body.answer_headers(upstream.status))
        transfer.status = upstream.status

        # 5. Body down (download.py): whole, spliced, chunk by chunk, or watched.
        return await download.body_down(
            request, transfer, upstream, outgoing_headers, binary=binary
        )
