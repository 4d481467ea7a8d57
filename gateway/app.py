"""The two aiohttp applications (public API, admin), the engine client, and their lifecycle.

A connection that has no request being handled must deliver the complete headers of its
next one within `client_header_timeout_seconds` of being accepted or of its previous
answer, else it is closed: that bounds slow headers (slowloris) and idle keep-alive alike,
which aiohttp alone does not (its keep-alive timer stops at the first byte of a request).

Shutdown on SIGTERM or SIGINT is a drain: readiness turns 503 first, then the public port
stops listening and idle keep-alive connections close, in-flight requests get up to
`drain_timeout_seconds` to finish (each connection closes after its last answer), what is
still running then is cut (counted as `drain_abort`), and the process exits 0. The admin
port stays up until the public drain is over, so probes and scrapes see the drain happen.

With `refuse_while_engine_down`, the public port likewise stops listening (and its idle
keep-alive connections close) once a connection to the engine cannot be opened, and
listens again when the engine answers: a balancer in front sees its connection refused,
which it may retry elsewhere for any method, where a 502 could only be retried for
idempotent ones.

The waiting is done here rather than by aiohttp's runner shutdown, because that marks every
connection closing at once and from then on discards the bytes that arrive on it: an upload
still streaming would be starved instead of finishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client.aiohttp import make_aiohttp_handler

from gateway import documentsapi, health, logstream, metadata, metrics, proxy, relay
from gateway.callers import Callers
from gateway.config import Config
from gateway.documents import Documents, read_keys
from gateway.state import (
    ACCESS_LOG,
    CALLERS,
    CLIENT,
    CONFIG,
    CUTTING,
    DOCUMENTS,
    DRAINING,
    ENGINE_UNREACHABLE,
    IN_FLIGHT,
    METADATA_CLIENT,
    METRICS,
    RELAY,
    InFlight,
)
from gateway.store import Store

log = logging.getLogger("gateway")

# Larger socket reads than aiohttp's 64 KiB default: fewer trips through Python per byte.
READ_BUFFER_BYTES = 256 * 1024
# The engine's Tomcat accepts 8 KiB of request headers by default; so do we.
MAX_HEADER_LINE_BYTES = 8190
# After the drain timeout: how long aiohttp may take to cancel what is still running.
CUT_SECONDS = 0.5
# How often connections are checked against the header timeout; a connection may live
# this much longer than the timeout.
SWEEP_SECONDS = 0.5
# While the port is closed for a missing engine: how often the engine is asked again.
ENGINE_PROBE_SECONDS = 0.5


def engine_client(
    config: Config, *, total_timeout_seconds: float | None = None
) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=config.upstream_connections, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(
        total=total_timeout_seconds,  # None for transfers: 4 GiB may take minutes
        sock_connect=config.connect_timeout_seconds,
        sock_read=config.read_timeout_seconds,
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,
        read_bufsize=READ_BUFFER_BYTES,
        cookie_jar=aiohttp.DummyCookieJar(),  # never mix one caller's cookies into another's
        raise_for_status=False,
    )


def _documents(config: Config, counted: metrics.Metrics) -> Documents | None:
    location = config.document_location
    if location is None:
        return None
    return Documents(
        Store(location, read_timeout_seconds=config.read_timeout_seconds, counted=counted),
        read_keys(config.document_key_file),
        config.offload_above_bytes,
        config.documents_path,
    )


def build_apps(config: Config) -> tuple[web.Application, web.Application]:
    """The public application (proxied /engine-rest) and the admin application."""
    draining, unreachable = asyncio.Event(), asyncio.Event()
    public = web.Application()
    public[IN_FLIGHT] = InFlight(draining)
    public[CUTTING] = asyncio.Event()
    public[ACCESS_LOG] = logstream.access_writer()
    admin = web.Application()
    counted = metrics.create(enabled=config.metrics == "on", shared=config.workers > 1)
    for app in (public, admin):
        app[CONFIG] = config
        app[DRAINING] = draining
        app[ENGINE_UNREACHABLE] = unreachable
        app[METRICS] = counted
    public[DOCUMENTS] = _documents(config, counted)
    public[CALLERS] = Callers(config.upstream_origin, config.webapp_roots)

    async def client_lifecycle(_: web.Application) -> AsyncIterator[None]:
        client = engine_client(config)
        lookups = engine_client(config, total_timeout_seconds=metadata.LOOKUP_TIMEOUT_SECONDS)
        public[CLIENT] = client
        public[METADATA_CLIENT] = lookups
        origin = config.upstream_origin
        public[RELAY] = downloads = relay.Pool(
            origin.host or "",
            origin.port or 80,
            config.connect_timeout_seconds,
            config.read_timeout_seconds,
            limit=config.upstream_connections,
        )
        admin[CLIENT] = client
        yield
        await client.close()
        await lookups.close()
        downloads.close()

    # The public app owns the client; it is cleaned up last (see serve()).
    public.cleanup_ctx.append(client_lifecycle)
    if public[DOCUMENTS] is not None:
        path = config.documents_path
        public.router.add_route("*", path, documentsapi.handle)
        public.router.add_route("*", path + "/{tail:.*}", documentsapi.handle)
    public.router.add_route("*", "/{tail:.*}", proxy.handle)
    admin.cleanup_ctx.append(health.watch_engine)
    admin.router.add_get("/livez", health.livez)
    admin.router.add_get("/readyz", health.readyz)
    if counted.enabled:
        admin.router.add_get("/metrics", make_aiohttp_handler(counted.registry))
    return public, admin


async def close_slow_connections(
    in_flight: InFlight, server: web.Server, timeout_seconds: float
) -> None:
    """Runs until cancelled: closes connections that have sent no complete request headers
    for `timeout_seconds` (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    while True:
        now = loop.time()
        connections = set(server.connections)
        for gone in in_flight.idle_since.keys() - connections:
            del in_flight.idle_since[gone]
        for connection in connections:
            if connection in in_flight.busy:
                continue
            since = in_flight.idle_since.setdefault(connection, now)
            if now - since > timeout_seconds:
                connection.force_close()
        await asyncio.sleep(SWEEP_SECONDS)


def _without_request_bytes(record: logging.LogRecord) -> bool:
    """aiohttp logs a malformed request with its parser's message, which quotes the
    offending bytes: a broken `Authorization` line would be written to the log. Keeps the
    line and the kind of error, drops the quote and the traceback."""
    error = None if record.exc_info is None else record.exc_info[1]
    if isinstance(error, HttpProcessingError):
        record.msg = f"{record.getMessage()}: {type(error).__name__} {error.code}"
        record.args = None
        record.exc_info = None
        record.exc_text = None
    return True


# The public port's protocol log (malformed requests), credentials kept out.
protocol_log = logging.getLogger("gateway.http")
protocol_log.addFilter(_without_request_bytes)


def public_runner(app: web.Application, config: Config) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,  # proxy.py writes one structured line per request instead
        logger=protocol_log,
        keepalive_timeout=config.client_header_timeout_seconds,
        handler_cancellation=True,  # a client that leaves cancels the engine request
        auto_decompress=False,
        read_bufsize=READ_BUFFER_BYTES,
        max_field_size=MAX_HEADER_LINE_BYTES,
        shutdown_timeout=CUT_SECONDS,  # drain() has waited for in-flight requests already
    )


