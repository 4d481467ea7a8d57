"""What the engine knows about a download (file name, value type), asked with the caller's
own credentials.

Used only when the engine's own `Content-Disposition` is missing or damaged: Tomcat drops
the whole header when a file name has a character above U+00FF, Bytes variables and task
attachments never get one. The lookup runs as the caller (their `Authorization` and
cookies, nothing else), so no one learns a name they could not read themselves. It never
transfers a binary value: each route's lookup (routes.py) is a query the engine answers
without fetching binaries. Any failure (denied, missing, slow, malformed) gives None: a
lookup can improve a download's name, never fail the download.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway import routes
from gateway.disposition import EngineDisposition, Quality

# A lookup delays the download's first byte; past this, the download goes on without it.
LOOKUP_TIMEOUT_SECONDS = 5.0
CREDENTIAL_HEADERS = ("Authorization", "Cookie")
# Enough rows for one variable name in one instance; more means we cannot tell which.
MAX_CANDIDATES = 50

log = logging.getLogger("gateway.metadata")


@dataclass(frozen=True)
class Metadata:
    value_type: str | None  # "file", "bytes", …; None for attachments and deployment resources
    filename: str | None  # a File's valueInfo.filename, an attachment's or resource's name
    variable_name: str | None = None


def credentials(request_headers: Mapping[str, str]) -> CIMultiDict[str]:
    return CIMultiDict(
        (name, request_headers[name]) for name in CREDENTIAL_HEADERS if name in request_headers
    )


async def lookup(
    client: aiohttp.ClientSession,
    origin: URL,
    raw_path: str,
    route: routes.RouteMatch,
    caller: CIMultiDict[str],
) -> Metadata | None:
    """The metadata of the download at `raw_path`, or None if it cannot be learnt cheaply."""
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT_SECONDS):
            if isinstance(route.lookup, routes.ResourceLookup):
                return await _resource(client, origin, raw_path, route, caller)
            if isinstance(route.lookup, routes.ScopeLookup):
                return await _scoped(client, origin, raw_path, route, route.lookup, caller)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        log.debug("metadata lookup for %s failed: %r", route.label, error)
    return None


async def _resource(
    client: aiohttp.ClientSession,
    origin: URL,
    raw_path: str,
    route: routes.RouteMatch,
    caller: CIMultiDict[str],
) -> Metadata | None:
    url = URL(str(origin) + raw_path.removesuffix("/data"), encoded=True)
    if route.label in ("attachment", "deployment"):
        found = await _get_json(client, url, caller)
        name = found.get("name") if isinstance(found, dict) else None
        return Metadata(None, name) if isinstance(name, str) else None
    found = await _get_json(client, url.with_query(deserializeValue="false"), caller)
    return _variable(found) if isinstance(found, dict) else None


async def _scoped(
    client: aiohttp.ClientSession,
    origin: URL,
    raw_path: str,
    route: routes.RouteMatch,
    lookup: routes.ScopeLookup,
    caller: CIMultiDict[str],
) -> Metadata | None:
    if route.scope_id is None or route.variable_name is None:
        return None
    api = URL(str(origin) + route.root, encoded=True)
    scope_id = unquote(route.scope_id)
    rows = await _variable_instances(
        client, api, caller, route.variable_name, lookup.scope_filter, scope_id
    )
    if lookup.scope_filter != "taskIdIn":
        rows = [row for row in rows if row.get("taskId") is None]  # a task's own are not ours
    if rows or lookup.inherited_from is None:
        return _agreed(rows)
    # Not in the scope itself: inherited from somewhere in its instance. If every
    # candidate there says the same, that is the answer; if they differ, we cannot tell
    # which one the engine will resolve without the engine's scope tree, so give up.
    scope = await _get_json(client, api / lookup.inherited_from / scope_id, caller)
    if not isinstance(scope, dict):
        return None
    for field, instance_filter in (
        ("processInstanceId", "processInstanceIdIn"),
        ("caseInstanceId", "caseInstanceIdIn"),
    ):
        instance = scope.get(field)
        if isinstance(instance, str):
            rows = await _variable_instances(
                client, api, caller, route.variable_name, instance_filter, instance
            )
            return _agreed([row for row in rows if row.get("taskId") is None])
    return None


async def _variable_instances(
    client: aiohttp.ClientSession,
    api: URL,
    caller: CIMultiDict[str],
    variable_name: str,
    scope_filter: str,
    scope_id: str,
) -> list[dict[str, Any]]:
    # GET /variable-instance disables binary fetching: rows carry type and valueInfo only.
    url = (api / "variable-instance").with_query(
        {
            "variableName": variable_name,
            scope_filter: scope_id,
            "deserializeValues": "false",
            "maxResults": str(MAX_CANDIDATES + 1),
        }
    )
    found = await _get_json(client, url, caller)
    rows = [row for row in found if isinstance(row, dict)] if isinstance(found, list) else []
    return rows if len(rows) <= MAX_CANDIDATES else []


def _agreed(rows: list[dict[str, Any]]) -> Metadata | None:
    found = {_variable(row) for row in rows}
    return found.pop() if len(found) == 1 else None


def _variable(found: dict[str, Any]) -> Metadata | None:
    # Runtime and historic instances say `type` and `name`; a historic detail says
    # `variableType` and `variableName` (its `type` is the detail's kind).
    value_type = found.get("variableType") or found.get("type")
    name = found.get("variableName") or found.get("name")
    info = found.get("valueInfo")
    filename = info.get("filename") if isinstance(info, dict) else None
    if not isinstance(value_type, str):
        return None
    return Metadata(
        value_type.lower(),
        filename if isinstance(filename, str) else None,
        name if isinstance(name, str) else None,
    )


async def _get_json(client: aiohttp.ClientSession, url: URL, caller: CIMultiDict[str]) -> Any:
    async with client.get(url, headers=caller, allow_redirects=False) as response:
        if response.status != 200:
            return None
        return await response.json(content_type=None)


@dataclass(frozen=True)
class Naming:
    filename: str | None  # None: a Content-Disposition without a filename
    source: str  # for the access log: engine, metadata, variable, engine_lossy, none


def choose_filename(
    engine: EngineDisposition,
    found: Metadata | None,
    variable_name: str | None,
    *,
    name_bytes: bool,
) -> Naming:
    """The best name for a download: the engine's header when it is exact, else the
    metadata, else what is left of the engine's name, else the variable's name."""
    if engine.quality is Quality.EXACT:
        return Naming(engine.filename, "engine")
    if found is not None and found.value_type == "bytes":
        name = found.variable_name or variable_name
        return Naming(name, "variable") if name_bytes and name else Naming(None, "none")
    if found is not None and found.filename:
        return Naming(found.filename, "metadata")
    if engine.quality is Quality.LOSSY:
        return Naming(engine.filename, "engine_lossy")
    if name_bytes and variable_name:
        # No header and no metadata: most likely a Bytes value whose lookup was denied.
        return Naming(variable_name, "variable")
    return Naming(None, "none")
