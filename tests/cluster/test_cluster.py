"""Two engine nodes on one PostgreSQL database, a gateway before each, nginx before both
(tests/cluster/nodes.py): a file stored through one pair is served by every path; a node
killed with transfers running cuts them (never a complete-looking end) while nginx moves on
to the other pair; a node killed during an upload leaves the previous value in the
database; a gateway drained under load loses no transfer."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest

from tests import processes
from tests.cluster.nodes import Cluster, metric_sum, requests_served
from tests.faults.polling import exit_status, http_status, poll_until
from tests.integration import engine_api
from tests.integration.documents import key_file, new_key

SIZE = 100_000_000
MIB = 1 << 20
PREVIOUS = b"the previous value of doc"
DEADLINE_SECONDS = 120


@dataclass(frozen=True)
class Downloaded:
    status: int
    sha256: str
    length: int
    disposition: str | None


async def _download(client: aiohttp.ClientSession, url: str) -> Downloaded:
    async with client.get(url) as response:
        digest, length = hashlib.sha256(), 0
        async for chunk in response.content.iter_chunked(MIB):
            digest.update(chunk)
            length += len(chunk)
        disposition = response.headers.get("Content-Disposition")
        return Downloaded(response.status, digest.hexdigest(), length, disposition)


async def _upload(
    client: aiohttp.ClientSession,
    base_url: str,
    task_id: str,
    form: engine_api.Form,
    body: AsyncIterator[bytes] | None = None,
) -> int:
    url = f"{base_url}/engine-rest/task/{task_id}/variables/doc/data"
    status, _ = await engine_api.post_form(client, url, form, body)
    return status


def _file_form(size: int, seed: int, filename: str = "scan.bin") -> engine_api.Form:
    return engine_api.variable_form(
        engine_api.pseudo_random_chunks(size, seed), size, value_type="File", filename=filename
    )


def _data_path(instance_id: str) -> str:
    return f"/engine-rest/process-instance/{instance_id}/variables/doc/data"


async def _bytes_uploaded(client: aiohttp.ClientSession, admin_url: str) -> float:
    series = 'engine_gateway_transferred_bytes_total{direction="upload"'
    return await metric_sum(client, admin_url, series)


async def _upload_in_flight(client: aiohttp.ClientSession, admin_url: str) -> bool:
    series = 'engine_gateway_streams_in_flight{direction="upload"}'
    return await metric_sum(client, admin_url, series) == 1


async def _revive(engine_cluster: Cluster, client: aiohttp.ClientSession, index: int) -> None:
    engine_cluster.start_engine(index)
    readiness = engine_cluster.nodes[index].gateway.admin_url + "/readyz"

    async def ready() -> bool:
        return await http_status(client, readiness) == 200

    await poll_until(ready, timeout_seconds=DEADLINE_SECONDS, what="the node's gateway ready")


async def test_a_file_stored_through_the_balancer_is_served_identically_by_every_path(
    engine_cluster: Cluster, client: aiohttp.ClientSession
) -> None:
    instance_id, task_id = engine_api.start_instance(engine_cluster.balancer_url)
    form = _file_form(SIZE, seed=10, filename="quarterly report 2026.pdf")
    assert await _upload(client, engine_cluster.balancer_url, task_id, form) == 204

    bases = [engine_cluster.balancer_url, *(node.gateway.base_url for node in engine_cluster.nodes)]
    downloads = [await _download(client, base + _data_path(instance_id)) for base in bases]

    expected = engine_api.pseudo_random_sha256(SIZE, 10)
    assert {(d.status, d.sha256, d.length) for d in downloads} == {(200, expected, SIZE)}
    dispositions = {d.disposition for d in downloads}
    assert dispositions == {'attachment; filename="quarterly report 2026.pdf"'}, dispositions


@dataclass
class HeldDownload:
    """A download that reads its first MiB, then waits for `resume`."""

    url: str
    resume: asyncio.Event
    started: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    status: int | None = None

    async def run(self, client: aiohttp.ClientSession) -> tuple[int, str] | BaseException:
        """(bytes read, sha256) when the body ended cleanly, else the error it ended with."""
        try:
            async with client.get(self.url) as response:
                self.status = response.status
                digest = hashlib.sha256(await response.content.readexactly(MIB))
                length = MIB
                self.started.set()
                await self.resume.wait()
                async for chunk in response.content.iter_chunked(MIB):
                    digest.update(chunk)
                    length += len(chunk)
                return length, digest.hexdigest()
        except (aiohttp.ClientError, asyncio.IncompleteReadError) as error:
            return error
        finally:
            self.started.set()


async def test_killing_an_engine_cuts_its_downloads_and_nginx_moves_on_to_the_other_pair(
    engine_cluster: Cluster, client: aiohttp.ClientSession
) -> None:
    a, b = engine_cluster.nodes
    instance_id, task_id = engine_api.start_instance(b.gateway.base_url)
    assert await _upload(client, b.gateway.base_url, task_id, _file_form(SIZE, seed=11)) == 204
    expected = engine_api.pseudo_random_sha256(SIZE, 11)

    # Three at a node at most: the engine holds a whole 100 MB value, more than once, in
    # its 1 GiB heap for each download it serves from PostgreSQL.
    resume = asyncio.Event()
    through_a = [HeldDownload(a.gateway.base_url + _data_path(instance_id), resume) for _ in "ab"]
    through_nginx = [HeldDownload(engine_cluster.balancer_url + _data_path(instance_id), resume)]
    held = through_a + through_nginx
    runs = []
    try:
        for download in held:
            runs.append(asyncio.create_task(download.run(client)))
            await asyncio.wait_for(download.started.wait(), DEADLINE_SECONDS)
        assert [download.status for download in held] == [200] * len(held)
        engine_cluster.kill_engine(0)
        resume.set()
        results = await asyncio.gather(*runs)

        # Through the dead node's gateway: every download cut, none ended cleanly.
        for result in results[: len(through_a)]:
            assert isinstance(result, BaseException), f"a cut download ended cleanly: {result}"
        # Through nginx: complete and correct (served by the other pair), or cut; never a
        # clean end short of the file.
        for result in results[len(through_a) :]:
            assert isinstance(result, BaseException) or result == (SIZE, expected), result

        readiness = a.gateway.admin_url + "/readyz"

        async def unready() -> bool:
            return await http_status(client, readiness) == 503

        await poll_until(unready, timeout_seconds=10, what="the dead node's gateway unready")

        async def refused() -> bool:
            return not processes.accepts_connections(a.gateway_ports[0])

        await poll_until(refused, timeout_seconds=10, what="the dead node's gateway closed")

        # Every request after it succeeds, POSTs too: nginx cannot connect to the dead pair's
        # gateway, so it sends each request, none of it sent yet, to the live pair.
        served_before = await requests_served(client, b.gateway.admin_url)
        for _ in range(20):
            async with client.get(
                engine_cluster.balancer_url + "/engine-rest/process-definition/count"
            ) as response:
                assert response.status == 200, await response.text()
        new_instance, new_task = engine_api.start_instance(engine_cluster.balancer_url)
        small = engine_api.variable_form(
            PREVIOUS, len(PREVIOUS), value_type="File", filename="previous.txt"
        )
        assert await _upload(client, engine_cluster.balancer_url, new_task, small) == 204
        downloaded = await _download(client, engine_cluster.balancer_url + _data_path(instance_id))
        assert (downloaded.status, downloaded.sha256) == (200, expected)
        async with client.get(b.gateway.base_url + _data_path(new_instance)) as response:
            assert await response.read() == PREVIOUS
        assert await requests_served(client, b.gateway.admin_url) - served_before >= 24
    finally:
        resume.set()
        await asyncio.gather(*runs, return_exceptions=True)
        await _revive(engine_cluster, client, 0)


@pytest.mark.parametrize("moment", ["mid-body", "after-the-last-byte"])
async def test_killing_an_engine_during_an_upload_never_leaves_a_partial_value(
    engine_cluster: Cluster, client: aiohttp.ClientSession, moment: str
) -> None:
    """Mid-body, the engine has not got the file yet: the previous value stays. After the
    last byte reached the engine, it was parsing or storing it: the previous value, or (if
    it committed just before dying) the whole new one, and never anything else."""
    a, b = engine_cluster.nodes
    instance_id, task_id = engine_api.start_instance(b.gateway.base_url)
    previous = engine_api.variable_form(
        PREVIOUS, len(PREVIOUS), value_type="File", filename="previous.txt"
    )
    assert await _upload(client, b.gateway.base_url, task_id, previous) == 204

    form = _file_form(SIZE, seed=12)
    hold_after = 20 * MIB if moment == "mid-body" else form.length
    upload = engine_api.HeldUpload(form, hold_after)
    uploaded_before = await _bytes_uploaded(client, a.gateway.admin_url)
    if moment == "after-the-last-byte":
        upload.resume.set()
    sending = asyncio.create_task(_upload(client, a.gateway.base_url, task_id, form, upload.body()))
    try:
        if moment == "mid-body":
            await asyncio.wait_for(upload.held.wait(), DEADLINE_SECONDS)
            reached = 20 * MIB
        else:
            reached = form.length

        async def forwarded() -> bool:
            return await _bytes_uploaded(client, a.gateway.admin_url) - uploaded_before >= reached

        await poll_until(forwarded, timeout_seconds=DEADLINE_SECONDS, what="bytes forwarded")
        engine_cluster.kill_engine(0)
        upload.resume.set()
        try:
            status: int | BaseException = await sending
        except aiohttp.ClientError as error:
            status = error

        stored = await _download(client, b.gateway.base_url + _data_path(instance_id))
        assert stored.status == 200
        # The surviving node reads the database.
        old, new = hashlib.sha256(PREVIOUS).hexdigest(), engine_api.pseudo_random_sha256(SIZE, 12)
        if moment == "mid-body":
            assert status != 204, "the upload looked stored although its engine died"
            assert stored.sha256 == old, stored
        else:
            assert stored.sha256 in (old, new), stored
            assert status != 204 or stored.sha256 == new, (status, stored)
    finally:
        upload.resume.set()
        await asyncio.gather(sending, return_exceptions=True)
        await _revive(engine_cluster, client, 0)


async def _round_trips(
    client: aiohttp.ClientSession,
    balancer_url: str,
    worker: int,
    stop: asyncio.Event,
    completed: list[int],
) -> None:
    """Upload then download a 20 MB file through nginx, each checked, until `stop`."""
    size = 20_000_000
    instance_id, task_id = engine_api.start_instance(balancer_url)
    round_number = 0
    while not stop.is_set():
        seed = worker * 1000 + round_number
        assert await _upload(client, balancer_url, task_id, _file_form(size, seed)) == 204
        downloaded = await _download(client, balancer_url + _data_path(instance_id))
        assert (downloaded.status, downloaded.length) == (200, size)
        assert downloaded.sha256 == engine_api.pseudo_random_sha256(size, seed)
        completed.append(worker)
        round_number += 1


async def test_draining_one_gateway_under_load_loses_and_cuts_no_transfer(
    engine_cluster: Cluster, client: aiohttp.ClientSession
) -> None:
    a = engine_cluster.nodes[0]
    stop, completed = asyncio.Event(), list[int]()
    workers = [
        asyncio.create_task(_round_trips(client, engine_cluster.balancer_url, n, stop, completed))
        for n in range(4)
    ]
    try:
        await poll_until(
            lambda: _upload_in_flight(client, a.gateway.admin_url),
            timeout_seconds=DEADLINE_SECONDS,
            what="an upload in flight through the gateway to drain",
        )
        os.kill(a.gateway.running.pid, signal.SIGTERM)
        assert await exit_status(a.gateway.running.process, timeout_seconds=DEADLINE_SECONDS) == 0
        after_exit = len(completed)
        await poll_until(
            lambda: len(completed) >= after_exit + 8 or any(w.done() for w in workers),
            timeout_seconds=DEADLINE_SECONDS,
            what="eight more round trips through the other gateway",
        )
    finally:
        stop.set()
        results = await asyncio.gather(*workers, return_exceptions=True)
        engine_cluster.start_gateway(0)
    assert [r for r in results if r is not None] == []
    assert len(completed) >= after_exit + 8
    assert "outcome=drain_abort" not in a.gateway.running.log_path.read_text()


# --- a document store shared by the nodes' gateways ------------------------------------


@pytest.fixture(scope="module")
def seaweed_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[processes.SeaweedFSCluster]:
    with processes.seaweedfs_cluster(tmp_path_factory.mktemp("seaweedfs-cluster")) as started:
        started.create_bucket("documents")
        yield started


@pytest.fixture(scope="module")
def store_gateways(
    engine_cluster: Cluster,
    seaweed_cluster: processes.SeaweedFSCluster,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[list[processes.Gateway]]:
    """A gateway before each node, both storing in the one SeaweedFS, with the same keys."""
    work = tmp_path_factory.mktemp("store-gateways")
    keys = key_file(work, new_key())
    with contextlib.ExitStack() as stack:
        yield [
            stack.enter_context(
                processes.gateway(
                    work,
                    node.engine.base_url,
                    "--document-store",
                    "s3://documents/cluster",
                    "--document-store-endpoint",
                    seaweed_cluster.url,
                    "--document-key-file",
                    str(keys),
                    env=seaweed_cluster.credentials,
                )
            )
            for node in engine_cluster.nodes
        ]


async def test_a_link_made_at_one_gateway_is_served_by_the_other(
    client: aiohttp.ClientSession, store_gateways: list[processes.Gateway]
) -> None:
    """The documents API on a shared store: a document and its link made through one
    gateway, read and followed through the other (same keys, same store)."""
    first, second = store_gateways
    content = b"".join(engine_api.pseudo_random_chunks(5_000_000, 52))
    form = aiohttp.FormData()
    form.add_field("file", content, filename="shared.bin", content_type="text/plain")
    async with client.post(f"{first.base_url}/documents", data=form) as response:
        assert response.status == 201, await response.text()
        made = json.loads(await response.read())
    path = f"/documents/{made['documentId']}?contentHash={made['contentHash']}"
    async with client.post(
        f"{first.base_url}{path.replace('?', '/links?')}", json={"timeToLive": 60_000}
    ) as response:
        assert response.status == 201
        link = json.loads(await response.read())["url"]
    assert link.startswith(first.base_url)
    async with aiohttp.ClientSession() as anonymous:
        for url in (link, link.replace(first.base_url, second.base_url)):
            async with anonymous.get(url) as response:
                assert (response.status, await response.read()) == (200, content)
    async with client.get(second.base_url + path) as response:
        assert (response.status, await response.read()) == (200, content)


async def test_a_document_stored_through_one_pair_downloads_through_the_other_without_a_volume(
    client: aiohttp.ClientSession,
    engine_cluster: Cluster,
    seaweed_cluster: processes.SeaweedFSCluster,
    store_gateways: list[processes.Gateway],
) -> None:
    first, second = store_gateways
    instance_id, _ = engine_api.start_instance(engine_cluster.nodes[0].engine.base_url)
    content = b"".join(engine_api.pseudo_random_chunks(20_000_000, 51))
    stored_through = f"{first.base_url}{_data_path(instance_id)}"
    async with client.put(
        stored_through, data=content, params={"filename": "shared.bin"}
    ) as response:
        assert response.status == 204, await response.text()
    expected = hashlib.sha256(content).hexdigest()
    for gateway in (first, second):
        downloaded = await _download(client, f"{gateway.base_url}{_data_path(instance_id)}")
        assert (downloaded.status, downloaded.sha256) == (200, expected)
    # One of the two volume servers gone: every volume has its copy on the other.
    volume = seaweed_cluster.volumes[0].process
    os.kill(volume.pid, signal.SIGKILL)
    volume.wait(timeout=30)
    for gateway in (second, first):
        downloaded = await _download(client, f"{gateway.base_url}{_data_path(instance_id)}")
        assert (downloaded.status, downloaded.sha256) == (200, expected)
