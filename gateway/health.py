"""Liveness and readiness for the admin port.

Liveness says only that the process answers, never anything about the engine: a probe that
followed the engine would restart a healthy gateway whenever the engine is slow to start.
Readiness asks the engine's unauthenticated `GET /engine-rest/engine`.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web

from gateway.state import CLIENT, CONFIG, DRAINING

READINESS_TIMEOUT_SECONDS = 2.0


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[DRAINING].is_set():
        return web.json_response({"status": "draining"}, status=503)
    config = request.app[CONFIG]
    url = config.upstream_origin / "engine-rest" / "engine"
    try:
        async with request.app[CLIENT].get(
            url, timeout=aiohttp.ClientTimeout(total=READINESS_TIMEOUT_SECONDS)
        ) as response:
            await response.read()
            engine_status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        return web.json_response(
            {"status": "engine unreachable", "detail": type(error).__name__}, status=503
        )
    if engine_status != 200:
        return web.json_response(
            {"status": "engine not ready", "engine_status": engine_status}, status=503
        )
    return web.json_response({"status": "ready"})
