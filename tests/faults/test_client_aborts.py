"""What the engine (here: the stub upstream) sees when a client goes away or streams."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.faults.polling import poll_until
from tests.inprocess import GatewayFactory, Stub

DEADLINE_SECONDS = 10
MIB = 1 << 20


# The bound: the engine's connection is released within a second of the client's.
RELEASE_SECONDS = 1.0


def _logged_client_abort(caplog: pytest.LogCaptureFixture, path: str) -> bool:
    return any(
        "status=499 " in record.getMessage()
        and "outcome=client_abort" in record.getMessage()
        and record.getMessage().endswith(f"path={path}")
        for record in caplog.records
        if record.name == "gateway.access"
    )


async def test_client_leaving_mid_download_cancels_the_engine_request(
    stub: Stub,
    gateway_for: GatewayFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    query = {"size": str(1 << 30), "length": "chunked"}  # chunked: the non-splice path
    async with gateway_for(stub.url) as gateway:
        response = await client.get(gateway.url + "/engine-rest/stream", params=query)
        await response.content.readexactly(65536)
        response.close()  # drops the connection mid-body
        await asyncio.wait_for(stub.state.ended.wait(), RELEASE_SECONDS)
        await poll_until(
            lambda: _logged_client_abort(caplog, "/engine-rest/stream"),
            timeout_seconds=DEADLINE_SECONDS,
            what="the 499 log line",
        )
    assert stub.state.outcome == "cancelled"
    assert stub.state.sent_bytes < 1 << 30


async def test_client_leaving_mid_upload_aborts_the_engine_request(
    stub: Stub, gateway_for: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.access")
    async with gateway_for(stub.url) as gateway:
        host, port = gateway.url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"POST /engine-rest/upload HTTP/1.1\r\n"
            + f"Host: {host}:{port}\r\n".encode()
            + f"Content-Length: {10 * MIB}\r\n\r\n".encode()
            + b"y" * MIB
        )
        await writer.drain()
        await asyncio.wait_for(stub.state.first_bytes_seen.wait(), DEADLINE_SECONDS)
        writer.transport.abort()
        await asyncio.wait_for(stub.state.ended.wait(), RELEASE_SECONDS)
        await poll_until(
            lambda: _logged_client_abort(caplog, "/engine-rest/upload"),
            timeout_seconds=DEADLINE_SECONDS,
            what="the 499 log line",
        )
    assert stub.state.outcome == "cancelled"
    assert stub.state.received_bytes < 10 * MIB


async def test_upload_reaches_the_engine_before_the_client_has_sent_it_all(
    stub: Stub, gateway_for: GatewayFactory, client: aiohttp.ClientSession
) -> None:
    # The client holds back everything after its first chunk until the stub has that
    # chunk; a buffering gateway would deadlock here and hit the deadline.
    first, rest = b"a" * 65536, b"b" * (3 * MIB)

    async def body() -> AsyncIterator[bytes]:
        yield first
        await asyncio.wait_for(stub.state.first_bytes_seen.wait(), DEADLINE_SECONDS)
        yield rest

    async with gateway_for(stub.url) as gateway:
        async with client.post(gateway.url + "/engine-rest/upload", data=body()) as response:
            assert response.status == 200
            received = await response.json()
    assert received == {
        "length": len(first) + len(rest),
        "sha256": hashlib.sha256(first + rest).hexdigest(),
    }
