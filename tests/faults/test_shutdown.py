"""SIGTERM drains: readiness 503, no new connections, in-flight requests finish, exit 0."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.faults.conftest import Stub
from tests.faults.polling import poll_until
from tests.processes import Gateway, start_gateway, stop

DEADLINE_SECONDS = 15


async def _status(client: aiohttp.ClientSession, url: str) -> int | None:
    try:
        async with client.get(url) as response:
            return response.status
    except aiohttp.ClientConnectionError:
        return None


async def _wait_for_exit(gateway: Gateway) -> int:
    async def exited() -> bool:
        return gateway.running.process.poll() is not None

    await poll_until(exited, timeout_seconds=DEADLINE_SECONDS, what="gateway exit")
    return gateway.running.process.wait()


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
                return await _status(client, gateway.admin_url + "/readyz") == 503

            async def refusing() -> bool:
                return await _status(client, gateway.base_url + "/engine-rest/engine") is None

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
