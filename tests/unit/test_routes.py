from __future__ import annotations

import pytest

from gateway import routes
from gateway.jsonvalues import parse_place
from gateway.routes import (
    JSON_DOORS,
    ApiRoots,
    Kind,
    ResourceLookup,
    RouteMatch,
    ScopeLookup,
    classify,
    unroutable,
)

DOWNLOADS = [
    ("/engine-rest/process-instance/p1/variables/file1/data", "variable_data"),
    ("/engine-rest/execution/e1/localVariables/v/data", "variable_data"),
    ("/engine-rest/task/t1/variables/v/data", "variable_data"),
    ("/engine-rest/task/t1/localVariables/v/data", "variable_data"),
    ("/engine-rest/case-instance/c1/variables/v/data", "variable_data"),
    ("/engine-rest/case-execution/c1/variables/v/data", "variable_data"),
    ("/engine-rest/case-execution/c1/localVariables/v/data", "variable_data"),
    ("/engine-rest/variable-instance/v1/data", "variable_data"),
    ("/engine-rest/history/variable-instance/v1/data", "history_data"),
    ("/engine-rest/history/detail/d1/data", "history_data"),
    ("/engine-rest/deployment/d1/resources/r1/data", "deployment"),
    ("/engine-rest/task/t1/attachment/a1/data", "attachment"),
    ("/engine-rest/engine/tenant-a/process-instance/p1/variables/n%C3%A4me/data", "variable_data"),
]


@pytest.mark.parametrize(("path", "label"), DOWNLOADS)
def test_binary_downloads_are_recognised(path: str, label: str) -> None:
    for method in ("GET", "HEAD"):
        match = classify(method, path)
        assert (match.label, match.kind) == (label, Kind.DOWNLOAD)
        assert match.lookup is not None  # every download can be named from metadata


@pytest.mark.parametrize(
    ("path", "lookup", "scope_id", "name"),
    [
        (
            "/engine-rest/process-instance/p1/variables/file1/data",
            ScopeLookup("executionIdIn"),
            "p1",
            "file1",
        ),
        (
            "/engine-rest/engine/tenant-a/task/t1/variables/n%C3%A4me%2Fx/data",
            ScopeLookup("taskIdIn", inherited_from="task"),
            "t1",
            "näme/x",
        ),
        ("/engine-rest/task/t1/localVariables/v/data", ScopeLookup("taskIdIn"), "t1", "v"),
        (
            "/engine-rest/case-execution/c1/variables/v/data",
            ScopeLookup("caseExecutionIdIn", inherited_from="case-execution"),
            "c1",
            "v",
        ),
        (
            "/engine-rest/case-instance/c1/variables/v/data",
            ScopeLookup("caseExecutionIdIn"),
            "c1",
            "v",
        ),
        ("/engine-rest/history/variable-instance/v1/data", ResourceLookup(), None, None),
        ("/engine-rest/task/t1/attachment/a1/data", ResourceLookup(), None, None),
    ],
)
def test_downloads_say_how_to_find_their_metadata(
    path: str, lookup: object, scope_id: str | None, name: str | None
) -> None:
    match = classify("GET", path)
    assert (match.lookup, match.scope_id, match.variable_name) == (lookup, scope_id, name)


def test_the_api_root_keeps_a_named_engine() -> None:
    assert classify("GET", "/engine-rest/task/t/variables/v/data").root == "/engine-rest"
    named = classify("GET", "/engine-rest/engine/a/task/t/variables/v/data")
    assert named.root == "/engine-rest/engine/a"


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("/engine-rest/task/t1/variables/v/data", "variable_data"),
        ("/engine-rest/process-instance/p1/variables/a%2Fb/data", "variable_data"),
        ("/engine-rest/task/t1/attachment/create", "attachment"),
        ("/engine-rest/deployment/create", "deployment"),
        ("/engine-rest/engine/default/deployment/create", "deployment"),
    ],
)
def test_binary_uploads_are_recognised(path: str, label: str) -> None:
    root = "/engine-rest/engine/default" if "/engine/" in path else "/engine-rest"
    assert classify("POST", path) == RouteMatch(label, Kind.UPLOAD, root=root)


