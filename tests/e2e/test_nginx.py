"""Debian's nginx, running the shipped deploy/nginx/engine-gateway.conf, in front of the
gateway: large bodies pass byte-identical to and from the real engine, and with the STUB
UPSTREAM (tests/faults/stub_upstream.py, not an engine) holding or pacing a body, nginx is
seen passing bytes on as they come, never spooling them."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from tests import processes
from tests.faults.polling import poll_until
from tests.inprocess import GatewayFactory, Stub
from tests.integration import engine_api, webapps

MIB = 1 << 20
DEADLINE_SECONDS = 30


@pytest.fixture
def nginx_to_engine(
    gateway_process: processes.Gateway, tmp_path: Path
) -> Iterator[processes.Nginx]:
    with processes.nginx(tmp_path, gateway_process.base_url.removeprefix("http://")) as started:
        yield started


async def _sha256_of(response: aiohttp.ClientResponse) -> tuple[str, int]:
    digest, length = hashlib.sha256(), 0
    async for chunk in response.content.iter_chunked(MIB):
        digest.update(chunk)
        length += len(chunk)
    return digest.hexdigest(), length


async def test_200_mb_file_goes_up_and_down_through_nginx_byte_identical(
    nginx_to_engine: processes.Nginx,
    engine_process: processes.Running,
    deployment: dict[str, object],
    client: aiohttp.ClientSession,
) -> None:
    size, seed = 200_000_000, 2026
    instance_id, task_id = engine_api.start_instance(engine_process.base_url)
    form = engine_api.variable_form(
        engine_api.pseudo_random_chunks(size, seed),
        size,
        value_type="File",
        filename="scan.tiff",
        mimetype="image/tiff",
    )
    url = f"{nginx_to_engine.base_url}/engine-rest/task/{task_id}/variables/scan/data"
    status, text = await engine_api.post_form(client, url, form)
    assert status == 204, text
    assert nginx_to_engine.spooled_files() == []

    expected = (engine_api.pseudo_random_sha256(size, seed), size)
    path = f"/engine-rest/process-instance/{instance_id}/variables/scan/data"
    async with client.get(nginx_to_engine.base_url + path) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("image/tiff")
        assert response.headers["Content-Disposition"] == 'attachment; filename="scan.tiff"'
        assert await _sha256_of(response) == expected
    async with client.get(engine_process.base_url + path) as response:
        assert await _sha256_of(response) == expected
    assert not any(nginx_to_engine.temp_dir.rglob("*.*"))
    assert "temporary file" not in (nginx_to_engine.prefix / "error.log").read_text()


async def test_the_engine_sees_the_clients_host_and_forwarded_headers(
    nginx_to_engine: processes.Nginx,
    engine_process: processes.Running,
    deployment: dict[str, object],
    client: aiohttp.ClientSession,
) -> None:
    # The engine builds its links from the Host it was sent: they must point at nginx.
    start = f"/engine-rest/process-definition/key/{engine_api.PROCESS_KEY}/start"
    async with client.post(nginx_to_engine.base_url + start, json={}) as response:
        assert response.status == 200, await response.text()
        links = (await response.json())["links"]
    assert links
    assert all(link["href"].startswith(nginx_to_engine.base_url) for link in links)


async def test_the_admin_port_is_not_reachable_through_nginx(
    nginx_to_engine: processes.Nginx, client: aiohttp.ClientSession
) -> None:
    # The paths go to the engine, as every path does, and it has none of them.
    for path in ("/metrics", "/livez", "/readyz"):
        async with client.get(nginx_to_engine.base_url + path) as response:
            assert response.status == 404
            assert b"engine_gateway_" not in await response.read()


async def test_a_webapp_page_and_a_cockpit_download_come_through_nginx(
    nginx_to_engine: processes.Nginx,
    engine_process: processes.Running,
    deployment: dict[str, object],
) -> None:
    """nginx, then the gateway, then the engine's webapps: Cockpit's page, and its
    download of a File named beyond Latin-1, named as stored."""
    instance_id, _ = engine_api.start_instance(engine_process.base_url)
    content = b"%PDF through nginx\n"
    variable_id = engine_api.put_file(
        engine_process.base_url, instance_id, "report", content, "Отчёт 2026 ✓.pdf"
    )
    async with webapps.logged_in(nginx_to_engine.base_url) as session:
        async with session.client.get(
            session.url(f"{webapps.WEBAPP}/app/cockpit/default/")
        ) as page:
            assert page.status == 200
            assert "text/html" in page.headers["Content-Type"]
            assert b"Cockpit" in await page.read()
        download = f"{webapps.API}/variable-instance/{variable_id}/data"
        async with session.client.get(session.url(download)) as response:
            assert response.status == 200
            assert await response.read() == content
            assert (
                "filename*=UTF-8''%D0%9E%D1%82%D1%87%D1%91%D1%82"
                in response.headers["Content-Disposition"]
            )
    assert nginx_to_engine.spooled_files() == []


def test_a_body_over_the_limit_is_refused_in_the_engines_error_shape(
    nginx_to_engine: processes.Nginx,
) -> None:
    # Declared one byte over 1 GiB: nginx refuses it before a byte of the body is sent.
    port = int(nginx_to_engine.base_url.rsplit(":", 1)[1])
    with socket.create_connection((processes.LOOPBACK, port), timeout=DEADLINE_SECONDS) as sock:
        sock.sendall(
            b"POST /engine-rest/task/x/variables/v/data HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n" % ((1 << 30) + 1)
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413 ")
    assert b"Content-Type: application/json" in head
    error = json.loads(body)
    assert error["type"] == "PayloadTooLargeException"
    assert error["code"] is None
    assert "1073741824" in error["message"]


# The shipped config with buffering switched back on, as nginx does by default: the checks
# below must see the difference, or they would prove nothing.
def _buffering_site(gateway_address: str, port: int) -> str:
    site = processes.nginx_site(gateway_address, port)
    site = site.replace("proxy_request_buffering off;", "proxy_request_buffering on;")
    return site.replace("proxy_buffering off;", "proxy_buffering on;")


async def _stalled(stub: Stub) -> bool:
    """True once the stub has sent all it could, ending or blocked by backpressure: its
    count of sent bytes stays put for a few polls."""
    counts = []
    for _ in range(6):
        if stub.state.ended.is_set():
            return True
        counts.append(stub.state.sent_bytes)
        await asyncio.sleep(0.05)  # sampling a counter, not waiting for an event
    return len(set(counts)) == 1


@pytest.mark.parametrize("buffering", [False, True], ids=["shipped", "buffering-control"])
async def test_a_download_reaches_the_client_as_the_upstream_sends_it(
    buffering: bool, stub: Stub, gateway_for: GatewayFactory, tmp_path: Path
) -> None:
    size = 256 * MIB
    async with gateway_for(stub.url) as gateway:
        with _nginx(tmp_path, gateway.url, buffering) as proxy:
            async with aiohttp.ClientSession(auto_decompress=False) as session:
                url = f"{proxy.base_url}/engine-rest/stream?size={size}&gate=1"
                if buffering:
                    # A buffering nginx may hold even the headers until its first buffer
                    # is full: the stub must not wait for the client here.
                    stub.state.release.set()
                async with session.get(url) as response:
                    first = b""
                    if not buffering:
                        # The stub holds everything after its first 64 KiB until released:
                        # the client already has those bytes. (A buffering nginx holds them
                        # until its 64 KiB buffer, which also holds the headers, is full.)
                        first = await asyncio.wait_for(
                            response.content.readexactly(65536), DEADLINE_SECONDS
                        )
                        assert not stub.state.ended.is_set()
                    # Now the client stops reading. Unbuffered, the stub is held back by
                    # backpressure; buffered, nginx swallows the whole body into a temp file.
                    stub.state.release.set()

                    async def stalled() -> bool:
                        return await _stalled(stub)

                    await poll_until(stalled, timeout_seconds=DEADLINE_SECONDS, what="stub stall")
                    spooled = proxy.spooled_files()
                    if buffering:
                        assert stub.state.ended.is_set()
                        assert spooled
                    else:
                        assert not stub.state.ended.is_set()
                        assert stub.state.sent_bytes < size // 4
                        assert spooled == []
                    rest = await asyncio.wait_for(response.read(), DEADLINE_SECONDS)
            assert len(first) + len(rest) == size
            log = (proxy.prefix / "error.log").read_text()
            assert ("buffered to a temporary file" in log) is buffering
            assert list(proxy.temp_dir.rglob("*.*")) == []


def _nginx(
    tmp_path: Path, gateway_url: str, buffering: bool
) -> contextlib.AbstractContextManager[processes.Nginx]:
    site = _buffering_site if buffering else processes.nginx_site
    return processes.nginx(tmp_path, gateway_url.removeprefix("http://"), site=site)


@pytest.mark.parametrize("buffering", [False, True], ids=["shipped", "buffering-control"])
async def test_an_upload_reaches_the_upstream_as_the_client_sends_it(
    buffering: bool, stub: Stub, gateway_for: GatewayFactory, tmp_path: Path
) -> None:
    size = 32 * MIB
    piece = bytes(range(256)) * 4096  # 1 MiB
    seen: list[object] = []

    async with gateway_for(stub.url) as gateway:
        with _nginx(tmp_path, gateway.url, buffering) as proxy:

            async def body() -> AsyncIterator[bytes]:
                yield piece
                # Holding the rest back: unbuffered, the first MiB is already upstream;
                # buffered, nginx spools it and the stub has seen nothing.
                if buffering:

                    async def spooling() -> bool:
                        return bool(proxy.spooled_files())

                    await poll_until(spooling, timeout_seconds=DEADLINE_SECONDS, what="spool")
                    seen.append(stub.state.received_bytes)
                else:

                    async def arrived() -> bool:
                        return stub.state.received_bytes >= len(piece)

                    await poll_until(arrived, timeout_seconds=DEADLINE_SECONDS, what="1 MiB")
                    seen.append(proxy.spooled_files())
                for _ in range(size // len(piece) - 1):
                    yield piece

            async with aiohttp.ClientSession(auto_decompress=False) as session:
                async with session.post(
                    proxy.base_url + "/engine-rest/upload",
                    data=body(),
                    headers={"Content-Length": str(size)},
                ) as response:
                    assert response.status == 200
                    received = await response.json()
    # buffered: nothing upstream while nginx spools; unbuffered: nothing spooled
    assert seen == ([0] if buffering else [[]])  # type: ignore[list-item]
    assert received == {
        "length": size,
        "sha256": hashlib.sha256(piece * (size // len(piece))).hexdigest(),
    }
