"""The engine's webapps (Cockpit, Tasklist, Admin) as their pages use them: a session logged
in through the webapps' login API, with the CSRF token their filter sets as the
`XSRF-TOKEN` cookie and wants back as `X-XSRF-TOKEN` on every call that changes something.

Each session has its own cookie jar, so a session made through the gateway and one made
against the engine directly never share cookies (a jar does not tell ports apart).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp

from tests.processes import ADMIN_USER, engine_name

# The engines' webapp.application-path: Operaton's /operaton, Camunda 7's /camunda.
WEBAPP = f"/{engine_name()}" if engine_name() in ("operaton", "camunda") else "/camunda"
ENGINE = "default"
API = f"{WEBAPP}/api/engine/engine/{ENGINE}"


@dataclass(frozen=True)
class Session:
    client: aiohttp.ClientSession
    base_url: str

    @property
    def xsrf_token(self) -> str:
        """The token the webapps' CSRF filter last set for this session."""
        for cookie in self.client.cookie_jar:
            if cookie.key == "XSRF-TOKEN":
                return cookie.value
        raise LookupError("no XSRF-TOKEN cookie yet")

    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self, *, token: bool = True) -> dict[str, str]:
        return {"X-XSRF-TOKEN": self.xsrf_token} if token else {}


async def _refresh_token(session: Session) -> None:
    """Any GET below the webapp sets the session's current token."""
    async with session.client.get(session.url(f"{API}/engine")) as response:
        await response.read()


@contextlib.asynccontextmanager
async def logged_in(base_url: str, app: str = "cockpit") -> AsyncIterator[Session]:
    """A session of the admin user, logged into `app` as its login page does it."""
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: cookies for an IP address too
    async with aiohttp.ClientSession(cookie_jar=jar, auto_decompress=False) as client:
        session = Session(client, base_url)
        async with client.get(session.url(f"{WEBAPP}/app/{app}/{ENGINE}/")) as page:
            assert page.status == 200, page.status
        user, password = ADMIN_USER
        async with client.post(
            session.url(f"{WEBAPP}/api/admin/auth/user/{ENGINE}/login/{app}"),
            data={"username": user, "password": password},
            headers=session.headers(),
        ) as login:
            assert login.status == 200, await login.text()
        await _refresh_token(session)
        yield session
