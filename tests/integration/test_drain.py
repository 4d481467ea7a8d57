"""SIGTERM on a real gateway process in front of the real engine, with a 100 MB download and
a 100 MB upload in flight: readiness turns 503 at once, the port stops accepting, both
transfers finish byte-identical and the process exits 0; transfers that outlast the drain
timeout are cut (never completed short), the engine keeps its previous value, and the cut
is counted."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from tests import processes
from tests.faults.polling import exit_status, http_status, poll_until
from tests.integration import engine_api

SIZE = 100_000_000
MIB = 1 << 20
DEADLINE_SECONDS = 60


def _held_upload(seed: int) -> engine_api.HeldUpload:
    """A 100 MB upload whose client sends 1 MiB, then waits for `resume`."""
    form = engine_api.variable_form(
        engine_api.pseudo_random_chunks(SIZE, seed), SIZE, value_type="File", filename="in.bin"
    )
    return engine_api.HeldUpload(form, MIB)


async def _upload(
    client: aiohttp.ClientSession, base_url: str, task_id: str, form: engine_api.Form
) -> int:
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data"
    status, _ = await engine_api.post_form(client, url, form)
    return status


async def _streams_in_flight(client: aiohttp.ClientSession, admin_url: str) -> bool:
    # identity: this client does not decompress, and /metrics gzips for those who accept it
    async with client.get(
        admin_url + "/metrics", headers={"Accept-Encoding": "identity"}
    ) as response:
        text = await response.text()
    wanted = (
        'engine_gateway_streams_in_flight{direction="upload"} 1.0',
        'engine_gateway_streams_in_flight{direction="download"} 1.0',
    )
    return all(line in text.splitlines() for line in wanted)


async def _exited(gateway: processes.Gateway) -> int:
    return await exit_status(gateway.running.process, timeout_seconds=DEADLINE_SECONDS)


async def _read_all(content: aiohttp.StreamReader, digest: hashlib._Hash) -> int:
    length = 0
    async for chunk in content.iter_chunked(MIB):
        digest.update(chunk)
        length += len(chunk)
    return length


@dataclass(frozen=True)
class Scene:
    """A stored 100 MB variable to download, and a task to upload to."""

    download_path: str
    upload_task: str
    upload_instance: str


@pytest.fixture
async def scene(
    engine_process: processes.Running,
    deployment: dict[str, object],
    client: aiohttp.ClientSession,
) -> Scene:
    stored_instance, stored_task = engine_api.start_instance(engine_process.base_url)
    form = engine_api.variable_form(
        engine_api.pseudo_random_chunks(SIZE, 1), SIZE, value_type="File", filename="out.bin"
    )
    assert await _upload(client, engine_process.base_url, stored_task, form) == 204
    # The variable the interrupted upload would replace: it must keep this value.
    upload_instance, upload_task = engine_api.start_instance(engine_process.base_url)
    previous = engine_api.variable_form(b"previous", 8, value_type="File", filename="old.bin")
    assert await _upload(client, engine_process.base_url, upload_task, previous) == 204
    return Scene(
        f"/engine-rest/process-instance/{stored_instance}/variables/doc/data",
        upload_task,
        upload_instance,
    )


async def _stored(client: aiohttp.ClientSession, engine_url: str, instance: str) -> bytes:
    url = f"{engine_url}/engine-rest/process-instance/{instance}/variables/doc/data"
    async with client.get(url) as response:
        assert response.status == 200
        return await response.read()


async def test_sigterm_drains_a_100_mb_download_and_upload_to_the_end(
    scene: Scene,
    engine_process: processes.Running,
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    drain_timeout = DEADLINE_SECONDS
    gateway = processes.start_gateway(
        tmp_path, engine_process.base_url, "--drain-timeout-seconds", str(drain_timeout)
    )
    held = _held_upload(seed=2)
    upload = asyncio.create_task(_upload_held(client, gateway.base_url, scene, held))
    try:
        digest = hashlib.sha256()
        async with client.get(gateway.base_url + scene.download_path) as download:
            digest.update(await download.content.readexactly(MIB))
            await _both_in_flight(client, gateway)
            signalled = time.monotonic()
            os.kill(gateway.running.pid, signal.SIGTERM)

            async def not_ready() -> bool:
                return await http_status(client, gateway.admin_url + "/readyz") == 503

            async def refusing() -> bool:
                return await http_status(client, gateway.base_url + "/engine-rest/engine") is None

            await poll_until(not_ready, timeout_seconds=5, what="readyz 503")
            await poll_until(refusing, timeout_seconds=5, what="listener closed")

            held.resume.set()
            length = MIB + await _read_all(download.content, digest)
        assert await asyncio.wait_for(upload, DEADLINE_SECONDS) == 204
        assert await _exited(gateway) == 0
        # It left as soon as the transfers were done, not at the end of the drain timeout.
        assert time.monotonic() - signalled < drain_timeout
    finally:
        upload.cancel()
        processes.stop(gateway.running.process)

    assert (digest.hexdigest(), length) == (engine_api.pseudo_random_sha256(SIZE, 1), SIZE)
    uploaded = await _stored(client, engine_process.base_url, scene.upload_instance)
    assert hashlib.sha256(uploaded).hexdigest() == engine_api.pseudo_random_sha256(SIZE, 2)
    log = gateway.running.log_path.read_text()
    assert log.count("outcome=complete") >= 2
    assert "outcome=drain_abort" not in log


async def test_transfers_that_outlast_the_drain_timeout_are_cut_and_counted(
    scene: Scene,
    engine_process: processes.Running,
    client: aiohttp.ClientSession,
    tmp_path: Path,
) -> None:
    gateway = processes.start_gateway(
        tmp_path, engine_process.base_url, "--drain-timeout-seconds", "1"
    )
    held = _held_upload(seed=3)
    upload = asyncio.create_task(_upload_held(client, gateway.base_url, scene, held))
    try:
        async with client.get(gateway.base_url + scene.download_path) as download:
            await download.content.readexactly(MIB)
            await _both_in_flight(client, gateway)
            os.kill(gateway.running.pid, signal.SIGTERM)
            # Neither client moves until the gateway is gone: both transfers outlast the drain.
            assert await _exited(gateway) == 0
            held.resume.set()
            with pytest.raises(aiohttp.ClientPayloadError):
                await _read_all(download.content, hashlib.sha256())
        # The upload's client learns it failed: a 503 if it reads the answer, else a broken
        # connection; never a success.
        try:
            status = await asyncio.wait_for(upload, DEADLINE_SECONDS)
        except aiohttp.ClientError:
            status = None
        assert status in (503, None)
    finally:
        upload.cancel()
        processes.stop(gateway.running.process)

    # The engine kept the variable's previous value: the cut upload wrote nothing.
    assert await _stored(client, engine_process.base_url, scene.upload_instance) == b"previous"
    drain_aborts = [
        line
        for line in gateway.running.log_path.read_text().splitlines()
        if "outcome=drain_abort" in line
    ]
    assert len(drain_aborts) == 2
    assert any("method=GET" in line for line in drain_aborts)
    assert any("method=POST" in line for line in drain_aborts)


async def _both_in_flight(client: aiohttp.ClientSession, gateway: processes.Gateway) -> None:
    async def in_flight() -> bool:
        return await _streams_in_flight(client, gateway.admin_url)

    await poll_until(in_flight, timeout_seconds=DEADLINE_SECONDS, what="both streams")


async def _upload_held(
    client: aiohttp.ClientSession, base_url: str, scene: Scene, held: engine_api.HeldUpload
) -> int:
    url = f"{base_url}/engine-rest/task/{scene.upload_task}/variables/doc/data"
    status, _ = await engine_api.post_form(client, url, held.form, held.body())
    return status
