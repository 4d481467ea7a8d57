"""The gateway's image and the engine's in one podman pod, as deploy/k8s runs them: one
network namespace, the engine on its loopback, the gateway's ports published. Everything
goes through the published ports, as a Service's traffic would."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator

import aiohttp
import pytest

from tests import processes
from tests.faults.polling import http_status, poll_until
from tests.images import podman
from tests.integration import engine_api

SIZE = 100_000_000
MIB = 1 << 20
FILENAME = "Bericht 2026.pdf"
DEADLINE_SECONDS = 120


@pytest.fixture(scope="module")
def pod(images: podman.Images) -> Iterator[podman.Pod]:
    with podman.engine_pod(images) as started:
        engine_api.deploy(started.base_url)
        yield started


async def _upload(
    client: aiohttp.ClientSession,
    base_url: str,
    task_id: str,
    form: engine_api.Form,
    body: engine_api.HeldUpload | None = None,
) -> tuple[int, str]:
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data"
    return await engine_api.post_form(client, url, form, None if body is None else body.body())


async def _download(
    client: aiohttp.ClientSession, base_url: str, instance_id: str
) -> tuple[str, int, str | None]:
    digest, length = hashlib.sha256(), 0
    url = f"{base_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_chunked(MIB):
            digest.update(chunk)
            length += len(chunk)
        return digest.hexdigest(), length, response.headers.get("Content-Disposition")


def _file_form(seed: int) -> engine_api.Form:
    return engine_api.variable_form(
        engine_api.pseudo_random_chunks(SIZE, seed),
        SIZE,
        value_type="File",
        filename=FILENAME,
        mimetype="application/pdf",
    )


def test_the_pod_answers_through_its_published_ports_only(pod: podman.Pod) -> None:
    assert processes.http_status(pod.admin_url + "/livez") == 200
    assert processes.http_status(pod.admin_url + "/readyz") == 200
    answer = engine_api.call(pod.base_url, "GET", "/engine")
    assert answer == [{"name": "default"}]
    # The image's HEALTHCHECK, run as podman runs it.
    assert podman.podman("healthcheck", "run", pod.gateway, check=False).returncode == 0
    # Only the gateway's two ports are published; the engine's 8080 is the pod's own.
    published = podman.podman("port", pod.gateway).stdout
    assert sorted(line.split()[0] for line in published.splitlines()) == ["8000/tcp", "8001/tcp"]
    # Both run as their images' own non-root users.
    for container, uid in ((pod.gateway, "10001"), (pod.engine, "10002")):
        assert podman.podman("exec", container, "id", "-u").stdout.strip() == uid


async def test_a_100_mb_file_goes_up_and_down_byte_identical_and_named(
    pod: podman.Pod, client: aiohttp.ClientSession
) -> None:
    instance_id, task_id = engine_api.start_instance(pod.base_url)
    status, text = await _upload(client, pod.base_url, task_id, _file_form(seed=5))
    assert status == 204, text
    digest, length, named = await _download(client, pod.base_url, instance_id)
    assert (digest, length) == (engine_api.pseudo_random_sha256(SIZE, 5), SIZE)
    assert named == f'attachment; filename="{FILENAME}"'


async def test_metrics_are_scraped_from_the_published_admin_port(
    pod: podman.Pod, client: aiohttp.ClientSession
) -> None:
    async def counted() -> float:
        async with client.get(
            pod.admin_url + "/metrics", headers={"Accept-Encoding": "identity"}
        ) as response:
            assert response.status == 200
            return podman.passed_gets(await response.text())

    before = await counted()
    for _ in range(3):
        assert engine_api.call(pod.base_url, "GET", "/engine") == [{"name": "default"}]
    assert await counted() == before + 3


async def _streaming_up(client: aiohttp.ClientSession, admin_url: str) -> bool:
    async with client.get(
        admin_url + "/metrics", headers={"Accept-Encoding": "identity"}
    ) as response:
        text = await response.text()
    return 'engine_gateway_streams_in_flight{direction="upload"} 1.0' in text.splitlines()


async def test_podman_stop_drains_an_upload_in_flight_and_the_gateway_exits_0(
    images: podman.Images, client: aiohttp.ClientSession
) -> None:
    with podman.engine_pod(images) as pod:
        engine_api.deploy(pod.base_url)
        instance_id, task_id = engine_api.start_instance(pod.base_url)
        held = engine_api.HeldUpload(_file_form(seed=6), MIB)
        upload = asyncio.create_task(_upload(client, pod.base_url, task_id, held.form, held))
        await asyncio.wait_for(held.held.wait(), DEADLINE_SECONDS)
        await poll_until(
            lambda: _streaming_up(client, pod.admin_url),
            timeout_seconds=DEADLINE_SECONDS,
            what="the upload in flight",
        )
        stop = await asyncio.create_subprocess_exec(
            "podman", "stop", "--time", "90", pod.gateway,
            env=podman.environment(),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        # SIGTERM reached the gateway through the init: it drains, and says so.
        await poll_until(
            lambda: asyncio.to_thread(
                lambda: "draining 1 requests" in podman.podman("logs", pod.gateway).stderr
            ),
            timeout_seconds=DEADLINE_SECONDS,
            what="the gateway draining",
        )
        assert await http_status(client, pod.admin_url + "/readyz") in (503, None)
        held.resume.set()
        status, text = await asyncio.wait_for(upload, DEADLINE_SECONDS)
        assert status == 204, text
        _, stopped = await asyncio.wait_for(stop.communicate(), DEADLINE_SECONDS)
        assert stop.returncode == 0, stopped
        assert podman.exit_code(pod.gateway) == 0
        logs = podman.podman("logs", pod.gateway).stderr
        assert "stopped" in logs.splitlines()[-1]

        # A new gateway in the pod: the engine has the whole file.
        again = f"{pod.name}-gateway-again"
        podman.run_gateway_in(pod, again, images.gateway)
        podman.wait_ready(pod.admin_url, "the second gateway")
        digest, length, _ = await _download(client, pod.base_url, instance_id)
        assert (digest, length) == (engine_api.pseudo_random_sha256(SIZE, 6), SIZE)
