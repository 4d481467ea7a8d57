"""Binary and file variables through the gateway, against the real engine."""

from __future__ import annotations

import hashlib

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api

SIZES = [0, 1, 65535, 65536, 65537]
MB = 1_000_000


async def _upload(
    client: aiohttp.ClientSession,
    base_url: str,
    task_id: str,
    size: int,
    seed: int,
    value_type: str,
) -> None:
    form = engine_api.variable_form(
        engine_api.pseudo_random_chunks(size, seed),
        size,
        value_type=value_type,
        filename="report.pdf" if value_type == "File" else None,
        mimetype="application/pdf" if value_type == "File" else "application/octet-stream",
    )
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data"
    status, text = await engine_api.post_form(client, url, form)
    assert status == 204, text


async def _download(
    client: aiohttp.ClientSession, base_url: str, instance_id: str
) -> tuple[str, int, dict[str, str]]:
    digest, length = hashlib.sha256(), 0
    url = f"{base_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    async with client.get(url) as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(1 << 20):
            digest.update(chunk)
            length += len(chunk)
        kept = ("Content-Type", "Content-Disposition", "Content-Length")
        headers = {name: response.headers[name] for name in kept if name in response.headers}
    return digest.hexdigest(), length, headers


async def _round_trip(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine: processes.Running,
    instance: tuple[str, str],
    size: int,
    value_type: str,
) -> None:
    instance_id, task_id = instance
    seed = size * 7 + len(value_type)
    await _upload(client, gateway.base_url, task_id, size, seed, value_type)

    through_gateway = await _download(client, gateway.base_url, instance_id)
    direct = await _download(client, engine.base_url, instance_id)

    assert through_gateway[:2] == direct[:2] == (engine_api.pseudo_random_sha256(size, seed), size)
    # The same Content-Type and -Length; the name made safe, a Bytes value named after its
    # variable (the engine gives it no name at all).
    named = through_gateway[2].pop("Content-Disposition")
    assert named == (
        'attachment; filename="report.pdf"'
        if value_type == "File"
        else 'attachment; filename="doc"'
    )
    direct[2].pop("Content-Disposition", None)
    assert through_gateway[2] == direct[2]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("value_type", ["Bytes", "File"])
async def test_variable_uploaded_through_the_gateway_downloads_byte_identical(
    size: int,
    value_type: str,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    await _round_trip(client, gateway_process, engine_process, instance, size, value_type)


@pytest.mark.parametrize("value_type", ["Bytes", "File"])
async def test_100_mb_variable_round_trips_byte_identical(
    value_type: str,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    await _round_trip(client, gateway_process, engine_process, instance, 100 * MB, value_type)


async def test_file_variable_keeps_its_filename_and_mimetype(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    instance: tuple[str, str],
) -> None:
    instance_id, task_id = instance
    await _upload(client, gateway_process.base_url, task_id, 10, 3, "File")
    _, _, headers = await _download(client, gateway_process.base_url, instance_id)
    assert headers["Content-Type"].startswith("application/pdf")
    assert headers["Content-Disposition"] == 'attachment; filename="report.pdf"'
