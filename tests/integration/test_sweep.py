"""`engine-gateway documents sweep` against the real engine and each store: content a
runtime variable, a historic one or a copy references is kept, unreferenced content goes
after the grace period, and two sweeps at once do no harm."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from gateway import reference
from tests import processes
from tests.integration import engine_api
from tests.integration.documents import Backend, key_file, new_key

pytestmark = pytest.mark.engine

KEY = new_key()
SIZE = 2_000_000


@dataclass(frozen=True)
class Setup:
    gateway: processes.Gateway
    keys: Path
    credentials: Path


@pytest.fixture(scope="module")
def setup(
    backend: Backend, engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("sweep")
    keys = key_file(work, KEY)
    credentials = work / "engine-credentials"
    credentials.write_text(":".join(processes.ADMIN_USER))
    env = backend.s3.credentials if backend.s3 is not None else {}
    args = (*backend.gateway_args, "--document-key-file", str(keys))
    with processes.gateway(work, engine_process.base_url, *args, env=env) as gateway:
        yield Setup(gateway, keys, credentials)


def _sweep(setup: Setup, backend: Backend, engine_url: str, *extra: str) -> subprocess.Popen[str]:
    env = backend.s3.credentials if backend.s3 is not None else {}
    command = [
        str(processes.GATEWAY_COMMAND), "documents", "sweep",
        "--upstream", engine_url, *backend.gateway_args,
        "--document-key-file", str(setup.keys),
        "--engine-credentials-file", str(setup.credentials), *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )


def _finished(sweeping: subprocess.Popen[str]) -> dict[str, object]:
    out, err = sweeping.communicate(timeout=300)
    assert sweeping.returncode == 0, err
    report: dict[str, object] = json.loads(out)
    return report


async def _offloaded(
    client: aiohttp.ClientSession, base: str, instance_id: str, name: str, seed: int
) -> bytes:
    content = b"".join(engine_api.pseudo_random_chunks(SIZE, seed))
    url = f"{base}/engine-rest/process-instance/{instance_id}/variables/{name}/data"
    async with client.put(url, data=content, params={"filename": f"{name}.bin"}) as response:
        assert response.status == 204, await response.text()
    return content


def _kept_reference(engine_url: str, instance_id: str, name: str) -> reference.Reference:
    url = f"{engine_url}/engine-rest/process-instance/{instance_id}/variables/{name}/data"
    found = reference.decode(engine_api.get_bytes(url), [KEY.encode()])
    assert isinstance(found, reference.Reference)
    return found


async def test_the_sweep_keeps_what_is_referenced_and_deletes_what_is_not(
    client: aiohttp.ClientSession,
    setup: Setup,
    backend: Backend,
    engine_process: processes.Running,
    deployment: dict[str, object],
) -> None:
    engine, base = engine_process.base_url, setup.gateway.base_url
    runtime, _ = engine_api.start_instance(engine)
    history_only, _ = engine_api.start_instance(engine)
    copied_from, _ = engine_api.start_instance(engine)
    gone, _ = engine_api.start_instance(engine)
    contents = {
        "runtime": await _offloaded(client, base, runtime, "doc", 1),
        "history": await _offloaded(client, base, history_only, "doc", 2),
        "copy": await _offloaded(client, base, copied_from, "doc", 3),
        "gone": await _offloaded(client, base, gone, "doc", 4),
    }
    # A copy: the reference written into another instance's variable, the original deleted.
    copied = _kept_reference(engine, copied_from, "doc")
    signed = engine_api.get_bytes(
        f"{engine}/engine-rest/process-instance/{copied_from}/variables/doc/data"
    )
    form = engine_api.variable_form(signed, len(signed), value_type="File", filename="copy.bin")
    engine_api.call(engine, "POST", f"/process-instance/{runtime}/variables/copy/data",
                    form.small_body(), content_type=form.content_type)  # fmt: skip
    unreferenced = _kept_reference(engine, gone, "doc")
    for instance_id in (history_only, copied_from, gone):
        engine_api.call(engine, "DELETE", f"/process-instance/{instance_id}")
    engine_api.call(engine, "DELETE", f"/history/process-instance/{gone}")  # no trace left
    assert copied.content_hash != unreferenced.content_hash

    # Within the grace period nothing goes; a dry run deletes nothing either.
    kept = backend.objects()
    report = _finished(_sweep(setup, backend, engine))
    assert report["deleted"] == {"documents": [], "content": [], "staging": []}
    report = _finished(_sweep(setup, backend, engine, "--grace-seconds", "0", "--dry-run"))
    assert report["would_delete"] == {  # keys within the store, below its prefix
        "documents": [f"documents/{unreferenced.document_id}"],
        "content": [f"content/{unreferenced.content_hash}"],
        "staging": [],
    }
    assert backend.objects() == kept

    # Two sweeps at once: both end well, and only what nothing references is gone.
    both = [_sweep(setup, backend, engine, "--grace-seconds", "0") for _ in range(2)]
    for sweeping in both:
        _finished(sweeping)
    assert backend.objects() == kept - {
        f"{backend.prefix}documents/{unreferenced.document_id}",
        f"{backend.prefix}content/{unreferenced.content_hash}",
    }
    downloads = {
        "runtime": f"{base}/engine-rest/process-instance/{runtime}/variables/doc/data",
        "copy": f"{base}/engine-rest/process-instance/{runtime}/variables/copy/data",
    }
    for name, url in downloads.items():
        async with client.get(url) as response:
            assert await response.read() == contents[name], name
    # The history-only one: through its historic variable instance.
    query = f"/history/variable-instance?processInstanceId={history_only}&variableName=doc"
    [historic] = await asyncio.to_thread(engine_api.call, engine, "GET", query)
    async with client.get(
        f"{base}/engine-rest/history/variable-instance/{historic['id']}/data"
    ) as response:
        assert await response.read() == contents["history"]


def test_the_sweep_writes_its_metrics_for_the_textfile_collector(
    setup: Setup, backend: Backend, engine_process: processes.Running, tmp_path: Path
) -> None:
    metrics_file = tmp_path / "sweep.prom"
    _finished(_sweep(setup, backend, engine_process.base_url, "--metrics-file", str(metrics_file)))
    text = metrics_file.read_text()
    assert 'engine_gateway_sweep_deleted_objects{dry_run="false",kind="content"} 0.0' in text
    assert "engine_gateway_sweep_last_success_timestamp_seconds" in text


def test_a_sweep_that_cannot_read_the_engine_deletes_nothing_and_fails(
    setup: Setup, backend: Backend, tmp_path: Path
) -> None:
    kept = backend.objects()
    wrong = tmp_path / "credentials"
    wrong.write_text("demo:wrong")
    sweeping = _sweep(
        Setup(setup.gateway, setup.keys, wrong), backend, f"http://{processes.LOOPBACK}:{processes.free_port()}",
        "--grace-seconds", "0",
    )  # fmt: skip
    sweeping.communicate(timeout=120)
    assert sweeping.returncode == 1
    assert backend.objects() == kept


async def _api_document(
    client: aiohttp.ClientSession, base: str, content: bytes, metadata: dict[str, object]
) -> tuple[bytes, dict[str, object]]:
    form = aiohttp.FormData()
    form.add_field("file", content, filename="api.bin", content_type="application/octet-stream")
    form.add_field("metadata", json.dumps(metadata), content_type="application/json")
    async with client.post(f"{base}/documents", data=form) as response:
        signed = await response.read()
        assert response.status == 201, signed
    return signed, json.loads(signed)


async def test_the_sweep_keeps_an_api_document_until_it_expires_attached_or_not(
    client: aiohttp.ClientSession,
    setup: Setup,
    backend: Backend,
    engine_process: processes.Running,
    deployment: dict[str, object],
) -> None:
    engine, base = engine_process.base_url, setup.gateway.base_url
    unattached = b"".join(engine_api.pseudo_random_chunks(SIZE, 11))
    expiring = b"".join(engine_api.pseudo_random_chunks(SIZE, 12))
    _, kept = await _api_document(client, base, unattached, {})
    signed, expired = await _api_document(client, base, expiring, {"timeToLive": 1000})
    # The expiring one attached to a variable: its expiry wins over the reference.
    instance_id, _ = engine_api.start_instance(engine)
    url = f"{base}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    async with client.put(url, data=signed, params={"filename": "api.bin"}) as response:
        assert response.status == 204
    deadline = asyncio.get_running_loop().time() + 30
    while True:  # until the gateway no longer serves it
        async with client.get(url) as response:
            await response.read()
            if response.status == 404:
                break
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.2)

    report = _finished(_sweep(setup, backend, engine, "--grace-seconds", "0"))
    deleted = report["deleted"]
    assert isinstance(deleted, dict)
    assert f"documents/{expired['documentId']}" in deleted["documents"]
    assert f"kept/{expired['documentId']}" in deleted["documents"]
    assert f"content/{expired['contentHash']}" in deleted["content"]
    assert f"documents/{kept['documentId']}" not in deleted["documents"]
    objects = backend.objects()
    assert f"{backend.prefix}content/{kept['contentHash']}" in objects
    assert f"{backend.prefix}content/{expired['contentHash']}" not in objects
    document_url = f"{base}/documents/{kept['documentId']}?contentHash={kept['contentHash']}"
    async with client.get(document_url) as response:
        assert await response.read() == unattached
