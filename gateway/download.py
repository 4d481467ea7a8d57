"""The body coming down: the engine's answer to the client, always with backpressure.

The kinds, chosen per answer:
- whole: a small body of declared length (the JSON calls) is read and goes out with the
  headers in one write: bounded memory, one system call instead of three;
- spliced: a large body of declared length that nothing must see goes socket to socket in
  the kernel (splice.py);
- relayed: a download on the gateway's own connection (relay.py), which nothing watches,
  goes out as the engine framed it: chunked bytes unchanged, a declared body spliced when
  large;
- chunk loop: anything else, read and written CHUNK_BYTES at a time;
- watched: a download that is scanned, or hashed for its Repr-Digest (inspection.Download),
  or a JSON answer whose Bytes values are scanned (jsonfiles.JsonAnswer), goes through the
  chunk loop with its last chunk held until clamd has passed it, or, when it ends within
  SMALL_BODY_BYTES, is answered whole: with its digest, or a clean 422.

A body that breaks off is never presented as complete: the client's connection is aborted.
A binary download is also named here, safely, from the engine's header or its metadata.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Coroutine

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import StreamWriter
from multidict import CIMultiDict

from gateway import (
    digest,
    disposition,
    errors,
    headers,
    inspection,
    jsonfiles,
    jsonvalues,
    metadata,
    relay,
    resolve,
    routes,
    splice,
)
from gateway.config import Config
from gateway.reference import Forged, Reference
from gateway.state import CONFIG, DOCUMENTS, METADATA_CLIENT, METRICS
from gateway.transfer import (
    CHUNK_BYTES,
    SMALL_BODY_BYTES,
    Transfer,
    Upstream,
    abort_client,
    refuse,
    sent,
    without_parameters,
)

# A download may ask how to be presented (?disposition=): that is ours, not the engine's.
DISPOSITION = "disposition"
# The kinds whose bodyless GETs go on the gateway's own connection (relayable): a JSON
# door's GET (a task or variable query) too, its answer watched only with clamd.
_RELAYED = (routes.Kind.DOWNLOAD, routes.Kind.PASSTHROUGH, routes.Kind.JSON)


def requested_disposition(
    request: web.Request, path_qs: str
) -> tuple[str | None, str] | errors.GatewayError:
    """The presentation a download asks for, and the engine's path and query without it."""
    if DISPOSITION not in request.rel_url.query:
        return None, path_qs
    requested = request.rel_url.query[DISPOSITION]
    if requested not in disposition.DISPOSITION_TYPES:
        return errors.bad_request(
            f"Query parameter {DISPOSITION} must be inline or attachment, got {requested!r}."
        )
    return requested, str(without_parameters(request.rel_url, {DISPOSITION}))


def relayable(request: web.Request, route: routes.RouteMatch, config: Config) -> bool:
    """Whether this request goes on the gateway's own connection (relay.py): a bodyless GET
    or HEAD (a binary download, or a call passed through) from an HTTP/1.1 client, to a
    plain-HTTP engine, whose answer nothing scans or hashes (those keep the watched path)."""
    return (
        config.relay == "on"
        and route.kind in _RELAYED
        and request.method in ("GET", "HEAD")
        and request.version >= aiohttp.HttpVersion11
        and not request.body_exists
        and config.upstream_url.scheme == "http"
        and config.clamd_scan_downloads == "off"
        and not _wants_digest(request)
    )


async def named(
    request: web.Request,
    transfer: Transfer,
    upstream: Upstream,
    requested: str | None,
) -> dict[str, str]:
    """A binary download's Content-Disposition (and what goes with it): the engine's name if
    it is exact, else the one in the engine's metadata, made safe either way."""
    config = request.app[CONFIG]
    engine = disposition.parse_engine_disposition(upstream.headers.get("Content-Disposition"))
    found = None
    if engine.quality is not disposition.Quality.EXACT and transfer.route.lookup is not None:
        found = await metadata.lookup(
            request.app[METADATA_CLIENT],
            config.upstream_origin,
            routes.servlet_path(transfer.path),
            transfer.route,
            metadata.credentials(request.headers),
        )
    naming = metadata.choose_filename(
        engine, found, transfer.route.variable_name, name_bytes=config.bytes_filename == "var"
    )
    transfer.filename_source = naming.source
    presented = disposition.disposition_type(
        requested, config.default_disposition, upstream.headers.get("Content-Type")
    )
    return disposition.download_headers(naming.filename, presented)


