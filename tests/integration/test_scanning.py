"""Malware scanning while uploads stream: the real engine, and Debian's clamd with the project's
own signatures for ClamAV's EICAR test string (deploy/clamd). An infected upload is refused
before its end reaches the engine, so the variable keeps its previous value."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests import processes
from tests.cluster.nodes import metric_sum
from tests.faults.polling import poll_until
from tests.integration import engine_api
from tests.processes import EICAR

FAILED_CLOSED_LABELS = '{direction="upload",door="multipart",outcome="failed_closed"}'
SIGNATURES = ("EngineGateway.Test.EICAR-Body", "EngineGateway.Test.EICAR-File")


def _form(content: bytes, filename: str = "scan.pdf") -> engine_api.Form:
    return engine_api.variable_form(
        content, len(content), value_type="File", filename=filename, mimetype="application/pdf"
    )


async def _upload(
    client: aiohttp.ClientSession,
    base_url: str,
    task_id: str,
    content: bytes,
    kind: str,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Any]:
    """`content` to the task's variable `doc`, as a multipart form or a raw PUT."""
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data"
    if kind == "multipart":
        form = _form(content)
        body, sent = form.small_body(), {"Content-Type": form.content_type}
    else:
        body, sent = content, {"Content-Type": "application/pdf"}
        url += "?filename=scan.pdf"
    method = "POST" if kind == "multipart" else "PUT"
    async with client.request(method, url, data=body, headers={**sent, **(headers or {})}) as r:
        raw = await r.read()
        return r.status, json.loads(raw) if raw else None, r.headers


def _with_eicar(position: str, size: int = 4 << 20) -> bytes:
    filler = random.Random(position).randbytes(size)
    middle = size // 2
    return {
        "start": EICAR + filler,
        "middle": filler[:middle] + EICAR + filler[middle:],
        "end": filler + EICAR,
    }[position]


