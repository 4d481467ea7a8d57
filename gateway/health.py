"""Liveness and readiness for the admin port.

Liveness says only that the process answers, never anything about the engine: a probe that
followed the engine would restart a healthy gateway whenever the engine is slow to start.
Readiness asks the engine's unauthenticated `GET /engine-rest/engine`; the same check runs
in the background every few seconds for the `engine_gateway_upstream_ready` gauge, so the
metric is fresh whether or not anything probes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gateway.state import CLIENT, CONFIG, DRAINING, ENGINE_UNREACHABLE, METRICS

READINESS_TIMEOUT_SECONDS = 2.0
WATCH_INTERVAL_SECONDS = 5.0


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[DRAINING].is_set():
        return web.json_response({"status": "draining"}, status=503)
    problem = await _check_engine(request.app)
    if problem is not None:
        return web.json_response(problem, status=503)
    return web.json_response({"status": "ready"})


async def engine_answers(app: web.Application) -> bool:
    return await _check_engine(app) is None


async def _check_engine(app: web.Application) -> dict[str, object] | None:
    """None when the engine answers 200, else what is wrong; sets the readiness gauge."""
    url = app[CONFIG].upstream_origin / "engine-rest" / "engine"
    problem: dict[str, object] | None = None
    try:
        async with app[CLIENT].get(
            url, timeout=aiohttp.ClientTimeout(total=READINESS_TIMEOUT_SECONDS)
        ) as response:
            await response.read()
            if response.status != 200:
                problem = {"status": "engine not ready", "engine_status": response.status}
    except (aiohttp.ClientError, TimeoutError) as error:
        problem = {"status": "engine unreachable", "detail": type(error).__name__}
        if isinstance(error, aiohttp.ClientConnectorError):
            app[ENGINE_UNREACHABLE].set()
    app[METRICS].upstream_ready.set(0 if problem else 1)
    return problem


async def watch_engine(app: web.Application) -> AsyncIterator[None]:
    """Keeps the readiness gauge current for as long as the admin application runs."""

    async def watch() -> None:
        while True:
            with contextlib.suppress(RuntimeError):  # the client closes first at shutdown
                await _check_engine(app)
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    task = asyncio.create_task(watch())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
