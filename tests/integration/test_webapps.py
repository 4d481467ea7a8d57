"""Cockpit, Tasklist and Admin through the gateway, against the real engine with its webapps:
their sessions and CSRF tokens pass untouched, their engine API (/{app}/api/engine/engine/
{name}) gets the route table as /engine-rest does (downloads named, uploads validated and
scanned), and everything else they serve passes as it is."""

from __future__ import annotations

import base64
import re
from http.cookies import SimpleCookie

import aiohttp
import pytest
from multidict import CIMultiDictProxy

from tests import processes
from tests.integration import engine_api, webapps
from tests.integration.test_download_names import CONTENT, DROPPED_BY_THE_ENGINE, NAMES
from tests.processes import EICAR


def _cookie_attributes(headers: CIMultiDictProxy[str]) -> dict[str, dict[str, str]]:
    """Each Set-Cookie's attributes but its value (which differs from session to session)."""
    found = {}
    for line in headers.getall("Set-Cookie", []):
        cookie = SimpleCookie()
        cookie.load(line)
        for name, morsel in cookie.items():
            found[name] = {key: value for key, value in morsel.items() if value}
    return found


async def _login_answer(base_url: str) -> tuple[int, CIMultiDictProxy[str]]:
    """The login page's and the login call's headers, for a client with no session."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
        async with client.get(f"{base_url}{webapps.WEBAPP}/app/cockpit/default/") as page:
            token = page.cookies["XSRF-TOKEN"].value
        async with client.post(
            f"{base_url}{webapps.WEBAPP}/api/admin/auth/user/default/login/cockpit",
            data={"username": "demo", "password": "demo"},
            headers={"X-XSRF-TOKEN": token},
        ) as login:
            return login.status, login.headers


async def test_the_login_sets_the_engines_cookies_through_the_gateway_unchanged(
    engine_process: processes.Running, gateway_process: processes.Gateway
) -> None:
    direct_status, direct = await _login_answer(engine_process.base_url)
    status, through = await _login_answer(gateway_process.base_url)
    assert (status, direct_status) == (200, 200)
    assert _cookie_attributes(through) == _cookie_attributes(direct)
    assert _cookie_attributes(through)["JSESSIONID"] == {
        "path": "/",
        "httponly": True,
        "samesite": "Lax",
    }  # as the engine sets it: Path, HttpOnly and SameSite kept


async def test_a_redirect_points_at_the_gateway(
    engine_process: processes.Running, gateway_process: processes.Gateway
) -> None:
    """The engine builds Location from the Host it is sent: the client's, so the gateway."""
    locations = []
    for base_url in (engine_process.base_url, gateway_process.base_url):
        async with aiohttp.ClientSession() as client:
            async with client.get(f"{base_url}{webapps.WEBAPP}/", allow_redirects=False) as r:
                assert r.status == 302
                locations.append(r.headers["Location"])
    direct, through = locations
    assert through.startswith(gateway_process.base_url + webapps.WEBAPP + "/")
    assert through.removeprefix(gateway_process.base_url) == direct.removeprefix(
        engine_process.base_url
    )


@pytest.fixture(scope="module")
def cockpit_files(
    deployment: dict[str, object], engine_process: processes.Running
) -> tuple[str, dict[str, str]]:
    """An instance with one File variable per hostile name: (instance id, name → variable
    instance id), as Cockpit's variable table links them."""
    engine = engine_process.base_url
    instance_id, _ = engine_api.start_instance(engine)
    ids = {
        name: engine_api.put_file(
            engine, instance_id, f"file{index}", CONTENT, name, "application/pdf"
        )
        for index, name in enumerate(NAMES)
    }
    return instance_id, ids


@pytest.mark.parametrize("name", NAMES)
async def test_a_download_by_cockpits_own_url_is_byte_identical_and_named(
    name: str,
    cockpit_files: tuple[str, dict[str, str]],
    engine_process: processes.Running,
    gateway_process: processes.Gateway,
) -> None:
    """Cockpit's download link is its engine API's variable-instance …/data, with the
    session cookie: the gateway names it from the engine's metadata, asked with the same
    cookie, where Tomcat dropped the engine's own header."""
    _, ids = cockpit_files
    path = f"{webapps.API}/variable-instance/{ids[name]}/data"
    async with webapps.logged_in(gateway_process.base_url) as session:
        async with session.client.get(session.url(path)) as response:
            assert response.status == 200
            assert await response.read() == CONTENT
            assert response.headers["Content-Disposition"] == NAMES[name]
    async with webapps.logged_in(engine_process.base_url) as direct:
        async with direct.client.get(direct.url(path)) as response:
            assert await response.read() == CONTENT
            engine_header = response.headers.get("Content-Disposition")
    if name in DROPPED_BY_THE_ENGINE:
        assert engine_header is None  # so a browser saves it as `data`


async def _post_form(
    session: webapps.Session, path: str, form: engine_api.Form, *, token: bool = True
) -> tuple[int, str]:
    headers = {"Content-Type": form.content_type, **session.headers(token=token)}
    async with session.client.post(session.url(path), data=form.small_body(), headers=headers) as r:
        return r.status, await r.text()