@pytest.mark.parametrize("kind", ["multipart", "raw"])
async def test_the_eicar_file_is_refused_with_422_naming_the_signature_and_nothing_is_stored(
    kind: str,
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    status, error, _ = await _upload(client, scanning_gateway.base_url, task_id, EICAR, kind)
    assert status == 422
    assert error["type"] == "MalwareFoundException"
    assert error["code"] is None
    assert any(signature in error["message"] for signature in SIGNATURES)
    assert "scan.pdf" in error["message"]
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS


@pytest.mark.parametrize("position", ["start", "middle", "end"])
@pytest.mark.parametrize("kind", ["multipart", "raw"])
async def test_eicar_anywhere_in_a_larger_file_is_refused_and_nothing_is_stored(
    kind: str,
    position: str,
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    content = _with_eicar(position)
    status, error, _ = await _upload(client, scanning_gateway.base_url, task_id, content, kind)
    assert status == 422
    assert "EngineGateway.Test.EICAR-Body" in error["message"]
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS


async def test_a_refused_upload_is_logged_and_counted_with_its_signature_not_its_bytes(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    previous: tuple[str, str],
) -> None:
    _, task_id = previous
    admin = scanning_gateway.admin_url
    series = 'engine_gateway_scans_total{direction="upload",door="multipart",outcome="found"}'
    before = await metric_sum(client, admin, series)
    status, _, _ = await _upload(client, scanning_gateway.base_url, task_id, EICAR, "multipart")
    assert status == 422
    assert await metric_sum(client, admin, series) == before + 1
    path = f"path=/engine-rest/task/{task_id}/variables/doc/data"

    def logged() -> list[str]:
        text = scanning_gateway.running.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if path in line and "status=422" in line]

    processes.wait_until(lambda: bool(logged()), timeout_seconds=10, what="the log line")
    [line] = logged()
    assert "scan=found:EngineGateway.Test.EICAR-" in line
    assert "outcome=rejected" in line
    assert "EICAR-STANDARD" not in scanning_gateway.running.log_path.read_text(errors="replace")


async def test_a_clean_100_mb_upload_is_scanned_and_stored_byte_identical_with_its_digest(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    size, seed = 100_000_000, 11
    expected = hashlib.sha256()
    for chunk in engine_api.pseudo_random_chunks(size, seed):
        expected.update(chunk)
    claimed = f"sha-256=:{base64.b64encode(expected.digest()).decode()}:"
    form = engine_api.variable_form(
        engine_api.pseudo_random_chunks(size, seed),
        size,
        value_type="File",
        filename="scan.bin",
    )
    admin = scanning_gateway.admin_url
    clean = 'engine_gateway_scans_total{direction="upload",door="multipart",outcome="clean"}'
    scanned = 'engine_gateway_scanned_bytes_total{direction="upload"}'
    clean_before = await metric_sum(client, admin, clean)
    scanned_before = await metric_sum(client, admin, scanned)

    url = f"{scanning_gateway.base_url}/engine-rest/task/{task_id}/variables/doc/data"
    headers = {
        "Content-Type": form.content_type,
        "Content-Length": str(form.length),
        "Repr-Digest": claimed,
    }
    async with client.post(url, data=form.stream(), headers=headers) as response:
        assert response.status == 204, await response.text()
        assert response.headers["Repr-Digest"] == claimed

    assert await metric_sum(client, admin, clean) == clean_before + 1
    assert await metric_sum(client, admin, scanned) == scanned_before + size
    download = hashlib.sha256()
    source = f"{engine_process.base_url}/engine-rest/process-instance/{instance_id}"
    async with client.get(source + "/variables/doc/data") as response:
        assert response.status == 200
        async for chunk in response.content.iter_chunked(1 << 20):
            download.update(chunk)
    assert download.digest() == expected.digest()


async def test_eicar_in_a_deployment_resource_is_refused_and_nothing_is_deployed(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    name = "scanned-" + hashlib.sha1(EICAR).hexdigest()[:8]  # noqa: S324 - a name only
    boundary = "----gatewayscan"
    heads = (
        engine_api.part_head(boundary, True, 'form-data; name="deployment-name"', "text/plain"),
        engine_api.part_head(
            boundary, False, 'form-data; name="data"; filename="readme.txt"', "text/plain"
        ),
    )
    body = heads[0] + name.encode() + heads[1] + EICAR + f"\r\n--{boundary}--\r\n".encode()
    url = f"{scanning_gateway.base_url}/engine-rest/deployment/create"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with client.post(url, data=body, headers=headers) as response:
        assert response.status == 422
        assert (await response.json())["type"] == "MalwareFoundException"
    deployments = engine_api.call(engine_process.base_url, "GET", f"/deployment?name={name}")
    assert deployments == []


async def test_eicar_as_a_task_attachment_is_refused_and_nothing_is_attached(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    _, task_id = instance
    boundary = "----gatewayattach"
    name_head = engine_api.part_head(
        boundary, True, 'form-data; name="attachment-name"', "text/plain"
    )
    content_head = engine_api.part_head(
        boundary, False, 'form-data; name="content"; filename="note.txt"', "text/plain"
    )
    body = name_head + b"note" + content_head + EICAR + f"\r\n--{boundary}--\r\n".encode()
    url = f"{scanning_gateway.base_url}/engine-rest/task/{task_id}/attachment/create"
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    async with client.post(url, data=body, headers=headers) as response:
        assert response.status == 422
        assert (await response.json())["type"] == "MalwareFoundException"
    assert engine_api.call(engine_process.base_url, "GET", f"/task/{task_id}/attachment") == []
    # The same form with a clean file is attached: the refusal was the scan's.
    clean = body.replace(EICAR, b"a clean note")
    async with client.post(url, data=clean, headers=headers) as response:
        assert response.status == 200, await response.text()
    [attachment] = engine_api.call(engine_process.base_url, "GET", f"/task/{task_id}/attachment")
    assert attachment["name"] == "note"


@pytest.fixture
def stopped_clamd(tmp_path: Path) -> processes.Clamd:
    """A clamd that was started, then stopped: its socket address leads nowhere."""
    started = processes.start_clamd(tmp_path)
    processes.stop(started.running.process)
    assert not processes.clamd_answers(started.port)
    return started


@pytest.mark.parametrize("address", ["unix", "tcp"])
async def test_with_clamd_stopped_failing_closed_refuses_with_503_and_stores_nothing(
    address: str,
    stopped_clamd: processes.Clamd,
    client: aiohttp.ClientSession,
    engine_process: processes.Running,
    previous: tuple[str, str],
    tmp_path: Path,
) -> None:
    instance_id, task_id = previous
    url = stopped_clamd.unix_url if address == "unix" else stopped_clamd.tcp_url
    with processes.gateway(tmp_path, engine_process.base_url, "--clamd", url) as gateway:
        status, error, _ = await _upload(client, gateway.base_url, task_id, b"clean", "multipart")
        assert status == 503
        assert error["type"] == "ScanUnavailableException"
        assert "unreachable" in error["message"]
        failed = "engine_gateway_scans_total" + FAILED_CLOSED_LABELS
        assert await metric_sum(client, gateway.admin_url, failed) == 1
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS


async def test_with_clamd_stopped_failing_open_stores_the_upload_and_counts_it(
    stopped_clamd: processes.Clamd,
    client: aiohttp.ClientSession,
    engine_process: processes.Running,
    previous: tuple[str, str],
    tmp_path: Path,
) -> None:
    instance_id, task_id = previous
    with processes.gateway(
        tmp_path,
        engine_process.base_url,
        "--clamd",
        stopped_clamd.unix_url,
        "--clamd-failure",
        "open",
    ) as gateway:
        status, _, _ = await _upload(client, gateway.base_url, task_id, b"unscanned", "raw")
        assert status == 204
        failed = 'engine_gateway_scans_total{direction="upload",door="raw",outcome="failed_open"}'
        assert await metric_sum(client, gateway.admin_url, failed) == 1
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == b"unscanned"


@pytest.mark.parametrize(
    ("address", "reasons"),
    [
        ("unix", ("INSTREAM size limit exceeded",)),
        # Over TCP the reset after clamd's refusal may or may not take its words with it.
        ("tcp", ("INSTREAM size limit exceeded", "StreamMaxLength")),
    ],
)
async def test_a_file_over_clamds_stream_max_length_is_refused_when_failing_closed(
    address: str,
    reasons: tuple[str, ...],
    client: aiohttp.ClientSession,
    engine_process: processes.Running,
    previous: tuple[str, str],
    tmp_path: Path,
) -> None:
    instance_id, task_id = previous
    with (
        processes.clamd(tmp_path, stream_max_length="1M") as small,
        processes.gateway(
            tmp_path,
            engine_process.base_url,
            "--clamd",
            small.unix_url if address == "unix" else small.tcp_url,
        ) as gateway,
    ):
        content = random.Random(3).randbytes(3 << 20)
        status, error, _ = await _upload(client, gateway.base_url, task_id, content, "multipart")
        assert status == 503
        assert error["type"] == "ScanUnavailableException"
        assert any(reason in error["message"] for reason in reasons)
        # A file under the limit still passes through the same gateway.
        status, _, _ = await _upload(client, gateway.base_url, task_id, b"small", "multipart")
        assert status == 204
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == b"small"


async def test_an_upload_waits_for_clamd_and_clamd_is_fed_while_the_body_streams(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    """Half a form sent, then held: clamd has already had that half (the bytes-scanned
    counter says so), and the engine has not stored anything yet."""
    instance_id, task_id = previous
    size = 8 << 20
    form = _form(random.Random(5).randbytes(size))
    held = engine_api.HeldUpload(form, hold_after_bytes=size // 2)
    series = 'engine_gateway_scanned_bytes_total{direction="upload"}'
    admin = scanning_gateway.admin_url
    before = await metric_sum(client, admin, series)
    url = f"{scanning_gateway.base_url}/engine-rest/task/{task_id}/variables/doc/data"
    upload = asyncio.ensure_future(engine_api.post_form(client, url, form, held.body()))
    await asyncio.wait_for(held.held.wait(), 30)

    async def fed() -> bool:
        return await metric_sum(client, admin, series) - before >= size // 4

    await poll_until(fed, timeout_seconds=30, what="clamd fed while the upload is held")
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS
    held.resume.set()
    status, _ = await asyncio.wait_for(upload, 60)
    assert status == 204
    assert await metric_sum(client, admin, series) - before == size


async def _download(
    client: aiohttp.ClientSession, base_url: str, instance_id: str
) -> aiohttp.ClientResponse:
    url = f"{base_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    return await client.get(url)


async def _read_into(response: aiohttp.ClientResponse, received: bytearray) -> None:
    async for chunk in response.content.iter_any():
        received += chunk


async def test_an_infected_small_download_is_refused_with_422(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    # Stored on the engine directly, as if it had come in some other way.
    status, _, _ = await _upload(client, engine_process.base_url, task_id, EICAR, "multipart")
    assert status == 204
    async with await _download(client, scanning_gateway.base_url, instance_id) as response:
        assert response.status == 422
        error = await response.json()
    assert error["type"] == "MalwareFoundException"
    assert "The download was refused" in error["message"]


async def test_an_infected_large_download_is_cut_before_its_last_chunk(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    content = _with_eicar("end")
    status, _, _ = await _upload(client, engine_process.base_url, task_id, content, "multipart")
    assert status == 204
    received = bytearray()
    async with await _download(client, scanning_gateway.base_url, instance_id) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await _read_into(response, received)
    assert len(received) < len(content)
    assert content.startswith(received)
    assert EICAR not in received


async def test_a_clean_download_is_scanned_and_arrives_whole(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    instance_id, task_id = previous
    content = random.Random(8).randbytes(6 << 20)
    status, _, _ = await _upload(client, engine_process.base_url, task_id, content, "multipart")
    assert status == 204
    clean = 'engine_gateway_scans_total{direction="download",door="data",outcome="clean"}'
    before = await metric_sum(client, scanning_gateway.admin_url, clean)
    async with await _download(client, scanning_gateway.base_url, instance_id) as response:
        assert response.status == 200
        assert await response.read() == content
    assert await metric_sum(client, scanning_gateway.admin_url, clean) == before + 1


@pytest.mark.parametrize(
    "decorated",
    [
        "/engine-rest/task/{task}/variables/doc/data;x=1",
        "/engine-rest/task;x/{task}/variables/doc;y/data",
    ],
)
async def test_path_parameters_do_not_let_an_upload_around_the_scanner(
    decorated: str,
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    previous: tuple[str, str],
) -> None:
    """The engine drops `;…` from each path segment and stores a file posted there."""
    instance_id, task_id = previous
    form = _form(EICAR)
    url = scanning_gateway.base_url + decorated.format(task=task_id)
    async with client.post(
        url, data=form.small_body(), headers={"Content-Type": form.content_type}
    ) as r:
        assert r.status == 422, await r.text()
    stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == engine_api.PREVIOUS
