"""The engine's endpoints that move files, as tables: path pattern → what kind of transfer.

Every path is proxied; these tables only say which requests carry files, below each of the
engine's API roots (`ApiRoots`): /engine-rest, also as /engine-rest/engine/{name}, and
each webapp's /{app}/api/engine/engine/{name}, where Cockpit, Tasklist and Admin reach the
same JAX-RS resources:
- BINARY_ROUTES: binary bodies, so the proxy can treat them as streams, validate uploads,
  and name downloads. For each download it also says how to learn the file's metadata
  (name, type) from the engine without transferring the content again (metadata.py);
- JSON_DOORS: JSON bodies with the engine's typed values (File and Bytes in base64), and
  where in the body the engine reads them (jsonvalues.py), in the request and in the
  answer. The list is the engine's own (engine-rest's DTOs that hold VariableValueDto maps
  and the resources that take them, Operaton 1.0.3; docs/files-in-json.md).
Paths are matched in their raw (percent-encoded) form, below their API root, so a variable
name is decoded exactly once, as the engine does, and without
their path (matrix) parameters: `…/data;x=1` is `…/data` to Tomcat and Jersey (measured: a
file posted there is stored), so it must be to the route table too.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

from gateway.jsonvalues import Place, parse_place

API_ROOT = "/engine-rest"


class Kind(enum.Enum):
    PASSTHROUGH = "passthrough"
    DOWNLOAD = "download"
    UPLOAD = "upload"
    JSON = "json"  # typed values in JSON, in the request, the answer, or both


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
    path: str  # below the API root, as the engine's docs write it
    pattern: re.Pattern[str]
    download: bool
    upload: bool
    lookup: Lookup | None = None


@dataclass(frozen=True)
class ApiRoots:
    """Where the engine's REST API is served: /engine-rest (and /engine-rest/engine/{name}),
    and below each webapp path (`webapp.application-path`: /operaton, /camunda) the
    webapps' /api/engine/engine/{name}, which has no unnamed form."""

    webapps: tuple[str, ...] = ()

    def split(self, path: str) -> tuple[str, str] | None:
        """(the API root as in `path`, the resource path below it), or None outside."""
        if path == API_ROOT or path.startswith(API_ROOT + "/"):
            below = _NAMED_ENGINE.sub("", path[len(API_ROOT) :], count=1)
            return path[: len(path) - len(below)], below
        for webapp in self.webapps:
            head = webapp + WEBAPP_API
            if path.startswith(head):
                name, slash, rest = path[len(head) :].partition("/")
                if name:
                    return path[: len(head) + len(name)], slash + rest
        return None


REST_ONLY = ApiRoots()
WEBAPP_API = "/api/engine/engine/"


@dataclass(frozen=True)
class RouteMatch:
    label: str
    kind: Kind
    lookup: Lookup | None = None
    scope_id: str | None = None  # raw, as in the path
    variable_name: str | None = None  # decoded once, as the engine decodes it
    places_up: tuple[Place, ...] = ()  # where the request's typed values are
    places_down: tuple[Place, ...] = ()  # where the answer's typed values are
    root: str = ""  # the API root the path is below (raw), "" outside every root


_SEGMENT = r"[^/]+"


def _route(
    label: str, path: str, *, download: bool, upload: bool, lookup: Lookup | None = None
) -> BinaryRoute:
    # A variable's scope is the first id: its metadata lookup names it.
    regex = path.replace("{id}", f"(?P<scope>{_SEGMENT})", 1 if "{name}" in path else 0)
    regex = regex.replace("{id}", _SEGMENT).replace("{name}", f"(?P<name>{_SEGMENT})")
    return BinaryRoute(label, path, re.compile(f"^/{regex}$"), download, upload, lookup)


def _variables(
    scope: str, variables: str, scope_filter: str, inherited_from: str | None = None
) -> BinaryRoute:
    path = f"{scope}/{{id}}/{variables}/{{name}}/data"
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


@dataclass(frozen=True)
class JsonDoor:
    """An endpoint whose JSON body carries typed values: in the request (`up`) when the
    engine converts them (VariableValueDto.toTypedValue), in the answer (`down`) when it
    can send Bytes values (File values always come back as null there)."""

    label: str  # bounded name for logs and metric labels
    method: str
    path: str  # below the API root, as the engine's docs write it
    head: str  # the path's first segment, to find the door without trying every pattern
    pattern: re.Pattern[str]
    up: tuple[Place, ...]
    down: tuple[Place, ...]


