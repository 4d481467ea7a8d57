"""Hostile clients against the gateway, in front of the STUB UPSTREAM (not an engine): slow
headers and bodies, idle connections by the thousand, malformed and smuggling-shaped
requests, targets that try to leave /engine-rest or change the upstream, credentials that
must stay out of logs and metrics."""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.faults.polling import poll_until
from tests.inprocess import GatewayFactory, InProcessGateway, Stub

DEADLINE_SECONDS = 15
HEADER_TIMEOUT_SECONDS = 1.0
SECRET = "c2VjcmV0LXVzZXI6c2VjcmV0LXBhc3N3b3Jk"  # base64 of secret-user:secret-password


@pytest.fixture
async def gateway(stub: Stub, gateway_for: GatewayFactory) -> AsyncIterator[InProcessGateway]:
    async with gateway_for(
        stub.url,
        client_header_timeout_seconds=HEADER_TIMEOUT_SECONDS,
        client_body_timeout_seconds=1.0,
    ) as started:
        yield started


def _port(gateway: InProcessGateway) -> int:
    return int(gateway.url.rsplit(":", 1)[1])


async def _closed_by_peer(reader: asyncio.StreamReader) -> bool:
    """True once the gateway has closed the connection (EOF or reset)."""
    try:
        return await asyncio.wait_for(reader.read(65536), 0.05) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


async def _exchange(gateway: InProcessGateway, request: bytes) -> bytes:
    """Sends raw bytes; what the gateway answers until it closes or goes quiet."""
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(gateway))
    try:
        writer.write(request)
        await writer.drain()
        answer = b""
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), DEADLINE_SECONDS)
            except ConnectionError:
                break
            if not chunk:
                break
            answer += chunk
            if b"\r\n\r\n" in answer and _complete(answer):
                break
        return answer
    finally:
        writer.close()


def _complete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


async def test_slow_headers_are_cut_at_the_header_timeout(
    gateway: InProcessGateway, stub: Stub
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(gateway))
    writer.write(b"GET /engine-rest/headers HTTP/1.1\r\nHost: x\r\n")
    started = asyncio.get_running_loop().time()
    closed = False
    # One header byte every 0.1 s, for ever: each byte would restart aiohttp's own timer.
    while not closed and asyncio.get_running_loop().time() - started < DEADLINE_SECONDS:
        try:
            writer.write(b"X")
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        closed = await _closed_by_peer(reader)
        await asyncio.sleep(0.1)  # the slow client's pace, not a synchronisation
    writer.close()
    assert closed
    assert stub.state.requests == 0


