"""The engine's binary endpoints, as a table: path pattern → what kind of transfer it is.

Everything under /engine-rest is proxied; this table only says which requests carry binary
bodies, so the proxy can treat them as streams, validate uploads, and name downloads. For each
download it also says how to learn the file's metadata (name, type) from the engine without
transferring the content again (metadata.py does the lookup).
Paths are matched in their raw (percent-encoded) form, after /engine-rest and an optional
/engine/{name}, so a variable name is decoded exactly once, as the engine does.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from urllib.parse import unquote

API_ROOT = "/engine-rest"


class Kind(enum.Enum):
    PASSTHROUGH = "passthrough"
    DOWNLOAD = "download"
    UPLOAD = "upload"


@dataclass(frozen=True)
class ResourceLookup:
    """The download's own path without `/data` answers with its metadata as JSON: the
    engine disables binary fetching there (variable and history instances, history
    details) or has no binary in it at all (attachments, deployment resources)."""


@dataclass(frozen=True)
class ScopeLookup:
    """A variable by name in a scope: found with the engine's `GET /variable-instance`
    query, which never fetches binary values (a scoped `GET …/variables/{name}` would send
    a Bytes value, base64, just to tell its type).

    `scope_filter` is the query parameter naming the scope. A non-local variable may be
    inherited: then `inherited_from` is the resource that names the scope's instance."""

    scope_filter: str
    inherited_from: str | None = None


Lookup = ResourceLookup | ScopeLookup


@dataclass(frozen=True)
class BinaryRoute:
    label: str  # bounded name for logs and metric labels
    pattern: re.Pattern[str]
    download: bool
    upload: bool
    lookup: Lookup | None = None


@dataclass(frozen=True)
class RouteMatch:
    label: str
    kind: Kind
    lookup: Lookup | None = None
    scope_id: str | None = None  # raw, as in the path
    variable_name: str | None = None  # decoded once, as the engine decodes it


_SEGMENT = r"[^/]+"


def _route(
    label: str, path: str, *, download: bool, upload: bool, lookup: Lookup | None = None
) -> BinaryRoute:
    regex = (
        path.replace("{id}", _SEGMENT)
        .replace("{scope}", f"(?P<scope>{_SEGMENT})")
        .replace("{name}", f"(?P<name>{_SEGMENT})")
    )
    return BinaryRoute(label, re.compile(f"^/{regex}$"), download, upload, lookup)


def _variables(
    scope: str, variables: str, scope_filter: str, inherited_from: str | None = None
) -> BinaryRoute:
    path = f"{scope}/{{scope}}/{variables}/{{name}}/data"
    lookup = ScopeLookup(scope_filter, inherited_from)
    return _route("variable_data", path, download=True, upload=True, lookup=lookup)


RESOURCE = ResourceLookup()


BINARY_ROUTES = (
    # A process or case instance is a scope with no parent; tasks and case executions inherit.
    _variables("process-instance", "variables", "executionIdIn"),
    _variables("execution", "localVariables", "executionIdIn"),
    _variables("task", "variables", "taskIdIn", inherited_from="task"),
    _variables("task", "localVariables", "taskIdIn"),
    _variables("case-instance", "variables", "caseExecutionIdIn"),
    _variables("case-execution", "variables", "caseExecutionIdIn", inherited_from="case-execution"),
    _variables("case-execution", "localVariables", "caseExecutionIdIn"),
    _route(
        "variable_data", "variable-instance/{id}/data", download=True, upload=False, lookup=RESOURCE
    ),
    _route(
        "history_data",
        "history/variable-instance/{id}/data",
        download=True,
        upload=False,
        lookup=RESOURCE,
    ),
    _route(
        "history_data", "history/detail/{id}/data", download=True, upload=False, lookup=RESOURCE
    ),
    _route(
        "deployment",
        "deployment/{id}/resources/{id}/data",
        download=True,
        upload=False,
        lookup=RESOURCE,
    ),
    _route("deployment", "deployment/create", download=False, upload=True),
    _route(
        "attachment", "task/{id}/attachment/{id}/data", download=True, upload=False, lookup=RESOURCE
    ),
    _route("attachment", "task/{id}/attachment/create", download=False, upload=True),
)

PASSTHROUGH = RouteMatch("passthrough", Kind.PASSTHROUGH)

_NAMED_ENGINE = re.compile(r"^/engine/[^/]+(?=/)")


def resource_path(raw_path: str) -> str | None:
    """The path below /engine-rest (and below /engine/{name}), or None if outside the API."""
    if raw_path == API_ROOT:
        return ""
    if not raw_path.startswith(API_ROOT + "/"):
        return None
    below = raw_path[len(API_ROOT) :]
    return _NAMED_ENGINE.sub("", below, count=1)


def api_prefix(raw_path: str) -> str:
    """`/engine-rest`, or `/engine-rest/engine/{name}` for a named engine."""
    below = resource_path(raw_path)
    if below is None:
        raise ValueError(f"not an engine path: {raw_path!r}")
    return raw_path[: len(raw_path) - len(below)]


def classify(method: str, raw_path: str) -> RouteMatch:
    below = resource_path(raw_path)
    if below is None:
        return PASSTHROUGH
    for route in BINARY_ROUTES:
        match = route.pattern.match(below)
        if match is None:
            continue
        if route.download and method in ("GET", "HEAD"):
            found = match.groupdict()
            name = found.get("name")
            return RouteMatch(
                route.label,
                Kind.DOWNLOAD,
                route.lookup,
                found.get("scope"),
                None if name is None else unquote(name),
            )
        if route.upload and method == "POST":
            return RouteMatch(route.label, Kind.UPLOAD)
        if route.upload and method == "PUT" and route.label == "variable_data":
            # `curl -T file …/data`: the gateway's raw upload, sent to the engine as POST.
            return RouteMatch(route.label, Kind.UPLOAD)
    return PASSTHROUGH


def escapes_api_root(raw_path: str) -> bool:
    """True when the path, once the engine's servlet container decodes and normalises it,
    could point outside /engine-rest (dot segments, literal or percent-encoded)."""
    decoded = re.sub("%2[eE]", ".", raw_path)
    segments = re.split(r"/|%2[fF]|\\|%5[cC]", decoded)
    return resource_path(raw_path) is None or any(s in (".", "..") for s in segments)