def test_put_to_variable_data_is_a_raw_upload() -> None:
    path = "/engine-rest/task/t1/variables/v/data"
    assert classify("PUT", path) == RouteMatch("variable_data", Kind.UPLOAD, root="/engine-rest")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/engine-rest/variable-instance/v1/data"),  # read-only resource
        ("GET", "/engine-rest/deployment/create"),
        ("DELETE", "/engine-rest/task/t1/variables/v"),
        ("DELETE", "/engine-rest/task/t1/variables/v/data"),
        ("POST", "/engine-rest/process-definition/key/k/restart"),  # variables never applied
        ("POST", "/engine-rest/modification/execute"),
        ("GET", "/engine-rest/process-instance"),
        ("PUT", "/engine-rest/deployment/create"),
        ("GET", "/engine-rest/engine"),
        ("GET", "/other/task/t1/variables/v/data"),
    ],
)
def test_everything_else_passes_through(method: str, path: str) -> None:
    assert classify(method, path).kind is Kind.PASSTHROUGH


@pytest.mark.parametrize(
    "path",
    [
        "/engine-rest/../manager",
        "/engine-rest/%2e%2e/manager",
        "/engine-rest/%2E%2E%2Fmanager",
        "/engine-rest/task/..%5cx",
        "/engine-rest/./engine",
        "/operaton/app/../api/engine/engine/default/task",
        "/operaton/%2e%2e/manager",
    ],
)
def test_dot_segments_are_recognised_wherever_they_are(path: str) -> None:
    reason = unroutable(path)
    assert reason is not None
    assert reason.startswith("Dot segments")


@pytest.mark.parametrize(
    "path",
    [
        "/engine-rest",
        "/engine-rest/engine",
        "/engine-rest/task/t1/variables/a..b/data",
        "/engine-rest/process-instance/p1/variables/n%C3%A4me/data",
        "/operaton/app/cockpit/",
        "/",
    ],
)
def test_paths_without_dot_segments_are_allowed(path: str) -> None:
    assert unroutable(path) is None


@pytest.mark.parametrize(
    "path", ["/engine-rest/%zz", "/engine-rest/a%00b", "/operaton/app/%", "/x%2"]
)
def test_what_tomcat_refuses_to_decode_is_unroutable(path: str) -> None:
    reason = unroutable(path)
    assert reason is not None
    assert "percent-encoding" in reason


@pytest.mark.parametrize(
    ("method", "path", "label", "up", "down"),
    [
        ("PUT", "/engine-rest/process-instance/p1/variables/doc", "json_variables", ["."], []),
        ("POST", "/engine-rest/task/t1/localVariables", "json_variables", ["modifications.*"], []),
        ("GET", "/engine-rest/case-execution/c1/variables", "json_variables", [], ["*"]),
        ("HEAD", "/engine-rest/execution/e1/localVariables/v", "json_variables", [], ["."]),
        (
            "POST",
            "/engine-rest/engine/tenants/process-definition/key/k/tenant-id/t/start",
            "json_process_definition",
            ["variables.*", "startInstructions[].variables.*"],
            ["variables.*"],
        ),
        (
            "POST",
            "/engine-rest/process-definition/d1/submit-form",
            "json_process_definition",
            ["variables.*"],
            [],
        ),
        (
            "POST",
            "/engine-rest/external-task/x1/complete",
            "json_external_task",
            ["variables.*", "localVariables.*"],
            [],
        ),
        (
            "POST",
            "/engine-rest/external-task/fetchAndLock",
            "json_external_task",
            [],
            ["[].variables.*"],
        ),
        ("POST", "/engine-rest/task/t1/complete", "json_task", ["variables.*"], ["*"]),
        (
            "POST",
            "/engine-rest/message",
            "json_message",
            [
                "correlationKeys.*",
                "localCorrelationKeys.*",
                "processVariables.*",
                "processVariablesLocal.*",
                "processVariablesToTriggeredScope.*",
            ],
            ["[].variables.*"],
        ),
        ("POST", "/engine-rest/case-execution/c1/manual-start", "json_case", ["variables.*"], []),
        (
            "POST",
            "/engine-rest/migration/execute",
            "json_migration",
            ["migrationPlan.variables.*"],
            [],
        ),
        (
            "GET",
            "/engine-rest/history/decision-instance",
            "json_decision",
            [],
            ["[].inputs[]", "[].outputs[]"],
        ),
    ],
)
def test_json_doors_are_recognised_with_where_their_variables_are(
    method: str, path: str, label: str, up: list[str], down: list[str]
) -> None:
    match = classify(method, path)
    assert (match.label, match.kind) == (label, Kind.JSON)
    assert match.places_up == tuple(parse_place(place) for place in up)
    assert match.places_down == tuple(parse_place(place) for place in down)


