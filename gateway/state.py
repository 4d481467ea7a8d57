"""Typed keys for what the applications share: the config, the engine clients, drain state."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from gateway.config import Config
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
# Set when a connection to the engine could not be opened (by a request or a readiness
# check): with --refuse-while-engine-down, app.py's gate then closes the public port.
ENGINE_UNREACHABLE = web.AppKey("engine_unreachable", asyncio.Event)
