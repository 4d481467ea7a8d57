"""Who may call the documents API: a caller the engine authenticates. The gateway keeps no
accounts: it asks the engine, with the caller's own credentials, for a call that needs
them (its version), and believes the answer.

- `Authorization` (Basic, or whatever the engine's REST filter takes): asked of
  `/engine-rest/version`.
- A POST or DELETE whose `Origin` is another site's is refused (403) before anything is
  asked: a browser sends credentials it holds with another site's form, but always says
  where the form came from.
- Otherwise a webapp session (`Cookie`): asked of each webapp's own engine API
  (`<webapp>/api/engine/engine/default/version`), as Cockpit's calls are. A session's
  POST or DELETE must also carry the webapps' `X-XSRF-TOKEN` header, as their own calls
  do (another site's form can make a browser send the cookie, never set a header): the
  engine's CSRF filter checks it against the session, asked with a POST that changes
  nothing (a count of the process instance with the id `-`). Comparing it with the
  `XSRF-TOKEN` cookie here would not do: that cookie's path is the webapp's, so a browser
  never sends it to the documents API.

A yes is remembered for CACHE_SECONDS (by a hash of the credentials, never the credentials
themselves), so a burst of calls costs the engine one question; a no never is, so a caller
who has just logged in is not kept out. A call with no credentials is refused without
asking; an engine that asks its REST callers for none accepts any a caller sends.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from gateway import errors, routes

CACHE_SECONDS = 10.0
CACHE_ENTRIES = 10_000
PROBE_TIMEOUT_SECONDS = 10.0
XSRF_HEADER = "X-XSRF-TOKEN"
_SAFE_METHODS = frozenset({"GET", "HEAD"})


# A query that changes nothing and finds nothing, by its primary key.
_NOTHING = b'{"processInstanceIds":["-"]}'


@dataclass(frozen=True)
class _Probe:
    """A request that needs the caller's credentials, and changes nothing."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes | None = None


def unauthenticated(detail: str) -> errors.GatewayError:
    return errors.GatewayError(401, "NotAuthenticatedException", detail)


class Callers:
    """The engine's answers about callers, remembered briefly."""

    def __init__(self, origin: URL, webapps: tuple[str, ...]) -> None:
        self._origin = origin
        self._webapps = webapps
        self._known: dict[bytes, float] = {}

    async def check(
        self, request: web.Request, client: aiohttp.ClientSession
    ) -> errors.GatewayError | None:
        """None when the engine authenticates the caller of `request`; else why not."""
        authorization = request.headers.get("Authorization")
        cookie = request.headers.get("Cookie")
        if request.method not in _SAFE_METHODS and not _same_origin(request):
            return errors.GatewayError(
                403,
                "CrossOriginRequestException",
                "A POST or DELETE from a page of another origin is refused: the documents API "
                "answers no cross-origin requests.",
            )
        if authorization is not None:
            probes = [_Probe("GET", routes.API_ROOT + "/version", {"Authorization": authorization})]
        elif cookie is not None:
            probes = [self._session_probe(webapp, request, cookie) for webapp in self._webapps]
            if request.method not in _SAFE_METHODS and XSRF_HEADER not in request.headers:
                return errors.GatewayError(
                    403,
                    "CsrfPreventionException",
                    f"A webapp session's {request.method} needs the webapps' {XSRF_HEADER} header.",
                )
        else:
            return unauthenticated(
                "The documents API needs credentials the engine accepts: Authorization, "
                "or a webapp session."
            )
        key = hashlib.sha256(repr(probes).encode()).digest()
        now = time.monotonic()
        if self._known.get(key, 0.0) > now:
            return None
        for probe in probes:
            status = await self._status(client, probe)
            if isinstance(status, errors.GatewayError):
                return status
            if status == 403 and probe.method == "POST":
                return errors.GatewayError(
                    403,
                    "CsrfPreventionException",
                    f"The engine refused the session's {XSRF_HEADER} token.",
                )
            if status == 200:
                if len(self._known) >= CACHE_ENTRIES:
                    self._known.clear()
                self._known[key] = now + CACHE_SECONDS
                return None
        return unauthenticated("The engine did not accept the caller's credentials.")

    def _session_probe(self, webapp: str, request: web.Request, cookie: str) -> _Probe:
        api = webapp + routes.WEBAPP_API + "default"
        if request.method in _SAFE_METHODS:
            return _Probe("GET", api + "/version", {"Cookie": cookie})
        headers = {
            "Cookie": cookie,
            XSRF_HEADER: request.headers.get(XSRF_HEADER, ""),
            "Content-Type": "application/json",
        }
        return _Probe("POST", api + "/process-instance/count", headers, _NOTHING)

    async def _status(
        self, client: aiohttp.ClientSession, probe: _Probe
    ) -> int | errors.GatewayError:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
                async with client.request(
                    probe.method,
                    URL(str(self._origin) + probe.path, encoded=True),
                    headers=probe.headers,
                    data=probe.body,
                    allow_redirects=False,
                ) as answer:
                    await answer.read()
                    return answer.status
        except TimeoutError:
            return errors.upstream_timeout("asking whether it knows the caller")
        except aiohttp.ClientError as error:
            return errors.upstream_unreachable(str(error) or type(error).__name__)


def _same_origin(request: web.Request) -> bool:
    """No `Origin` (not a browser's cross-site request), or the gateway's own."""
    origin = request.headers.get("Origin")
    return origin is None or origin == public_origin(request)


def public_origin(request: web.Request) -> str:
    """Where the caller reached the gateway: a proxy in front says so in X-Forwarded-*. It
    is only compared with what the same caller sent, or answered back to it."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{scheme}://{host}"