async def body_down(
    request: web.Request,
    transfer: Transfer,
    upstream: Upstream,
    outgoing_headers: CIMultiDict[str],
    *,
    binary: bool,
) -> web.StreamResponse:
    """The engine's answer to the client; `binary`: a binary download, perhaps watched."""
    config = request.app[CONFIG]
    reason = None if upstream.reason is None else headers.sendable(upstream.reason)
    watched: Watched | None = None
    if binary:
        watched = _watched_download(request, upstream, config)
    elif _scanned_answer(request, transfer, upstream, config):
        route = transfer.route
        counted = request.app[METRICS]
        watched = jsonfiles.JsonAnswer(
            config, counted, route.label, route.places_down, route.variable_name
        )
    try:
        return await _send(
            request, transfer, upstream, outgoing_headers, reason, watched, config, binary=binary
        )
    finally:
        if watched is not None:
            watched.close()
            if transfer.resolved != "document":  # else the document's, set by resolve.py
                transfer.digest = watched.log_digest()
            transfer.scan = watched.scan_result
            transfer.json_files, transfer.json_file_bytes = watched.files, watched.file_bytes


Watched = inspection.Download | jsonfiles.JsonAnswer


def _scanned_answer(
    request: web.Request, transfer: Transfer, upstream: Upstream, config: Config
) -> bool:
    """A JSON answer that can carry Bytes values, with --clamd-scan-downloads."""
    return (
        config.clamd_scan_downloads == "on"
        and bool(transfer.route.places_down)
        and request.method != "HEAD"
        and upstream.status == 200
        and jsonvalues.read_as_json(upstream.headers.get("Content-Type", ""))
    )


async def _send(
    request: web.Request,
    transfer: Transfer,
    upstream: Upstream,
    outgoing_headers: CIMultiDict[str],
    reason: str | None,
    watched: Watched | None,
    config: Config,
    *,
    binary: bool,
) -> web.StreamResponse:
    if watched is not None and (refusal := await watched.start()) is not None:
        return refuse(transfer, refusal, "rejected")

    length = upstream.content_length
    whole: bytes | None = None
    framed: memoryview | None = None  # a relayed chunked body, whole, framed as it came
    ahead = b""  # read ahead, not yet sent
    documents = request.app[DOCUMENTS] if binary else None
    # A download's HEAD went to the engine as GET when it may be a reference (proxy.py).
    if request.method != "HEAD" or (documents is not None and _small(upstream)):
        try:
            if _small(upstream):
                whole = await upstream.read()
            elif isinstance(upstream, relay.Answer) and upstream.framing is relay.Framing.CHUNKED:
                framed = await upstream.read_framed()
            elif length is None and watched is not None and not isinstance(upstream, relay.Answer):
                ahead, ended = await _read_ahead(upstream, config.read_timeout_seconds)
                whole, ahead = (ahead, b"") if ended else (None, ahead)
        except TimeoutError as error:  # aiohttp's ServerTimeoutError is one too
            detail = str(error) or type(error).__name__
            return refuse(transfer, errors.upstream_timeout(detail), "timeout")
        except (aiohttp.ClientError, relay.Ended) as error:
            detail = str(error) or type(error).__name__
            return refuse(transfer, errors.upstream_unreachable(detail))
    if whole is not None and documents is not None:
        found = documents.verified(whole)
        if isinstance(found, Reference):
            assert watched is None or isinstance(watched, inspection.Download)
            return await resolve.answer(
                request, transfer, found, documents, outgoing_headers, watched
            )
        if isinstance(found, Forged):
            transfer.resolved = "forged"  # served as the small file it is, never resolved
    if whole is not None:
        if watched is not None:
            refusal = await watched.content(whole) or await watched.finish()
            if refusal is not None:
                return refuse(transfer, refusal, "rejected")
            computed = watched.digests()  # none with --digests off
            if computed and _wants_digest(request) and "Content-Encoding" not in upstream.headers:
                outgoing_headers["Repr-Digest"] = digest.format_digests(computed)
        transfer.sent_down(len(whole))
        transfer.first_byte = time.monotonic()
        return web.Response(
            status=upstream.status, reason=reason, headers=outgoing_headers, body=whole
        )

    response = web.StreamResponse(status=upstream.status, reason=reason)
    response.headers.extend(outgoing_headers)
    writer = await response.prepare(request)
    transfer.first_byte = time.monotonic()
    if request.method == "HEAD":
        return response
    if framed is not None:
        # aiohttp frames nothing: the engine's chunks go out as they came, with the head.
        assert isinstance(writer, StreamWriter)
        writer.chunked = False
        await response.write(bytes(framed))  # the transport may keep it; the buffer is reused
        transfer.sent_down(len(framed))
        await response.write_eof()
        return response
    if isinstance(upstream, relay.Answer):
        return await _relayed(request, response, writer, transfer, upstream, config)
    if watched is None and splice.eligible(request, upstream, config.splice == "on"):
        return await _spliced(request, response, transfer, upstream, config)
    return await _chunk_loop(request, response, transfer, upstream, ahead, watched, config)


