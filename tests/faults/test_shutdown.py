"""SIGTERM drains: readiness 503, no new connections, in-flight requests finish, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from gateway import app as gateway_app
from tests import inprocess
from tests.faults.polling import exit_status, http_status, poll_until
from tests.inprocess import Stub
from tests.processes import Gateway, start_gateway, stop

DEADLINE_SECONDS = 15


async def _wait_for_exit(gateway: Gateway) -> int:
    return await exit_status(gateway.running.process, timeout_seconds=DEADLINE_SECONDS)


async def test_sigterm_lets_in_flight_downloads_finish_and_exits_0(
    stub: Stub, tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    gateway = start_gateway(tmp_path, stub.url, "--drain-timeout-seconds", "20", wait_for="/livez")
    try:
        query = {"size": str(1 << 20), "gate": "1"}
        async with client.get(gateway.base_url + "/engine-rest/stream", params=query) as response:
            await asyncio.wait_for(response.content.readexactly(65536), DEADLINE_SECONDS)
            os.kill(gateway.running.pid, signal.SIGTERM)

            async def not_ready() -> bool:
                return await http_status(client, gateway.admin_url + "/readyz") == 503

            async def refusing() -> bool:
                return await http_status(client, gateway.base_url + "/engine-rest/engine") is None

            await poll_until(not_ready, timeout_seconds=DEADLINE_SECONDS, what="readyz 503")
            await poll_until(refusing, timeout_seconds=DEADLINE_SECONDS, what="listener closed")
            stub.state.release.set()
            rest = await asyncio.wait_for(response.read(), DEADLINE_SECONDS)
        assert 65536 + len(rest) == 1 << 20
        assert await _wait_for_exit(gateway) == 0
    finally:
        stop(gateway.running.process)


async def test_requests_still_running_at_the_drain_timeout_are_cut_not_completed(
    stub: Stub, tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    gateway = start_gateway(tmp_path, stub.url, "--drain-timeout-seconds", "1", wait_for="/livez")
    try:
        query = {"size": str(1 << 20), "gate": "1"}
        async with client.get(gateway.base_url + "/engine-rest/stream", params=query) as response:
            await asyncio.wait_for(response.content.readexactly(65536), DEADLINE_SECONDS)
            os.kill(gateway.running.pid, signal.SIGTERM)
            with pytest.raises(aiohttp.ClientPayloadError):
                await asyncio.wait_for(response.read(), DEADLINE_SECONDS)
        assert await _wait_for_exit(gateway) == 0
    finally:
        stop(gateway.running.process)


async def test_a_drain_closes_idle_keep_alive_connections_and_waits_for_busy_ones(
    stub: Stub,
) -> None:
    gateway = await inprocess.start_gateway(stub.url, drain_timeout_seconds=DEADLINE_SECONDS)
    # One connection each, so the idle one is a kept-alive connection, not a new one.
    idle = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    busy = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    try:
        async with idle.get(gateway.url + "/engine-rest/headers") as response:
            assert response.status == 200
            await response.read()
        query = {"size": str(1 << 20), "gate": "1"}
        async with busy.get(gateway.url + "/engine-rest/stream", params=query) as download:
            await asyncio.wait_for(download.content.readexactly(65536), DEADLINE_SECONDS)
            drained = asyncio.create_task(gateway_app.drain(gateway.servers))

            async def idle_closed() -> bool:
                return await http_status(idle, gateway.url + "/engine-rest/headers") is None

            await poll_until(idle_closed, timeout_seconds=DEADLINE_SECONDS, what="idle closed")
            assert not drained.done()
            stub.state.release.set()
            rest = await asyncio.wait_for(download.read(), DEADLINE_SECONDS)
        assert 65536 + len(rest) == 1 << 20
        await asyncio.wait_for(drained, DEADLINE_SECONDS)
    finally:
        await idle.close()
        await busy.close()


async def test_a_drain_timeout_of_0_cuts_at_once(stub: Stub) -> None:
    gateway = await inprocess.start_gateway(stub.url, drain_timeout_seconds=0)
    async with aiohttp.ClientSession() as client:
        query = {"size": str(1 << 20), "gate": "1"}
        async with client.get(gateway.url + "/engine-rest/stream", params=query) as download:
            await asyncio.wait_for(download.content.readexactly(65536), DEADLINE_SECONDS)
            await asyncio.wait_for(gateway_app.drain(gateway.servers), DEADLINE_SECONDS)
            with pytest.raises(aiohttp.ClientPayloadError):
                await download.read()
