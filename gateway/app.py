"""The two aiohttp applications (public API, admin), the engine client, and their lifecycle.

Shutdown on SIGTERM or SIGINT is a drain: readiness turns 503 first, then the public port
stops listening, in-flight requests get up to `drain_timeout_seconds` to finish, and the
process exits 0. The admin port stays up until the public drain is over, so probes and
scrapes see the drain happen.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from prometheus_client.aiohttp import make_aiohttp_handler

from gateway import health, metadata, metrics, proxy
from gateway.config import Config
from gateway.state import CLIENT, CONFIG, DRAINING, METADATA_CLIENT, METRICS

log = logging.getLogger("gateway")

# Larger socket reads than aiohttp's 64 KiB default: fewer trips through Python per byte.
READ_BUFFER_BYTES = 256 * 1024
# The engine's Tomcat accepts 8 KiB of request headers by default; so do we.
MAX_HEADER_LINE_BYTES = 8190


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


def build_apps(config: Config) -> tuple[web.Application, web.Application]:
    """The public application (proxied /engine-rest) and the admin application."""
    public = web.Application()
    admin = web.Application()
    draining = asyncio.Event()
    counted = metrics.create(enabled=config.metrics == "on")
    for app in (public, admin):
        app[CONFIG] = config
        app[DRAINING] = draining
        app[METRICS] = counted

    async def client_lifecycle(_: web.Application) -> AsyncIterator[None]:
        client = engine_client(config)
        lookups = engine_client(config, total_timeout_seconds=metadata.LOOKUP_TIMEOUT_SECONDS)
        public[CLIENT] = client
        public[METADATA_CLIENT] = lookups
        admin[CLIENT] = client
        yield
        await client.close()
        await lookups.close()

    # The public app owns the client; it is cleaned up last (see serve()).
    public.cleanup_ctx.append(client_lifecycle)
    public.router.add_route("*", "/{tail:.*}", proxy.handle)
    admin.cleanup_ctx.append(health.watch_engine)
    admin.router.add_get("/livez", health.livez)
    admin.router.add_get("/readyz", health.readyz)
    if counted.enabled:
        admin.router.add_get("/metrics", make_aiohttp_handler(counted.registry))
    return public, admin


def public_runner(app: web.Application, config: Config) -> web.AppRunner:
    return web.AppRunner(
        app,
        access_log=None,  # proxy.py writes one structured line per request instead
        handler_cancellation=True,  # a client that leaves cancels the engine request
        auto_decompress=False,
        read_bufsize=READ_BUFFER_BYTES,
        max_field_size=MAX_HEADER_LINE_BYTES,
        shutdown_timeout=config.drain_timeout_seconds,
    )


@dataclass(frozen=True)
class Servers:
    public: web.AppRunner
    admin: web.AppRunner


async def start(config: Config) -> Servers:
    public, admin = build_apps(config)
    servers = Servers(
        public_runner(public, config), web.AppRunner(admin, access_log=None, shutdown_timeout=1.0)
    )
    await servers.public.setup()
    await servers.admin.setup()
    await web.TCPSite(servers.admin, config.admin_host, config.admin_port).start()
    await web.TCPSite(servers.public, config.host, config.port).start()
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
    servers.public.app[DRAINING].set()
    log.info("draining for up to %.1f s", servers.public.app[CONFIG].drain_timeout_seconds)
    await servers.public.cleanup()  # stops listening, waits for in-flight requests, closes client
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