def _small(upstream: Upstream) -> bool:
    """A body read whole: declared and small, or none whatever the head says."""
    length = upstream.content_length
    if isinstance(upstream, relay.Answer) and upstream.framing is relay.Framing.NONE:
        return True
    return length is not None and length <= SMALL_BODY_BYTES


async def _relayed(
    request: web.Request,
    response: web.StreamResponse,
    writer: AbstractStreamWriter | None,
    transfer: Transfer,
    answer: relay.Answer,
    config: Config,
) -> web.StreamResponse:
    """The rest of a relayed answer (relay.py): chunked bytes as the engine framed them, a
    declared body spliced or relayed, a body that runs to the engine's close framed here."""
    if answer.framing is relay.Framing.EOF:
        moving = _framed_here(response, transfer, answer)
    elif splice.large_enough(request, answer.content_length, config.splice == "on"):
        moving = _spliced_from(request, response, transfer, answer, config)
    else:
        if answer.framing is relay.Framing.CHUNKED:
            # aiohttp framed nothing yet and frames nothing now: the engine's chunk sizes
            # and last chunk go out as they came (a public StreamWriter field).
            assert isinstance(writer, StreamWriter)
            writer.chunked = False
        moving = _as_framed(request, transfer, answer)
    return await _moved(request, response, transfer, moving)


async def _framed_here(
    response: web.StreamResponse, transfer: Transfer, answer: relay.Answer
) -> None:
    while chunk := await answer.read_some():
        await response.write(chunk)
        transfer.sent_down(len(chunk))


async def _spliced_from(
    request: web.Request,
    response: web.StreamResponse,
    transfer: Transfer,
    answer: relay.Answer,
    config: Config,
) -> None:
    buffered, source, remaining = answer.splice_source()
    await splice.relay_from(
        request,
        response,
        buffered,
        source,
        remaining,
        transfer.sent_down,
        config.read_timeout_seconds,
    )
    answer.spliced()


async def _as_framed(request: web.Request, transfer: Transfer, answer: relay.Answer) -> None:
    await splice.flushed(request)
    client = splice.client_fd(request)
    if client is None:
        raise ConnectionResetError("the client's connection is gone")
    with relay.duplicate(client) as sink:
        await answer.relay(sink, transfer.sent_down)


