"""Files in JSON bodies: File and Bytes values, base64, through every JSON door of the route
table, with the real engine and Debian's clamd on the project's EICAR signatures.

Each door is reached as a client reaches it (json_doors.py): an EICAR file is refused with
422 and the engine stores nothing; a clean one is stored byte for byte. The engine's own
decoding of edge cases is compared with the gateway's, request by request."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from gateway import routes
from gateway.jsonvalues import Place
from tests import processes
from tests.cluster.nodes import metric_sum
from tests.faults.polling import poll_until
from tests.integration import json_doors
from tests.processes import EICAR

PLACES = [
    pytest.param(
        door.method, door.path, place, id=f"{door.method} {door.path} {'.'.join(place) or '.'}"
    )
    for door in routes.JSON_DOORS
    for place in door.up
]
CLEAN = random.Random(19).randbytes(100_000)  # over jsonfiles.JSON_SCAN_AFTER_BYTES


@pytest.fixture(scope="module")
def json_deployment(engine_process: processes.Running) -> dict[str, Any]:
    return json_doors.deploy(engine_process.base_url)


def _name() -> str:
    return "doc" + uuid.uuid4().hex[:12]


def _value(type_name: str, content: bytes, *, value_first: bool = False) -> dict[str, Any]:
    encoded = base64.b64encode(content).decode()
    value: dict[str, Any] = (
        {"value": encoded, "type": type_name}
        if value_first
        else {
            "type": type_name,
            "value": encoded,
        }
    )
    if type_name == "File":
        value["valueInfo"] = {"filename": "report.pdf", "mimeType": "application/pdf"}
    return value


async def _send(
    client: aiohttp.ClientSession, base_url: str, method: str, path: str, body: bytes
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    async with client.request(
        method, base_url + "/engine-rest" + path, data=body, headers=headers
    ) as r:
        raw = await r.read()
        try:
            return r.status, json.loads(raw) if raw else None
        except ValueError:
            return r.status, raw.decode(errors="replace")


def test_every_json_door_in_the_route_table_has_a_scenario() -> None:
    doors = {(door.method, door.path) for door in routes.JSON_DOORS if door.up}
    assert doors == set(json_doors.DOORS)


async def _through_door(
    client: aiohttp.ClientSession,
    gateway: processes.Gateway,
    engine: str,
    door_at: tuple[str, str, Place],
    value: dict[str, Any],
    name: str,
) -> tuple[json_doors.Door, int, Any]:
    """The door reached at `engine`, and `value` sent through it via the gateway."""
    method, path, place = door_at
    door = json_doors.prepare(method, path, place, engine, name)
    body = door.request_body(place, name, value)
    status, answer = await _send(client, gateway.base_url, door.method, door.path, body)
    return door, status, answer


@pytest.mark.usefixtures("json_deployment")
@pytest.mark.parametrize("type_name", ["File", "Bytes"])
@pytest.mark.parametrize(("method", "path", "place"), PLACES)
async def test_eicar_in_json_is_refused_at_every_door_and_nothing_is_stored(
    method: str,
    path: str,
    place: Place,
    type_name: str,
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    engine, name = engine_process.base_url, _name()
    _, status, error = await _through_door(
        client, scanning_gateway, engine, (method, path, place), _value(type_name, EICAR), name
    )
    assert status == 422, error
    assert error["type"] == "MalwareFoundException"
    assert f"The {type_name} value of variable {name!r}" in error["message"]
    assert "EngineGateway.Test.EICAR" in error["message"]
    assert json_doors.stored(engine, name) == []


@pytest.mark.usefixtures("json_deployment")
@pytest.mark.parametrize("type_name", ["File", "Bytes"])
@pytest.mark.parametrize(("method", "path", "place"), PLACES)
async def test_a_clean_file_in_json_passes_every_door_and_is_stored_byte_identical(
    method: str,
    path: str,
    place: Place,
    type_name: str,
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    engine, name = engine_process.base_url, _name()
    door, status, answer = await _through_door(
        client, scanning_gateway, engine, (method, path, place), _value(type_name, CLEAN), name
    )
    if not door.stores:
        assert status == door.status, answer
        return
    assert status < 300, answer
    if door.batch:
        await poll_until(
            lambda: bool(json_doors.stored(engine, name)),
            timeout_seconds=json_doors.BATCH_SECONDS,
            what="the batch to set the variable",
        )
    assert json_doors.stored(engine, name) == [CLEAN]


@pytest.mark.usefixtures("json_deployment")
async def test_a_worker_that_completes_with_eicar_gets_422_and_its_task_stays_open(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    """As Camunda's external task clients do it: fetchAndLock through the gateway, then
    complete with the file in `variables`."""
    engine, gateway = engine_process.base_url, scanning_gateway.base_url
    business_key = _name()
    json_doors.start(engine, "gatewayJsonExternal", business_key)
    topic = {"topicName": json_doors.TOPIC, "lockDuration": 600000, "businessKey": business_key}
    fetch = {"workerId": json_doors.WORKER, "maxTasks": 1, "topics": [topic]}
    status, locked = await _send(
        client, gateway, "POST", "/external-task/fetchAndLock", json.dumps(fetch).encode()
    )
    assert status == 200, locked
    task_id = locked[0]["id"]

    name = _name()
    completion = {"workerId": json_doors.WORKER, "variables": {name: _value("File", EICAR)}}
    path = f"/external-task/{task_id}/complete"
    status, error = await _send(client, gateway, "POST", path, json.dumps(completion).encode())
    assert status == 422, error
    assert error["type"] == "MalwareFoundException"
    assert (
        json_doors.call(engine, "GET", f"/external-task/{task_id}")["workerId"] == json_doors.WORKER
    )

    completion["variables"] = {name: _value("File", CLEAN)}
    status, answer = await _send(client, gateway, "POST", path, json.dumps(completion).encode())
    assert status == 204, answer
    assert json_doors.call(engine, "GET", f"/external-task?externalTaskId={task_id}") == []
    assert json_doors.stored(engine, name) == [CLEAN]


@pytest.mark.parametrize("type_name", ["File", "Bytes"])
@pytest.mark.parametrize("content", [EICAR, CLEAN], ids=["eicar", "clean"])
async def test_a_value_before_its_type_is_scanned_all_the_same(
    type_name: str,
    content: bytes,
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    name = _name()
    path = f"/process-instance/{instance_id}/variables/{name}"
    body = json.dumps(_value(type_name, content, value_first=True)).encode()
    status, answer = await _send(client, scanning_gateway.base_url, "PUT", path, body)
    if content == EICAR:
        assert status == 422, answer
        assert json_doors.stored(engine_process.base_url, name) == []
    else:
        assert status == 204, answer
        assert json_doors.stored(engine_process.base_url, name) == [CLEAN]


async def test_eicar_inside_a_large_file_in_json_is_found_while_it_streams(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    filler = random.Random(4).randbytes(4 << 20)
    content = filler[: 2 << 20] + EICAR + filler[2 << 20 :]
    instance_id, _ = instance
    name = _name()
    body = json.dumps({"modifications": {name: _value("File", content)}}).encode()
    path = f"/process-instance/{instance_id}/variables"
    status, error = await _send(client, scanning_gateway.base_url, "POST", path, body)
    assert status == 422, error
    assert "EngineGateway.Test.EICAR-Body" in error["message"]
    assert json_doors.stored(engine_process.base_url, name) == []


async def test_files_in_json_are_counted_logged_and_scanned_by_their_door(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    admin = scanning_gateway.admin_url
    files = (
        'engine_gateway_json_files_total{direction="upload",route="json_variables",type="Bytes"}'
    )
    size = 'engine_gateway_json_file_bytes_total{direction="upload",route="json_variables"}'
    found = 'engine_gateway_scans_total{direction="upload",door="json",outcome="found"}'
    before = [await metric_sum(client, admin, series) for series in (files, size, found)]
    name = _name()
    path = f"/process-instance/{instance_id}/variables/{name}"
    status, _ = await _send(
        client, scanning_gateway.base_url, "PUT", path, json.dumps(_value("Bytes", EICAR)).encode()
    )
    assert status == 422
    after = [await metric_sum(client, admin, series) for series in (files, size, found)]
    assert after == [before[0] + 1, before[1] + len(EICAR), before[2] + 1]

    def logged() -> bool:
        log = scanning_gateway.running.log_path.read_text()
        return any(
            name in line and "json_files=1" in line and "scan=found:EngineGateway" in line
            for line in log.splitlines()
        )

    await poll_until(logged, timeout_seconds=10, what="the request's log line")
    assert EICAR.decode() not in scanning_gateway.running.log_path.read_text()


# Values as the engine's Java strings, and JSON literals, whose decoding differs between
# decoders and engines (tests/unit/test_base64decoding.py has what each engine did).
EDGE_VALUES = [
    *(
        json.dumps(value)
        for value in [
            "QUJD", "QUJ", "QUI=", "QQ==", "QQ=", "QQ===", "Q", "QR==", "QUJD\nQUJD", "QU\nJD",
            "QUJD QUJD", " QUJD", "QUJD\r\nQUJD", "@@@@", "QUJD====", "QQ==QUJD", 'QUJD"xyz',
            "QU\\u004aD", "QUJD\\n", "-_-_", "", "QUJD\t", "QUJD\\", '"', "QUJD\u00e9",
        ]
    ),
    "true", "false", "12345678", "-1234", "1e400", "null",
]  # fmt: skip


async def _put_variable(
    client: aiohttp.ClientSession, base_url: str, instance_id: str, name: str, body: bytes
) -> tuple[int, Any]:
    path = f"/process-instance/{instance_id}/variables/{name}"
    return await _send(client, base_url, "PUT", path, body)


@pytest.mark.parametrize("type_name", ["File", "Bytes"])
@pytest.mark.parametrize("value", EDGE_VALUES)
async def test_the_gateway_takes_every_value_the_engine_takes_and_stores_the_same_bytes(
    value: str,
    type_name: str,
    client: aiohttp.ClientSession,
    gateway_process: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    """The same PUT direct and through the gateway: what the engine stores direct, it
    stores through the gateway; what it refuses direct, the gateway refuses with a 400
    that names the value (the engine's own 400 is often empty, its 500 says less)."""
    instance_id, _ = instance
    info = ', "valueInfo": {"filename": "edge.bin"}' if type_name == "File" else ""
    body = f'{{"type": "{type_name}", "value": {value}{info}}}'.encode()
    engine = engine_process.base_url
    direct, through = _name(), _name()
    direct_status, direct_answer = await _put_variable(client, engine, instance_id, direct, body)
    status, answer = await _put_variable(
        client, gateway_process.base_url, instance_id, through, body
    )
    if direct_status == 204:
        assert status == 204, answer
        assert json_doors.stored(engine, through) == json_doors.stored(engine, direct)
        return
    assert json_doors.stored(engine, through) == []
    literal = not value.startswith('"')
    if type_name == "File" and literal:
        assert status == direct_status  # not a base64 question: the engine's own answer
        return
    assert direct_status in (400, 500), direct_answer
    assert status == 400, answer
    assert answer["type"] == "InvalidRequestException"
    assert f"The {type_name} value of variable {through!r} is not valid base64" in answer["message"]


async def test_a_file_of_the_engines_largest_json_string_is_stored(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    """20,000,000 base64 characters (15,000,000 bytes): Jackson's limit, and not over it."""
    instance_id, _ = instance
    for size in (14_999_997, 15_000_000):
        content = random.Random(size).randbytes(size)
        name = _name()
        body = json.dumps(_value("File", content)).encode()
        status, answer = await _put_variable(
            client, scanning_gateway.base_url, instance_id, name, body
        )
        assert status == 204, answer
        assert json_doors.stored(engine_process.base_url, name) == [content]


async def test_a_file_over_the_engines_json_string_limit_is_refused_before_the_engine_has_it(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    name = _name()
    body = json.dumps(_value("File", bytes(15_000_003))).encode()
    cut = body.index(b'"value": "') + 20_000_100  # past the limit, before the body's end
    release = asyncio.Event()

    async def held() -> AsyncIterator[bytes]:
        yield body[:cut]
        await release.wait()  # set only once the answer is in
        yield body[cut:]

    url = f"{scanning_gateway.base_url}/engine-rest/process-instance/{instance_id}/variables/{name}"
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body))}

    async def put() -> tuple[int, Any]:
        async with client.put(url, data=held(), headers=headers) as response:
            return response.status, await response.json()

    status, error = await asyncio.wait_for(put(), timeout=60)
    release.set()
    assert status == 400
    assert error["type"] == "InvalidRequestException"
    assert "limit of 20,000,000 characters" in error["message"]
    assert "/data" in error["message"]
    assert json_doors.stored(engine_process.base_url, name) == []