@dataclass(frozen=True)
class Servers:
    public: web.AppRunner
    admin: web.AppRunner
    sweep: asyncio.Task[None]  # close_slow_connections on the public port
    gate: asyncio.Task[None] | None  # refuse_while_engine_down, when on


def _close_idle_connections(runner: web.AppRunner) -> None:
    """Closes the public port's connections that have no request being handled: no new
    request may start on them."""
    in_flight = runner.app[IN_FLIGHT]
    if runner.server is not None:
        for connection in runner.server.connections:
            if connection not in in_flight.busy:
                connection.force_close()


async def refuse_while_engine_down(runner: web.AppRunner) -> None:
    """Runs until cancelled: closes the public port when the engine cannot be connected to,
    and opens it again, on the same address, once the engine answers."""
    public = runner.app
    config, unreachable = public[CONFIG], public[ENGINE_UNREACHABLE]
    while True:
        await unreachable.wait()
        # One refused connection may be the engine restarting its listener: ask once more.
        if not await health.engine_answers(public):
            addresses = list(runner.addresses)
            for site in list(runner.sites):
                await site.stop()
            _close_idle_connections(runner)
            log.warning("engine unreachable: public port closed until it answers")
            # Polling is the point: nothing else tells us the engine is back.
            while not await health.engine_answers(public):  # noqa: ASYNC110
                await asyncio.sleep(ENGINE_PROBE_SECONDS)
            for host, port, *_ in addresses:
                await web.TCPSite(runner, host, port, reuse_port=config.workers > 1).start()
            log.info("engine answers again: public port open")
        unreachable.clear()


async def start(config: Config) -> Servers:
    public, admin = build_apps(config)
    public_server = public_runner(public, config)
    admin_server = web.AppRunner(admin, access_log=None, shutdown_timeout=1.0)
    await public_server.setup()
    await admin_server.setup()
    # Several workers bind the same ports; the kernel spreads connections over them.
    shared = config.workers > 1
    await web.TCPSite(admin_server, config.admin_host, config.admin_port, reuse_port=shared).start()
    await web.TCPSite(public_server, config.host, config.port, reuse_port=shared).start()
    assert public_server.server is not None
    sweep = asyncio.create_task(
        close_slow_connections(
            public[IN_FLIGHT], public_server.server, config.client_header_timeout_seconds
        )
    )
    gate = (
        asyncio.create_task(refuse_while_engine_down(public_server))
        if config.refuse_while_engine_down == "on"
        else None
    )
    servers = Servers(public_server, admin_server, sweep, gate)
    log.info(
        "listening on http://%s:%d (admin http://%s:%d), engine %s",
        config.host,
        config.port,
        config.admin_host,
        config.admin_port,
        config.upstream_origin,
    )
    return servers


async def drain(servers: Servers) -> None:
    public = servers.public.app
    public[DRAINING].set()
    timeout = public[CONFIG].drain_timeout_seconds
    if servers.gate is not None:
        servers.gate.cancel()  # it must not open the port again
        with contextlib.suppress(asyncio.CancelledError):
            await servers.gate
    for site in list(servers.public.sites):
        await site.stop()  # new connections are refused from here on
    _close_idle_connections(servers.public)
    in_flight = public[IN_FLIGHT]
    log.info("draining %d requests for up to %.1f s", len(in_flight.busy), timeout)
    try:
        await asyncio.wait_for(in_flight.quiet.wait(), timeout)
    except TimeoutError:
        log.warning("drain timeout: cutting %d requests still running", len(in_flight.busy))
    public[CUTTING].set()
    servers.sweep.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await servers.sweep
    await servers.public.cleanup()  # cancels what still runs, closes the engine client
    await servers.admin.cleanup()
    log.info("stopped")


async def serve(config: Config) -> None:
    servers = await start(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await drain(servers)
