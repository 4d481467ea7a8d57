"""Every binary endpoint in the route table, through the gateway, against the real engine:
upload where the endpoint takes one, download, SHA-256 equal."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from yarl import URL

from gateway.transfer import CHUNK_BYTES
from tests import processes
from tests.integration import engine_api

SIZES = [0, 1, CHUNK_BYTES - 1, CHUNK_BYTES, CHUNK_BYTES + 1, 10_000_000]
CMMN = engine_api.BPMN.parent / "case.cmmn"


@dataclass(frozen=True)
class Subject:
    client: aiohttp.ClientSession
    gateway: str
    engine: str
    instance_id: str
    task_id: str
    execution_id: str


def yarl_url(url: str) -> URL:
    """The URL exactly as written: percent-escapes kept, nothing re-encoded or decoded."""
    return URL(url, encoded=True)


async def _json(client: aiohttp.ClientSession, url: str) -> Any:
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        return json.loads(await response.read())


async def _post_form(
    client: aiohttp.ClientSession, url: str | URL, form: engine_api.Form, expected: int = 204
) -> Any:
    async with client.post(
        url,
        data=form.stream(),
        headers={"Content-Type": form.content_type, "Content-Length": str(form.length)},
    ) as response:
        assert response.status == expected, await response.text()
        raw = await response.read()
    return json.loads(raw) if raw else None


async def _sha_of_download(client: aiohttp.ClientSession, url: str | URL) -> tuple[str, int]:
    digest, length = hashlib.sha256(), 0
    async with client.get(url) as response:
        assert response.status == 200, await response.text()
        async for chunk in response.content.iter_chunked(1 << 20):
            digest.update(chunk)
            length += len(chunk)
    return digest.hexdigest(), length


def _file_form(size: int, seed: int) -> engine_api.Form:
    return engine_api.variable_form(
        engine_api.pseudo_random_chunks(size, seed), size, value_type="File", filename="f.bin"
    )


async def _upload_variable(s: Subject, upload: str, size: int, seed: int) -> None:
    await _post_form(s.client, s.gateway + upload, _file_form(size, seed))


Route = Callable[[Subject, int, int], Awaitable[str]]


def variable_route(upload: str, download: str) -> Route:
    async def run(s: Subject, size: int, seed: int) -> str:
        names = {"pi": s.instance_id, "task": s.task_id, "exec": s.execution_id, "var": "v"}
        await _upload_variable(s, upload.format(**names), size, seed)
        return download.format(**names)

    return run


async def _upload_then_find(s: Subject, size: int, seed: int, query: str) -> str:
    """Uploads `v` on the process instance, then finds an id with an engine query."""
    upload = f"/engine-rest/process-instance/{s.instance_id}/variables/v/data"
    await _upload_variable(s, upload, size, seed)
    found = await _json(s.client, f"{s.engine}/engine-rest/{query.format(pi=s.instance_id)}")
    return str(found[-1]["id"])


async def variable_instance(s: Subject, size: int, seed: int) -> str:
    query = "variable-instance?processInstanceIdIn={pi}&variableName=v"
    return f"/engine-rest/variable-instance/{await _upload_then_find(s, size, seed, query)}/data"


async def history_variable_instance(s: Subject, size: int, seed: int) -> str:
    query = "history/variable-instance?processInstanceId={pi}&variableName=v"
    found = await _upload_then_find(s, size, seed, query)
    return f"/engine-rest/history/variable-instance/{found}/data"


async def history_detail(s: Subject, size: int, seed: int) -> str:
    query = "history/detail?processInstanceId={pi}&variableUpdates=true&deserializeValues=false"
    return f"/engine-rest/history/detail/{await _upload_then_find(s, size, seed, query)}/data"


async def deployment_resource(s: Subject, size: int, seed: int) -> str:
    boundary = "----gatewaydeploy" + uuid.uuid4().hex
    name = engine_api.part_head(boundary, True, 'form-data; name="deployment-name"', "text/plain")
    blob = engine_api.part_head(
        boundary, False, 'form-data; name="blob"; filename="blob.bin"', "application/octet-stream"
    )
    form = engine_api.Form(
        boundary,
        ((name, b"blob", 4), (blob, engine_api.pseudo_random_chunks(size, seed), size)),
    )
    deployed = await _post_form(s.client, s.gateway + "/engine-rest/deployment/create", form, 200)
    resources = await _json(
        s.client, f"{s.engine}/engine-rest/deployment/{deployed['id']}/resources"
    )
    return f"/engine-rest/deployment/{deployed['id']}/resources/{resources[0]['id']}/data"


async def task_attachment(s: Subject, size: int, seed: int) -> str:
    boundary = "----gatewayattach" + uuid.uuid4().hex
    name = engine_api.part_head(boundary, True, 'form-data; name="attachment-name"', "text/plain")
    kind = engine_api.part_head(boundary, False, 'form-data; name="attachment-type"', "text/plain")
    content = engine_api.part_head(
        boundary, False, 'form-data; name="content"; filename="a.bin"', "application/octet-stream"
    )
    form = engine_api.Form(
        boundary,
        (
            (name, b"scan", 4),
            (kind, b"application/octet-stream", 24),
            (content, engine_api.pseudo_random_chunks(size, seed), size),
        ),
    )
    created = await _post_form(
        s.client, f"{s.gateway}/engine-rest/task/{s.task_id}/attachment/create", form, 200
    )
    return f"/engine-rest/task/{s.task_id}/attachment/{created['id']}/data"


ROUTES: dict[str, Route] = {
    "process-instance variables": variable_route(
        "/engine-rest/process-instance/{pi}/variables/{var}/data",
        "/engine-rest/process-instance/{pi}/variables/{var}/data",
    ),
    "task variables": variable_route(
        "/engine-rest/task/{task}/variables/{var}/data",
        "/engine-rest/task/{task}/variables/{var}/data",
    ),
    "task localVariables": variable_route(
        "/engine-rest/task/{task}/localVariables/{var}/data",
        "/engine-rest/task/{task}/localVariables/{var}/data",
    ),
    "execution localVariables": variable_route(
        "/engine-rest/execution/{exec}/localVariables/{var}/data",
        "/engine-rest/execution/{exec}/localVariables/{var}/data",
    ),
    "named engine": variable_route(
        "/engine-rest/engine/default/task/{task}/variables/{var}/data",
        "/engine-rest/engine/default/process-instance/{pi}/variables/{var}/data",
    ),
    "variable-instance": variable_instance,
    "history variable-instance": history_variable_instance,
    "history detail": history_detail,
    "deployment resource": deployment_resource,
    "task attachment": task_attachment,
}


@pytest.fixture
async def subject(
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> Subject:
    instance_id, task_id = instance
    task = await _json(client, f"{engine_process.base_url}/engine-rest/task/{task_id}")
    return Subject(
        client,
        gateway_process.base_url,
        engine_process.base_url,
        instance_id,
        task_id,
        task["executionId"],
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("route", ROUTES, ids=list(ROUTES))
async def test_binary_route_round_trips_byte_identical(
    route: str, size: int, subject: Subject
) -> None:
    seed = size + len(route)
    download = await ROUTES[route](subject, size, seed)
    through_gateway = await _sha_of_download(subject.client, subject.gateway + download)
    assert through_gateway == (engine_api.pseudo_random_sha256(size, seed), size)


async def test_200_mb_file_variable_round_trips_byte_identical(subject: Subject) -> None:
    size = 200_000_000
    download = await ROUTES["process-instance variables"](subject, size, 11)
    through_gateway = await _sha_of_download(subject.client, subject.gateway + download)
    assert through_gateway == (engine_api.pseudo_random_sha256(size, 11), size)


@pytest.fixture(scope="module")
def case_deployment(gateway_process: processes.Gateway) -> None:
    boundary = "----gatewaycase" + uuid.uuid4().hex
    content = CMMN.read_bytes()
    form = engine_api.Form(
        boundary,
        (
            (
                engine_api.part_head(
                    boundary, True, f'form-data; name="data"; filename="{CMMN.name}"', "text/xml"
                ),
                content,
                len(content),
            ),
        ),
    )
    engine_api.call(
        gateway_process.base_url, "POST", "/deployment/create", form.small_body(), form.content_type
    )


@pytest.mark.parametrize("size", [0, CHUNK_BYTES + 1])
@pytest.mark.parametrize(
    ("upload", "download"),
    [
        ("case-instance/{case}/variables/v/data", "case-instance/{case}/variables/v/data"),
        ("case-execution/{case}/variables/v/data", "case-execution/{case}/variables/v/data"),
        (
            "case-execution/{task}/localVariables/v/data",
            "case-execution/{task}/localVariables/v/data",
        ),
    ],
)
async def test_case_variable_routes_round_trip(
    upload: str, download: str, size: int, case_deployment: None, subject: Subject
) -> None:
    case = engine_api.call(subject.engine, "POST", "/case-definition/key/gatewayCase/create", b"{}")
    executions = engine_api.call(
        subject.engine, "GET", f"/case-execution?caseInstanceId={case['id']}"
    )
    task = next(e for e in executions if e["activityType"] == "humanTask")
    names = {"case": case["id"], "task": task["id"]}
    await _upload_variable(subject, "/engine-rest/" + upload.format(**names), size, 5)
    result = await _sha_of_download(
        subject.client, subject.gateway + "/engine-rest/" + download.format(**names)
    )
    assert result == (engine_api.pseudo_random_sha256(size, 5), size)


async def test_head_answers_as_the_engine_does(subject: Subject) -> None:
    download = await ROUTES["process-instance variables"](subject, 1000, 1)
    answers = []
    for base in (subject.engine, subject.gateway):
        async with subject.client.head(base + download) as response:
            answers.append(
                (
                    response.status,
                    response.headers.get("Content-Type"),
                    response.headers.get("Content-Disposition"),
                    response.headers.get("Cache-Control"),
                    await response.read(),
                )
            )
    engine, gateway = answers
    assert gateway[0] == 200
    assert engine[2] == "attachment; filename=\"f.bin\"; filename*=UTF-8''f.bin"
    assert gateway[2] == 'attachment; filename="f.bin"'  # the same name, said once
    assert engine[:2] + engine[3:] == gateway[:2] + gateway[3:]


@pytest.mark.parametrize(
    ("encoded", "name"),
    [("r%C3%A9sum%C3%A9", "résumé"), ("a%2Fb", "a/b"), ("a%20b", "a b"), ("a%25b", "a%b")],
)
async def test_variable_names_are_decoded_once_by_the_engine(
    encoded: str, name: str, subject: Subject
) -> None:
    path = f"/engine-rest/process-instance/{subject.instance_id}/variables/{encoded}/data"
    await _post_form(
        subject.client,
        yarl_url(subject.gateway + path),
        _file_form(1000, 3),
    )
    stored = engine_api.call(
        subject.engine, "GET", f"/process-instance/{subject.instance_id}/variables"
    )
    assert name in stored
    result = await _sha_of_download(subject.client, yarl_url(subject.gateway + path))
    assert result == (engine_api.pseudo_random_sha256(1000, 3), 1000)