async def _get(client: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with client.get(url, headers={"Accept": "application/json"}) as response:
        return response.status, await response.read()


async def test_bytes_values_in_the_engines_json_answers_are_scanned(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    """With --clamd-scan-downloads: a variable read back as JSON (the engine sends Bytes
    values base64 in it) is refused when infected, and passes unchanged when clean."""
    engine, gateway = engine_process.base_url, scanning_gateway.base_url
    instance_id, _ = instance
    infected, clean = _name(), _name()
    # Both small: the whole answer is read, and a 422 can still be answered.
    for name, content in ((clean, CLEAN[:1000]), (infected, EICAR)):
        status, answer = await _put_variable(
            client, engine, instance_id, name, json.dumps(_value("Bytes", content)).encode()
        )
        assert status == 204, answer
    variables = f"/engine-rest/process-instance/{instance_id}/variables"
    for path in (variables, f"{variables}/{infected}"):
        status, raw = await _get(client, gateway + path)
        assert status == 422, raw
        error = json.loads(raw)
        assert error["type"] == "MalwareFoundException"
        assert f"variable {infected!r}" in error["message"]
    status, raw = await _get(client, f"{gateway}{variables}/{clean}")
    assert status == 200
    assert raw == (await _get(client, f"{engine}{variables}/{clean}"))[1]


@pytest.mark.usefixtures("json_deployment")
async def test_a_worker_fetching_an_infected_bytes_variable_gets_422(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    engine = engine_process.base_url
    business_key = _name()
    instance_id = json_doors.start(engine, "gatewayJsonExternal", business_key)
    name = _name()
    status, answer = await _put_variable(
        client, engine, instance_id, name, json.dumps(_value("Bytes", EICAR)).encode()
    )
    assert status == 204, answer
    topic = {
        "topicName": json_doors.TOPIC,
        "lockDuration": 600000,
        "businessKey": business_key,
        "variables": [name],
    }
    fetch = {"workerId": json_doors.WORKER, "maxTasks": 1, "topics": [topic]}
    status, error = await _send(
        client,
        scanning_gateway.base_url,
        "POST",
        "/external-task/fetchAndLock",
        json.dumps(fetch).encode(),
    )
    assert status == 422, error
    assert error["type"] == "MalwareFoundException"


async def test_a_large_json_answer_with_an_infected_value_is_cut_before_its_end(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    engine = engine_process.base_url
    instance_id, _ = instance
    for name, content in ((_name(), random.Random(5).randbytes(1 << 20)), (_name(), EICAR)):
        status, answer = await _put_variable(
            client, engine, instance_id, name, json.dumps(_value("Bytes", content)).encode()
        )
        assert status == 204, answer
    url = f"{scanning_gateway.base_url}/engine-rest/process-instance/{instance_id}/variables"
    complete = len((await _get(client, url.replace(scanning_gateway.base_url, engine)))[1])
    received = 0

    async def read() -> None:
        nonlocal received
        async with client.get(url) as response:
            assert response.status == 200  # its headers went before its values were scanned
            async for chunk in response.content.iter_any():
                received += len(chunk)

    with pytest.raises(aiohttp.ClientPayloadError):
        await read()
    assert received < complete


async def test_a_value_read_two_ways_before_its_type_cannot_be_vouched_for_and_fails_closed(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
    instance: tuple[str, str],
) -> None:
    """`QQ==QUJD` is `AABC` to Jackson (a Bytes value) and `A` to commons-codec (Camunda's
    File): with the value before its type, the gateway scanned the one it could not know
    would be stored, so it says so as clamd failing to judge would."""
    instance_id, _ = instance
    name = _name()
    body = b'{"value": "QQ==QUJD", "type": "Bytes"}'
    status, error = await _put_variable(client, scanning_gateway.base_url, instance_id, name, body)
    assert status == 503, error
    assert error["type"] == "ScanUnavailableException"
    assert "reads two ways" in error["message"]
    assert json_doors.stored(engine_process.base_url, name) == []


@pytest.mark.usefixtures("json_deployment")
async def test_path_parameters_do_not_let_a_file_in_json_around_the_scanner(
    client: aiohttp.ClientSession,
    scanning_gateway: processes.Gateway,
    engine_process: processes.Running,
) -> None:
    engine, name = engine_process.base_url, _name()
    task_id = json_doors.task_of(engine, json_doors.start(engine, "gatewayJsonTask"))
    body = json.dumps({"variables": {name: _value("File", EICAR)}}).encode()
    path = f"/task;x/{task_id}/complete;y=1"
    status, error = await _send(client, scanning_gateway.base_url, "POST", path, body)
    assert status == 422, error
    assert json_doors.stored(engine, name) == []