# The three ways to name a definition: by id, by key, by key and tenant.
_DEFINITION = r"(?:key/[^/]+/tenant-id/[^/]+|key/[^/]+|[^/]+)"
_VARIABLE_SCOPES = (
    "process-instance/{id}/variables",
    "execution/{id}/localVariables",
    "task/{id}/variables",
    "task/{id}/localVariables",
    "case-instance/{id}/variables",
    "case-execution/{id}/variables",
    "case-execution/{id}/localVariables",
)


def _door(label: str, method: str, path: str, up: str = "", down: str = "") -> JsonDoor:
    regex = (
        path.replace("{definition}", _DEFINITION)
        .replace("{id}", _SEGMENT)
        .replace("{name}", f"(?P<name>{_SEGMENT})")
    )
    return JsonDoor(
        label,
        method,
        path,
        path.split("/", 1)[0],
        re.compile(f"^/{regex}$"),
        tuple(parse_place(place) for place in up.split()),
        tuple(parse_place(place) for place in down.split()),
    )


def _variable_doors() -> tuple[JsonDoor, ...]:
    doors: list[JsonDoor] = []
    for scope in _VARIABLE_SCOPES:
        doors += [
            _door("json_variables", "PUT", scope + "/{name}", up="."),
            _door("json_variables", "POST", scope, up="modifications.*"),
            _door("json_variables", "GET", scope + "/{name}", down="."),
            _door("json_variables", "GET", scope, down="*"),
        ]
    return tuple(doors)


_VARIABLES = "variables.*"
_CASE_TRANSITIONS = {
    "case-instance": ("complete", "close", "terminate"),
    "case-execution": ("manual-start", "disable", "reenable", "complete", "terminate"),
}
_MESSAGE_MAPS = (
    "correlationKeys.* localCorrelationKeys.* processVariables.* processVariablesLocal.* "
    "processVariablesToTriggeredScope.*"
)

# Left out, as the engine never converts what they carry: process-definition …/restart and
# …/restart-async, /modification/execute and …/executeAsync (their instructions' variables
# are read by Jackson but never applied), and submit-form's startInstructions.
JSON_DOORS = (
    *_variable_doors(),
    _door(
        "json_process_definition",
        "POST",
        "process-definition/{definition}/start",
        up="variables.* startInstructions[].variables.*",
        down="variables.*",  # withVariablesInReturn
    ),
    _door(
        "json_process_definition",
        "POST",
        "process-definition/{definition}/submit-form",
        up=_VARIABLES,
    ),
    _door(
        "json_process_definition", "GET", "process-definition/{definition}/form-variables", down="*"
    ),
    _door(
        "json_process_instance",
        "POST",
        "process-instance/{id}/modification",
        up="instructions[].variables.*",
    ),
    _door(
        "json_process_instance",
        "POST",
        "process-instance/{id}/modification-async",
        up="instructions[].variables.*",
    ),
    _door("json_process_instance", "POST", "process-instance/variables-async", up=_VARIABLES),
    _door("json_process_instance", "POST", "process-instance/message-async", up=_VARIABLES),
    _door("json_execution", "POST", "execution/{id}/signal", up=_VARIABLES),
    _door(
        "json_execution", "POST", "execution/{id}/messageSubscriptions/{id}/trigger", up=_VARIABLES
    ),
    # withVariablesInReturn: the task's variables as the answer.
    _door("json_task", "POST", "task/{id}/complete", up=_VARIABLES, down="*"),
    _door("json_task", "POST", "task/{id}/submit-form", up=_VARIABLES, down="*"),
    _door("json_task", "POST", "task/{id}/resolve", up=_VARIABLES),
    _door("json_task", "POST", "task/{id}/bpmnError", up=_VARIABLES),
    _door("json_task", "POST", "task/{id}/bpmnEscalation", up=_VARIABLES),
    _door("json_task", "GET", "task/{id}/form-variables", down="*"),
    # withTaskVariablesInReturn / withTaskLocalVariablesInReturn
    _door("json_task", "GET", "task/{id}", down=_VARIABLES),
    _door("json_task", "GET", "task", down="[].variables.*"),
    _door("json_task", "POST", "task", down="[].variables.*"),
    _door(
        "json_external_task",
        "POST",
        "external-task/{id}/complete",
        up="variables.* localVariables.*",
    ),
    _door(
        "json_external_task",
        "POST",
        "external-task/{id}/failure",
        up="variables.* localVariables.*",
    ),
    _door("json_external_task", "POST", "external-task/{id}/bpmnError", up=_VARIABLES),
    _door("json_external_task", "POST", "external-task/fetchAndLock", down="[].variables.*"),
    # resultEnabled and variablesInResultEnabled
    _door("json_message", "POST", "message", up=_MESSAGE_MAPS, down="[].variables.*"),
    _door("json_signal", "POST", "signal", up=_VARIABLES),
    _door("json_condition", "POST", "condition", up=_VARIABLES),
    _door("json_case", "POST", "case-definition/{definition}/create", up=_VARIABLES),
    *(
        _door("json_case", "POST", f"{scope}/{{id}}/{transition}", up=_VARIABLES)
        for scope, transitions in _CASE_TRANSITIONS.items()
        for transition in transitions
    ),
    _door(
        "json_decision",
        "POST",
        "decision-definition/{definition}/evaluate",
        up=_VARIABLES,
        down="[].*",
    ),
    # includeInputs / includeOutputs, unless disableBinaryFetching
    _door("json_decision", "GET", "history/decision-instance", down="[].inputs[] [].outputs[]"),
    _door("json_decision", "GET", "history/decision-instance/{id}", down="inputs[] outputs[]"),
    _door("json_migration", "POST", "migration/generate", up=_VARIABLES, down=_VARIABLES),
    _door("json_migration", "POST", "migration/validate", up=_VARIABLES, down="variableReports.*"),
    _door("json_migration", "POST", "migration/execute", up="migrationPlan.variables.*"),
    _door("json_migration", "POST", "migration/executeAsync", up="migrationPlan.variables.*"),
)

