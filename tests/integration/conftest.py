from __future__ import annotations

import shutil
from collections.abc import Iterator

import aiohttp
import pytest

from tests import processes
from tests.integration import documents, engine_api


@pytest.fixture
def instance(deployment: dict[str, object], engine_process: processes.Running) -> tuple[str, str]:
    """A fresh process instance of the test process: (instance id, user task id)."""
    return engine_api.start_instance(engine_process.base_url)


@pytest.fixture
async def previous(
    client: aiohttp.ClientSession, engine_process: processes.Running, instance: tuple[str, str]
) -> tuple[str, str]:
    """A fresh instance whose task variable `doc` holds engine_api.PREVIOUS as a File, set
    on the engine directly: what a refused upload must leave behind."""
    _, task_id = instance
    value = engine_api.PREVIOUS
    form = engine_api.variable_form(value, len(value), value_type="File", filename="doc.bin")
    url = f"{engine_process.base_url}/engine-rest/task/{task_id}/variables/doc/data"
    status, text = await engine_api.post_form(client, url, form)
    assert status == 204, text
    return instance


@pytest.fixture(scope="module")
def clamd_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[processes.Clamd]:
    with processes.clamd(tmp_path_factory.mktemp("clamd")) as started:
        yield started


@pytest.fixture(scope="module")
def scanning_gateway(
    engine_process: processes.Running,
    clamd_process: processes.Clamd,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[processes.Gateway]:
    """The gateway scanning uploads and downloads with clamd over TCP, failing closed (the
    default)."""
    with processes.gateway(
        tmp_path_factory.mktemp("gateway"),
        engine_process.base_url,
        "--clamd",
        clamd_process.tcp_url,
        "--clamd-scan-downloads",
        "on",
    ) as started:
        yield started


@pytest.fixture(scope="module", params=["file", "s3"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[documents.Backend]:
    """A document store of each kind, empty for each module: a directory, or a bucket in a
    SeaweedFS of its own."""
    if request.param == "file":
        root = tmp_path_factory.mktemp("documents")
        yield documents.Backend("file", ("--document-store", f"file://{root}"), root=root)
        shutil.rmtree(root, ignore_errors=True)  # gigabytes of test files
        return
    with processes.seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as seaweed:
        bucket = "documents"
        seaweed.create_bucket(bucket)
        args = (
            "--document-store",
            f"s3://{bucket}/gateway",
            "--document-store-endpoint",
            seaweed.url,
        )
        yield documents.Backend("s3", args, s3=seaweed, bucket=bucket, prefix="gateway/")
