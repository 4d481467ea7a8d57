"""The gateway is transparent: the engine's answers reach the client unchanged."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import pytest

from tests import processes
from tests.integration import engine_api

# Per-connection or per-server fields; everything else must be identical.
NOT_COMPARED = {"date", "server", "connection", "keep-alive", "transfer-encoding"}
SAME_HOST = "engine.test:8080"  # so links the engine builds from Host are the same both ways


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...]


async def _ask(
    client: aiohttp.ClientSession,
    base_url: str,
    method: str,
    path: str,
    body: bytes | None,
    authorized: bool,
) -> Answer:
    headers = {"Host": SAME_HOST, "Authorization": engine_api.AUTHORIZATION}
    if not authorized:
        del headers["Authorization"]
    if body is not None:
        headers["Content-Type"] = "application/json"
    async with client.request(
        method, base_url + "/engine-rest" + path, data=body, headers=headers
    ) as response:
        raw = await response.read()
        fields = sorted(
            (name.lower(), value)
            for name, value in response.headers.items()
            if name.lower() not in NOT_COMPARED
        )
        return Answer(response.status, raw, tuple(fields))


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: bytes | None = None
    authorized: bool = True


@pytest.fixture(scope="module")
def subject(deployment: dict[str, object], engine_process: processes.Running) -> dict[str, str]:
    instance_id, task_id = engine_api.start_instance(engine_process.base_url)
    engine_api.call(
        engine_process.base_url,
        "PUT",
        f"/process-instance/{instance_id}/variables/customer",
        b'{"value": "Ada \\u00e9", "type": "String"}',
    )
    return {"instance": instance_id, "task": task_id, "deployment": str(deployment["id"])}


CORPUS = [
    Call("GET", "/engine"),
    Call("GET", "/version"),
    Call("GET", "/process-definition"),
    Call("GET", "/process-definition/count"),
    Call("GET", "/process-definition/key/gatewayTest"),
    Call("GET", "/process-definition/key/gatewayTest/xml"),
    Call("GET", "/process-definition/key/doesNotExist"),
    Call("GET", "/deployment?sortBy=deploymentTime&sortOrder=asc"),
    Call("GET", "/deployment/count"),
    Call("GET", "/deployment/{deployment}/resources"),
    Call("GET", "/process-instance/{instance}"),
    Call("POST", "/process-instance", b'{"processInstanceIds": ["{instance}"]}'),
    Call("GET", "/process-instance/{instance}/variables"),
    Call("GET", "/process-instance/{instance}/variables?deserializeValues=false"),
    Call("GET", "/process-instance/{instance}/variables/customer"),
    Call("GET", "/process-instance/{instance}/variables/missing"),
    Call("GET", "/process-instance/{instance}/variables/customer/data"),
    Call("PUT", "/process-instance/{instance}/variables/customer", b'{"value": "Ada \\u00e9"}'),
    Call("GET", "/task?processInstanceId={instance}"),
    Call("GET", "/task/{task}"),
    Call("GET", "/task/doesNotExist"),
    Call("GET", "/task/{task}/form-variables"),
    Call("GET", "/history/process-instance?processInstanceId={instance}"),
    Call("GET", "/history/variable-instance?processInstanceId={instance}"),
    Call("POST", "/process-definition/key/gatewayTest/start", b"{not json"),
    Call("GET", "/user?id=demo"),
    Call("GET", "/identity/groups?userId=demo"),
    Call("GET", "/engine/default/process-definition/count"),
    Call("GET", "/engine/nosuchengine/process-definition/count"),
    Call("GET", "/process-definition", authorized=False),
    Call("POST", "/process-instance/{instance}/variables", b"{}", authorized=False),
]


@pytest.mark.parametrize("call", CORPUS, ids=[f"{c.method} {c.path}" for c in CORPUS])
async def test_engine_answers_pass_unchanged(
    call: Call,
    subject: dict[str, str],
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    path = call.path.format(**subject)
    body = call.body.replace(b"{instance}", subject["instance"].encode()) if call.body else None
    async with aiohttp.ClientSession(auto_decompress=False) as client:
        direct = await _ask(
            client, engine_process.base_url, call.method, path, body, call.authorized
        )
        through = await _ask(
            client, gateway_process.base_url, call.method, path, body, call.authorized
        )
    assert through == direct


async def test_corpus_covers_successes_and_failures(
    subject: dict[str, str], engine_process: processes.Running
) -> None:
    statuses = set()
    async with aiohttp.ClientSession() as client:
        for call in CORPUS:
            path = call.path.format(**subject)
            body = (
                call.body.replace(b"{instance}", subject["instance"].encode())
                if call.body
                else None
            )
            statuses.add(
                (
                    await _ask(
                        client, engine_process.base_url, call.method, path, body, call.authorized
                    )
                ).status
            )
    assert {200, 204, 400, 401, 404} <= statuses


async def test_unauthenticated_request_gets_the_engines_401_challenge(
    gateway_process: processes.Gateway,
) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(gateway_process.base_url + "/engine-rest/task") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")


async def test_engine_root_answers_without_credentials(gateway_process: processes.Gateway) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(gateway_process.base_url + "/engine-rest/engine") as response:
            assert response.status == 200
            assert await response.json() == [{"name": "default"}]


async def test_readiness_follows_the_engine(gateway_process: processes.Gateway) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(gateway_process.admin_url + "/readyz") as response:
            assert response.status == 200
        async with client.get(gateway_process.admin_url + "/livez") as response:
            assert response.status == 200