async def test_an_upload_through_the_webapps_api_with_the_token_is_stored(
    engine_process: processes.Running,
    gateway_process: processes.Gateway,
    instance: tuple[str, str],
) -> None:
    """As Tasklist's file field uploads: multipart to …/variables/{name}/data."""
    instance_id, _ = instance
    content = b"uploaded by Tasklist\n" + bytes(range(256))
    form = engine_api.variable_form(content, len(content), value_type="File", filename="t.bin")
    path = f"{webapps.API}/process-instance/{instance_id}/variables/doc/data"
    async with webapps.logged_in(gateway_process.base_url, "tasklist") as session:
        status, text = await _post_form(session, path, form)
    assert status == 204, text
    async with aiohttp.ClientSession(headers={"Authorization": engine_api.AUTHORIZATION}) as client:
        stored = await engine_api.stored_value(client, engine_process.base_url, instance_id)
    assert stored == content


async def test_a_post_without_the_token_is_refused_as_the_engine_refuses_it(
    engine_process: processes.Running,
    gateway_process: processes.Gateway,
    instance: tuple[str, str],
) -> None:
    instance_id, _ = instance
    content = b"no token"
    form = engine_api.variable_form(content, len(content), value_type="File", filename="n.bin")
    path = f"{webapps.API}/process-instance/{instance_id}/variables/notoken/data"
    answers = []
    for base_url in (engine_process.base_url, gateway_process.base_url):
        async with webapps.logged_in(base_url) as session:
            answers.append(await _post_form(session, path, form, token=False))
    (direct, _), (through, _) = answers
    assert direct == through == 403
    found = engine_api.call(
        engine_process.base_url,
        "GET",
        f"/variable-instance?processInstanceIdIn={instance_id}&variableName=notoken",
    )
    assert found == []


async def test_eicar_through_the_webapps_api_is_refused_multipart_and_in_json(
    engine_process: processes.Running,
    scanning_gateway: processes.Gateway,
    instance: tuple[str, str],
) -> None:
    instance_id, task_id = instance
    form = engine_api.variable_form(EICAR, len(EICAR), value_type="File", filename="e.txt")
    value = {
        "type": "File",
        "value": base64.b64encode(EICAR).decode(),
        "valueInfo": {"filename": "e.txt"},
    }
    async with webapps.logged_in(scanning_gateway.base_url, "tasklist") as session:
        status, text = await _post_form(
            session, f"{webapps.API}/process-instance/{instance_id}/variables/eicar/data", form
        )
        assert status == 422, text
        async with session.client.post(
            session.url(f"{webapps.API}/task/{task_id}/submit-form"),
            json={"variables": {"eicar": value}},
            headers=session.headers(),
        ) as submitted:
            assert submitted.status == 422, await submitted.text()
    assert engine_api.call(engine_process.base_url, "GET", f"/task/{task_id}")["id"] == task_id
    found = engine_api.call(
        engine_process.base_url,
        "GET",
        f"/variable-instance?processInstanceIdIn={instance_id}&variableName=eicar",
    )
    assert found == []


# What the webapps' pages ask their server for, through the gateway and direct: the same
# status, type and (but for what differs per request) the same body.
WEBAPP_CALLS = [
    "{webapp}/api/admin/auth/user/default",
    "{webapp}/api/engine/engine/",
    "{api}/process-definition?latestVersion=true&sortBy=name&sortOrder=asc",
    "{api}/process-definition/count",
    "{api}/task?sortBy=created&sortOrder=desc&maxResults=15",
    "{api}/process-instance/count",
    "{api}/user/demo/profile",
    "{api}/authorization?resourceType=0",
    "{webapp}/api/cockpit/plugin/base/default/process-definition/statistics",
    "{webapp}/api/engine/engine/default/no-such-resource",
    "{webapp}/app/cockpit/scripts/config.js",
    "{webapp}/app/tasklist/default/",
    "{webapp}/app/admin/default/",
    "{webapp}/no-such-page",
]


@pytest.mark.usefixtures("deployment")
@pytest.mark.parametrize("call", WEBAPP_CALLS)
async def test_webapp_calls_answer_the_same_direct_and_through_the_gateway(
    call: str, engine_process: processes.Running, gateway_process: processes.Gateway
) -> None:
    path = call.format(webapp=webapps.WEBAPP, api=webapps.API)
    answers = []
    for base_url in (engine_process.base_url, gateway_process.base_url):
        async with webapps.logged_in(base_url) as session:
            async with session.client.get(session.url(path)) as response:
                content_type = response.headers.get("Content-Type", "")
                body = _without_per_request_parts(await response.read())
                answers.append((response.status, content_type, body))
    assert answers[1] == answers[0]


def _without_per_request_parts(body: bytes) -> bytes:
    """A page's CSP nonces and an error's timestamp, which differ from request to request."""
    body = re.sub(rb'nonce="[^"]*"', b'nonce=""', body)
    return re.sub(rb'"timestamp":"[^"]*"', b'"timestamp":""', body)