async def _moved(
    request: web.Request,
    response: web.StreamResponse,
    transfer: Transfer,
    moving: Coroutine[None, None, None],
) -> web.StreamResponse:
    """The body moved by `moving` (spliced or relayed), and its end: written, or, when the
    engine's side broke or fell silent, the client's connection cut."""
    try:
        await moving
    except TimeoutError:
        abort_client(request, transfer, "timeout")
        return response
    except ConnectionResetError:
        raise  # the client left: handled in proxy.handle
    except (relay.Ended, splice.UpstreamEnded, aiohttp.ClientError, OSError):
        abort_client(request, transfer, "upstream_abort")
        return response
    await response.write_eof()
    return response


async def _spliced(
    request: web.Request,
    response: web.StreamResponse,
    transfer: Transfer,
    upstream: aiohttp.ClientResponse,
    config: Config,
) -> web.StreamResponse:
    moving = splice.relay(
        request, response, upstream, transfer.sent_down, config.read_timeout_seconds
    )
    return await _moved(request, response, transfer, moving)


async def _chunk_loop(
    request: web.Request,
    response: web.StreamResponse,
    transfer: Transfer,
    upstream: aiohttp.ClientResponse,
    ahead: bytes,
    watched: Watched | None,
    config: Config,
) -> web.StreamResponse:
    try:
        chunks = _engine_chunks(upstream, ahead, config.read_timeout_seconds)
        if not await sent(request, response, transfer, chunks, watched):
            return response
    except TimeoutError:  # aiohttp's ServerTimeoutError is one too
        abort_client(request, transfer, "timeout")
        return response
    except aiohttp.ClientError:
        abort_client(request, transfer, "upstream_abort")
        return response
    await response.write_eof()
    return response


async def _engine_chunks(
    upstream: aiohttp.ClientResponse, ahead: bytes, read_timeout_seconds: float
) -> AsyncIterator[bytes]:
    if ahead:
        yield ahead
    while True:
        # aiohttp's own read timeout (sock_read) is lost, and the read waits for ever, when
        # its C parser fails on the engine's chunk framing mid-body (3.14.5,
        # tests/faults/test_lying_upstream.py): this deadline holds anyway.
        async with asyncio.timeout(read_timeout_seconds):
            chunk = await upstream.content.read(CHUNK_BYTES)
        if not chunk:
            return
        yield chunk


def _watched_download(
    request: web.Request, upstream: Upstream, config: Config
) -> inspection.Download | None:
    """A download is watched when it is scanned, or when it may be read whole (declared
    small, or chunked and its digest asked for) and so hashed for nearly nothing. A large
    one is not hashed: it keeps os.splice, and its digest could not be sent anyway."""
    scanned = config.clamd_scan_downloads == "on" and request.method != "HEAD"
    length = upstream.content_length
    whole = length <= SMALL_BODY_BYTES if length is not None else _wants_digest(request)
    if not scanned and not (whole and config.digests == "on"):
        return None
    wanted = frozenset[str]()
    if _wants_digest(request):
        with contextlib.suppress(digest.DigestFieldError):  # a bad preference asks for nothing
            wanted = digest.parse_wanted("Want-Repr-Digest", request.headers["Want-Repr-Digest"])
    return inspection.Download(config, request.app[METRICS], scan=scanned, wanted=wanted)


async def _read_ahead(
    upstream: aiohttp.ClientResponse, read_timeout_seconds: float
) -> tuple[bytes, bool]:
    """Up to SMALL_BODY_BYTES + 1 of the body, and whether that was all of it."""
    ahead = b""
    while len(ahead) <= SMALL_BODY_BYTES:
        async with asyncio.timeout(read_timeout_seconds):
            chunk = await upstream.content.read(SMALL_BODY_BYTES + 1 - len(ahead))
        if not chunk:
            return ahead, True
        ahead += chunk
    return ahead, False


def _wants_digest(request: web.Request) -> bool:
    return "Want-Repr-Digest" in request.headers
