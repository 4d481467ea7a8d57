"""Typed keys for what the applications share: the config, the engine clients, drain state,
and which connections have a request being handled (InFlight)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from gateway.callers import Callers
from gateway.config import Config
from gateway.documents import Documents
from gateway.logstream import AccessWriter
from gateway.metrics import Metrics
from gateway.relay import Pool

CONFIG = web.AppKey("config", Config)
CLIENT = web.AppKey("client", aiohttp.ClientSession)
# Its own pool: a lookup made while a download holds a connection must not wait for one.
METADATA_CLIENT = web.AppKey("metadata_client", aiohttp.ClientSession)
# The downloads' own connections to the engine (relay.py).
RELAY = web.AppKey("relay", Pool)
DRAINING = web.AppKey("draining", asyncio.Event)
# Set when the drain timeout has run out: a request cancelled from then on was cut by it.
CUTTING = web.AppKey("cutting", asyncio.Event)
METRICS = web.AppKey("metrics", Metrics)
# The document store and its keys (documents.py); None without --document-store.
DOCUMENTS: web.AppKey[Documents | None] = web.AppKey("documents")
# The engine's answers about the documents API's callers (callers.py).
CALLERS = web.AppKey("callers", Callers)
# Set when a connection to the engine could not be opened (by a request or a readiness
# check): with --refuse-while-engine-down, app.py's gate then closes the public port.
ENGINE_UNREACHABLE = web.AppKey("engine_unreachable", asyncio.Event)


@dataclass
class InFlight:
    """Which connections have a request being handled, so a drain can wait for them and
    close the others (app.py); proxy.handle marks each request's start and end."""

    draining: asyncio.Event
    busy: dict[RequestHandler, int] = field(default_factory=dict)
    quiet: asyncio.Event = field(default_factory=asyncio.Event)
    # When each connection was first seen idle, or last answered (event loop time).
    idle_since: dict[RequestHandler, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.quiet.set()

    def started(self, connection: RequestHandler) -> None:
        self.busy[connection] = self.busy.get(connection, 0) + 1
        self.quiet.clear()

    def finished(self, connection: RequestHandler) -> None:
        self.idle_since[connection] = asyncio.get_running_loop().time()
        if self.busy[connection] == 1:
            del self.busy[connection]
        else:
            self.busy[connection] -= 1
        if not self.busy:
            self.quiet.set()
        if self.draining.is_set():
            # No more requests on this connection: it closes once this answer is out.
            connection.close()


IN_FLIGHT = web.AppKey("in_flight", InFlight)
# How this process writes a request's access line (logstream.access_writer).
ACCESS_LOG: web.AppKey[AccessWriter] = web.AppKey("access_log")