_DOORS_BY_HEAD: dict[tuple[str, str], list[JsonDoor]] = {}
for _door_entry in JSON_DOORS:
    for _method in ("GET", "HEAD") if _door_entry.method == "GET" else (_door_entry.method,):
        _DOORS_BY_HEAD.setdefault((_method, _door_entry.head), []).append(_door_entry)

PASSTHROUGH = RouteMatch("passthrough", Kind.PASSTHROUGH)

_NAMED_ENGINE = re.compile(r"^/engine/[^/]+(?=/)")


def servlet_path(raw_path: str) -> str:
    """The path as the engine routes it: each segment's path parameters (from `;` to its
    end) removed, as Tomcat and Jersey remove them. A literal `;` only: `%3B` is data."""
    if ";" not in raw_path:
        return raw_path
    return "/".join(segment.split(";", 1)[0] for segment in raw_path.split("/"))


def classify(method: str, raw_path: str, roots: ApiRoots = REST_ONLY) -> RouteMatch:
    """What the request at `raw_path` moves; PASSTHROUGH for paths outside every root."""
    found_root = roots.split(servlet_path(raw_path))
    if found_root is None:
        return PASSTHROUGH
    root, below = found_root
    matched = _match(method, below)
    if matched is PASSTHROUGH:  # most calls: one RouteMatch per root, not one per request
        return _passthrough_below(root)
    return dataclasses.replace(matched, root=root)


@functools.lru_cache(maxsize=64)
def _passthrough_below(root: str) -> RouteMatch:
    return dataclasses.replace(PASSTHROUGH, root=root)


# Every binary route's path ends so: the others need not try each pattern.
_BINARY_ENDS = ("/data", "/create")


def _match(method: str, below: str) -> RouteMatch:
    for route in BINARY_ROUTES if below.endswith(_BINARY_ENDS) else ():
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
    head = below[1:].split("/", 1)[0]
    for door in _DOORS_BY_HEAD.get((method, head), ()):
        match = door.pattern.match(below)
        if match is not None:
            name = match.groupdict().get("name")
            return RouteMatch(
                door.label,
                Kind.JSON,
                variable_name=None if name is None else unquote(name),
                places_up=door.up,
                places_down=door.down,
            )
    return PASSTHROUGH


def unroutable(raw_path: str) -> str | None:
    """Why the engine's servlet container would not route `raw_path` as written, or None:
    a dot segment, literal or percent-encoded (once decoded and normalised it could be
    another path than the one classified here; browsers resolve them before they send), or
    a percent sign that is no escape, or an encoded NUL (Tomcat answers 400 to both)."""
    path = servlet_path(raw_path)  # `..;x` is `..` once its parameters are gone
    decoded = re.sub("%2[eE]", ".", path)
    segments = re.split(r"/|%2[fF]|\\|%5[cC]", decoded)
    if any(segment in (".", "..") for segment in segments):
        return f"Dot segments are not allowed in paths: {raw_path!r}"
    if _BAD_ESCAPE.search(raw_path):
        return f"The path has an invalid percent-encoding or an encoded NUL: {raw_path!r}"
    return None


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})|%00")