async def test_idle_keep_alive_connections_are_closed_after_the_header_timeout(
    gateway: InProcessGateway,
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", _port(gateway))
    writer.write(b"GET /engine-rest/engine HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")

    async def closed() -> bool:
        return await _closed_by_peer(reader)

    await poll_until(closed, timeout_seconds=DEADLINE_SECONDS, what="idle connection closed")
    writer.close()


async def test_a_download_longer_than_the_header_timeout_is_not_cut(
    gateway: InProcessGateway, stub: Stub
) -> None:
    idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", _port(gateway))
    query = {"size": str(1 << 20), "gate": "1"}
    async with (
        aiohttp.ClientSession() as client,
        client.get(gateway.url + "/engine-rest/stream", params=query) as response,
    ):
        await asyncio.wait_for(response.content.readexactly(65536), DEADLINE_SECONDS)

        async def idle_one_closed() -> bool:
            return await _closed_by_peer(idle_reader)

        # The idle connection, opened before, is past the timeout once it is closed.
        await poll_until(idle_one_closed, timeout_seconds=DEADLINE_SECONDS, what="sweep")
        stub.state.release.set()
        rest = await asyncio.wait_for(response.read(), DEADLINE_SECONDS)
    idle_writer.close()
    assert 65536 + len(rest) == 1 << 20


async def test_a_stalled_upload_gets_408_and_the_engine_request_is_aborted(
    gateway: InProcessGateway, stub: Stub
) -> None:
    head = (
        b"POST /engine-rest/upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
        b"\r\nContent-Length: 1048576\r\n\r\n"
    )
    answer = await _exchange(gateway, head + b"x" * 65536)
    status_line, _, _ = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout"
    assert b'"type":"RequestTimeoutException"' in answer
    await asyncio.wait_for(stub.state.ended.wait(), DEADLINE_SECONDS)
    assert stub.state.outcome == "cancelled"


async def test_a_thousand_idle_connections_neither_block_requests_nor_stay_open(
    gateway: InProcessGateway,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    idle = [await asyncio.open_connection("127.0.0.1", _port(gateway)) for _ in range(1000)]
    try:
        async with aiohttp.ClientSession() as client:
            async with client.get(gateway.url + "/engine-rest/engine") as response:
                assert response.status == 200

        async def all_closed() -> bool:
            results = await asyncio.gather(*(_closed_by_peer(reader) for reader, _ in idle))
            return all(results)

        await poll_until(all_closed, timeout_seconds=DEADLINE_SECONDS, what="idle closed")
    finally:
        for _, writer in idle:
            writer.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


MALFORMED = {
    "Content-Length and Transfer-Encoding": b"POST /engine-rest/headers HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "two Content-Lengths": b"POST /engine-rest/headers HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef",
    "Transfer-Encoding not ending in chunked": b"POST /engine-rest/headers HTTP/1.1\r\n"
    b"Host: x\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
    "space before the colon": b"POST /engine-rest/headers HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length : 5\r\n\r\nabcde",
    "obsolete line folding": b"GET /engine-rest/headers HTTP/1.1\r\nHost: x\r\n"
    b"X-A: a\r\n b\r\n\r\n",
    "bare LF": b"GET /engine-rest/headers HTTP/1.1\nHost: x\n\n",
    "CR inside a header value": b"GET /engine-rest/headers HTTP/1.1\r\nHost: x\r\n"
    b"X-A: a\rb\r\n\r\n",
    "NUL in the path": b"GET /engine-rest/a\x00b HTTP/1.1\r\nHost: x\r\n\r\n",
    "negative Content-Length": b"POST /engine-rest/headers HTTP/1.1\r\nHost: x\r\n"
    b"Content-Length: -1\r\n\r\n",
    "request line over 8 KiB": b"GET /engine-rest/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header over 8 KiB": b"GET /engine-rest/headers HTTP/1.1\r\nHost: x\r\nX-A: "
    + b"a" * 9000
    + b"\r\n\r\n",
    "200 headers": b"GET /engine-rest/headers HTTP/1.1\r\nHost: x\r\n"
    + b"".join(b"X-%d: a\r\n" % number for number in range(200))
    + b"\r\n",
}


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_and_smuggling_shaped_requests_are_refused_before_the_engine(
    gateway: InProcessGateway, stub: Stub, request_bytes: bytes
) -> None:
    answer = await _exchange(gateway, request_bytes)
    assert answer.startswith((b"HTTP/1.0 400", b"HTTP/1.1 400")), answer[:200]
    assert stub.state.requests == 0


LEAVING_THE_API = [
    "/engine-rest/../admin",
    "/engine-rest/%2e%2e/admin",
    "/engine-rest/%2E%2E/admin",
    "/engine-rest/..%2Fadmin",
    "/engine-rest/..%2fadmin",
    "/engine-rest/..%5cadmin",
    "/engine-rest\\..\\admin",
    "/engine-rest/./../admin",
    "/engine-rest/%zz",
    "/engine-rest/a%00b",
    "/engine-rest/a%0d%0aX-Injected:%20yes",
    "*",
]


@pytest.mark.parametrize("target", LEAVING_THE_API)
async def test_targets_that_leave_the_api_or_are_malformed_never_reach_the_engine(
    gateway: InProcessGateway, stub: Stub, target: str
) -> None:
    method = b"OPTIONS" if target == "*" else b"GET"
    answer = await _exchange(
        gateway, method + b" " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert answer[9:12] in (b"400", b"404"), answer[:200]
    assert stub.state.paths == []


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET http://evil.example/engine-rest/headers HTTP/1.1\r\nHost: evil.example\r\n\r\n",
        b"GET http://127.0.0.1:1/engine-rest/headers HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n",
        b"GET /engine-rest/headers HTTP/1.1\r\nHost: evil.example\r\n"
        b"X-Forwarded-Host: evil2.example\r\nForwarded: host=evil3.example\r\n\r\n",
        b"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n",
    ],
    ids=[
        "absolute-form",
        "absolute-form to another port",
        "Host and forwarding headers",
        "CONNECT",
    ],
)
async def test_the_upstream_is_fixed_by_configuration_whatever_the_request_says(
    gateway: InProcessGateway, stub: Stub, request_bytes: bytes
) -> None:
    """The only reachable host is the configured stub: if the request went anywhere else,
    the stub would not have seen it and the answer would not be the stub's."""
    answer = await _exchange(gateway, request_bytes)
    if request_bytes.startswith(b"CONNECT"):
        assert answer[9:12] in (b"400", b"404", b"405"), answer[:200]
        assert stub.state.requests == 0
    else:
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert stub.state.paths == ["/engine-rest/headers"]


async def test_credentials_never_appear_in_logs_or_metrics(
    gateway: InProcessGateway, stub: Stub, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    authorization = f"Basic {SECRET}"
    async with aiohttp.ClientSession() as client:
        async with client.get(
            gateway.url + "/engine-rest/headers", headers={"Authorization": authorization}
        ) as response:
            seen_by_the_stub = dict((await response.json())["headers"])
        download = "/engine-rest/process-instance/i/variables/v/data?size=10"
        async with client.get(
            gateway.url + download, headers={"Authorization": authorization}
        ) as response:
            await response.read()
        async with client.get(gateway.admin_url + "/metrics") as response:
            metrics_text = await response.text()
    # A malformed Authorization line: aiohttp's parser quotes the offending bytes.
    await _exchange(
        gateway,
        b"GET /engine-rest/headers HTTP/1.1\r\nHost: x\r\nAuthorization : "
        + authorization.encode()
        + b"\r\n\r\n",
    )
    assert seen_by_the_stub["Authorization"] == authorization  # it was passed on
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    assert SECRET not in logged
    assert "Error handling request" in caplog.text  # the malformed request was logged
    assert SECRET not in metrics_text