def test_a_json_door_for_one_variable_knows_its_name_decoded_once() -> None:
    match = classify("PUT", "/engine-rest/task/t1/variables/n%C3%A4me%2Fx")
    assert match.variable_name == "näme/x"


def test_every_json_door_has_a_bounded_label_and_a_place_somewhere() -> None:
    assert len({door.label for door in JSON_DOORS}) <= 12
    assert all(door.up or door.down for door in JSON_DOORS)
    assert len({(door.method, door.path) for door in JSON_DOORS}) == len(JSON_DOORS)


@pytest.mark.parametrize(
    ("path", "kind", "label"),
    [
        ("/engine-rest/task/t1/variables/v/data;x=1", Kind.UPLOAD, "variable_data"),
        ("/engine-rest/task;x/t1/variables/v/data", Kind.UPLOAD, "variable_data"),
        ("/engine-rest;jsessionid=1/deployment/create", Kind.UPLOAD, "deployment"),
        ("/engine-rest/task/t1/complete;a=b", Kind.JSON, "json_task"),
        (
            "/engine-rest/engine;x/default/external-task/e1/complete",
            Kind.JSON,
            "json_external_task",
        ),
    ],
)
def test_path_parameters_do_not_route_around_the_table(path: str, kind: Kind, label: str) -> None:
    # Tomcat and Jersey drop `;…` from each segment (measured: a file posted to
    # …/data;x=1 is stored), so a request cannot hide its kind behind them.
    match = classify("POST", path)
    assert (match.kind, match.label) == (kind, label)


def test_a_variable_name_is_read_without_its_path_parameters() -> None:
    match = classify("GET", "/engine-rest/process-instance/p1;x/variables/doc;y=2/data")
    assert (match.scope_id, match.variable_name) == ("p1", "doc")


def test_a_dot_segment_behind_path_parameters_is_still_a_dot_segment() -> None:
    assert unroutable("/engine-rest/x/..;y/process-definition") is not None
    assert unroutable("/engine-rest/task;x/t1/variables/v/data") is None


WEBAPPS = ApiRoots(("/operaton", "/camunda"))


@pytest.mark.parametrize(
    ("method", "path", "kind", "label", "root"),
    [
        (
            "GET",
            "/operaton/api/engine/engine/default/variable-instance/v1/data",
            Kind.DOWNLOAD,
            "variable_data",
            "/operaton/api/engine/engine/default",
        ),
        (
            "POST",
            "/camunda/api/engine/engine/tenants/task/t1/variables/doc/data",
            Kind.UPLOAD,
            "variable_data",
            "/camunda/api/engine/engine/tenants",
        ),
        (
            "POST",
            "/operaton/api/engine/engine/default/task/t1/submit-form",
            Kind.JSON,
            "json_task",
            "/operaton/api/engine/engine/default",
        ),
        (
            "GET",
            "/operaton/api/engine/engine/default/engine",
            Kind.PASSTHROUGH,
            "passthrough",
            "/operaton/api/engine/engine/default",
        ),
    ],
)
def test_the_webapps_engine_api_gets_the_same_routes(
    method: str, path: str, kind: Kind, label: str, root: str
) -> None:
    match = classify(method, path, WEBAPPS)
    assert (match.kind, match.label, match.root) == (kind, label, root)


@pytest.mark.parametrize(
    "path",
    [
        "/operaton/app/cockpit/default/",
        "/operaton/api/admin/auth/user/default/login/cockpit",
        "/operaton/api/cockpit/plugin/base/default/process-definition/statistics",
        "/operaton/api/engine/engine/",  # no engine named
        "/other/api/engine/engine/default/task/t1/variables/v/data",  # not a webapp path
        "/manager/html",
    ],
)
def test_paths_outside_every_api_root_pass_with_no_root(path: str) -> None:
    match = classify("POST", path, WEBAPPS)
    assert (match.kind, match.root) == (Kind.PASSTHROUGH, "")


def test_without_webapp_paths_only_engine_rest_is_an_api_root() -> None:
    assert (
        classify("GET", "/operaton/api/engine/engine/default/variable-instance/v1/data").root == ""
    )


def test_every_binary_route_ends_as_the_quick_filter_expects() -> None:
    # classify tries the binary patterns only for paths ending so: a route ending otherwise
    # would never match.
    for route in routes.BINARY_ROUTES:
        ends = tuple(f"{end}$" for end in routes._BINARY_ENDS)
        assert route.pattern.pattern.endswith(ends), route.pattern.pattern
