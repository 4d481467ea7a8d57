"""A real S3 store (SeaweedFS) that stops, before and during a transfer, in front of the real
engine: an upload is refused with 503 and the engine stores nothing; a download is cut,
never presented as whole."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api
from tests.integration.documents import key_file, new_key

pytestmark = pytest.mark.engine

SIZE = 60_000_000


@dataclass(frozen=True)
class Stack:
    seaweed: processes.SeaweedFS
    gateway: processes.Gateway


@pytest.fixture
def stack(
    engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A SeaweedFS of its own (each test stops it) and a gateway storing in it."""
    work = tmp_path_factory.mktemp("faults")
    with processes.seaweedfs(work) as seaweed:
        seaweed.create_bucket("documents")
        with processes.gateway(
            work,
            engine_process.base_url,
            "--document-store",
            "s3://documents",
            "--document-store-endpoint",
            seaweed.url,
            "--document-key-file",
            str(key_file(work, new_key())),
            env=seaweed.credentials,
        ) as gateway:
            yield Stack(seaweed, gateway)


def _url(base: str, instance_id: str, name: str) -> str:
    return f"{base}/engine-rest/process-instance/{instance_id}/variables/{name}/data"


def _stored(engine_url: str, instance_id: str, name: str) -> list[object]:
    query = f"/variable-instance?processInstanceIdIn={instance_id}&variableName={name}"
    found: list[object] = engine_api.call(engine_url, "GET", query)
    return found


def _killed(seaweed: processes.SeaweedFS) -> None:
    os.kill(seaweed.running.pid, signal.SIGKILL)
    seaweed.running.process.wait()


async def test_an_upload_to_a_store_that_is_down_is_503_and_the_engine_stores_nothing(
    client: aiohttp.ClientSession,
    stack: Stack,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    _killed(stack.seaweed)
    content = b"".join(engine_api.pseudo_random_chunks(3_000_000, 1))
    async with client.put(
        _url(stack.gateway.base_url, instance_id, "down"), data=content
    ) as response:
        answer = await response.json()
    assert (response.status, answer["type"]) == (503, "DocumentStoreUnavailableException")
    assert _stored(engine_process.base_url, instance_id, "down") == []


async def test_a_store_stopping_mid_upload_is_503_and_the_engine_stores_nothing(
    client: aiohttp.ClientSession,
    stack: Stack,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    sent = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        for index, chunk in enumerate(engine_api.pseudo_random_chunks(SIZE, 2)):
            if index == 20:  # 20 MiB in: the store has parts of it
                sent.set()
                await asyncio.to_thread(_killed, stack.seaweed)
            yield chunk

    headers = {"Content-Length": str(SIZE)}
    url = _url(stack.gateway.base_url, instance_id, "cut")
    async with client.put(url, data=body(), headers=headers) as response:
        answer = await response.json()
    assert sent.is_set()
    assert (response.status, answer["type"]) == (503, "DocumentStoreUnavailableException")
    assert _stored(engine_process.base_url, instance_id, "cut") == []


async def test_a_store_stopping_mid_download_cuts_the_clients_connection(
    client: aiohttp.ClientSession, stack: Stack, instance: tuple[str, str]
) -> None:
    instance_id, _ = instance
    url = _url(stack.gateway.base_url, instance_id, "big")
    content = b"".join(engine_api.pseudo_random_chunks(SIZE, 3))
    async with client.put(url, data=content) as response:
        assert response.status == 204, await response.text()
    received = 0

    async def read() -> None:
        nonlocal received
        async with client.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(SIZE)
            async for chunk in response.content.iter_chunked(1 << 20):
                received += len(chunk)
                if received >= 4 << 20 and stack.seaweed.running.process.poll() is None:
                    await asyncio.to_thread(_killed, stack.seaweed)  # while it is read

    with pytest.raises(aiohttp.ClientPayloadError):
        await read()
    assert 4 << 20 <= received < SIZE
