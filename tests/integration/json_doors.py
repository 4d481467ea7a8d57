"""Each JSON door of gateway.routes.JSON_DOORS as a request the engine accepts: what it takes
to reach it (an instance waiting in the right place, a task, an external task locked by a
worker, a case execution in the right state, a batch), where each of its variable maps goes
in the body, and whether the engine stores what they carry.

Set-up calls go to the engine directly (engine_api.call); the door's own request is the
test's, through the gateway. The processes are deploy/engine/process/json-doors.*.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.jsonvalues import ANY_KEY, ITEM, Place
from tests.integration import engine_api
from tests.processes import ROOT

PROCESSES = ROOT / "deploy" / "engine" / "process"
RESOURCES = tuple(
    PROCESSES / name for name in ("json-doors.bpmn", "json-doors.cmmn", "json-doors.dmn")
)
WORKER = "gateway-test-worker"
TOPIC = "gatewayJson"


@dataclass(frozen=True)
class Door:
    """One door's request, ready to carry a value: `body` with its maps (or None when the
    value is the body itself, as for PUT …/variables/{name})."""

    method: str
    path: str  # below /engine-rest
    body: dict[str, Any] | None
    stores: bool = True  # the values become variables (in the history)
    batch: bool = False  # stored later, by the engine's job executor running a batch
    status: int | None = None  # the engine's answer when it stores nothing

    def request_body(self, place: Place, name: str, value: dict[str, Any]) -> bytes:
        if self.body is None:
            return json.dumps(value).encode()
        body = copy.deepcopy(self.body)
        node: Any = body
        for step, following in zip(place, (*place[1:], None), strict=True):
            if step == ANY_KEY:
                node[name] = value
            elif step == ITEM:
                node = node[0]
            else:
                node = node.setdefault(step, [{}] if following == ITEM else {})
        return json.dumps(body).encode()


Prepare = Callable[[str, str], Door]  # (the engine's base URL, the variable's name) → Door


def call(engine: str, method: str, path: str, body: object = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    return engine_api.call(engine, method, path, data)


def deploy(engine: str) -> dict[str, Any]:
    """The JSON doors' processes, case and decision, deployed at `engine`."""
    form = engine_api.deploy_form(*RESOURCES)
    deployed: dict[str, Any] = engine_api.call(
        engine, "POST", "/deployment/create", form.small_body(), content_type=form.content_type
    )
    return deployed


def start(engine: str, key: str, business_key: str | None = None) -> str:
    body: dict[str, Any] = {} if business_key is None else {"businessKey": business_key}
    instance = call(engine, "POST", f"/process-definition/key/{key}/start", body)
    return str(instance["id"])


def task_of(engine: str, instance_id: str, activity: str = "Work") -> str:
    tasks = call(
        engine, "GET", f"/task?processInstanceId={instance_id}&taskDefinitionKey={activity}"
    )
    return str(tasks[0]["id"])


def execution_at(engine: str, instance_id: str, query: str) -> str:
    executions = call(engine, "GET", f"/execution?processInstanceId={instance_id}&{query}")
    return str(executions[0]["id"])


def case_instance(engine: str) -> str:
    return str(call(engine, "POST", "/case-definition/key/gatewayJsonCase/create", {})["id"])


def case_execution(engine: str, case_id: str, activity: str) -> str:
    executions = call(
        engine, "GET", f"/case-execution?caseInstanceId={case_id}&activityId={activity}"
    )
    return str(executions[0]["id"])


def locked_external_task(engine: str, business_key: str) -> str:
    """An external task of a new instance, fetched and locked by WORKER, as a worker does."""
    start(engine, "gatewayJsonExternal", business_key)
    locked = call(
        engine,
        "POST",
        "/external-task/fetchAndLock",
        {
            "workerId": WORKER,
            "maxTasks": 1,
            "topics": [{"topicName": TOPIC, "lockDuration": 600000, "businessKey": business_key}],
        },
    )
    return str(locked[0]["id"])


# -- the doors -------------------------------------------------------------------------------


def _scope(path: str, *, put: bool) -> Callable[[Callable[[str], str]], Prepare]:
    """A variable scope's door: `scope` finds the scope's id at the engine."""

    def door(scope: Callable[[str], str]) -> Prepare:
        def prepare(engine: str, name: str) -> Door:
            where = path.replace("{id}", scope(engine))
            if put:
                return Door("PUT", f"/{where}/{name}", None)
            return Door("POST", f"/{where}", {})

        return prepare

    return door


def _instance(engine: str) -> str:
    return start(engine, "gatewayJsonTask")


def _task(engine: str) -> str:
    return task_of(engine, _instance(engine))


def _case_active(engine: str) -> str:
    return case_execution(engine, case_instance(engine), "PlanItem_Active")


SCOPES: dict[str, Callable[[str], str]] = {
    "process-instance/{id}/variables": _instance,
    "execution/{id}/localVariables": _instance,
    "task/{id}/variables": _task,
    "task/{id}/localVariables": _task,
    "case-instance/{id}/variables": case_instance,
    "case-execution/{id}/variables": _case_active,
    "case-execution/{id}/localVariables": _case_active,
}


def _start(engine: str, name: str) -> Door:
    first = {"type": "startBeforeActivity", "activityId": "Work"}
    return Door(
        "POST", "/process-definition/key/gatewayJsonTask/start", {"startInstructions": [first]}
    )


def _submit_start_form(engine: str, name: str) -> Door:
    return Door("POST", "/process-definition/key/gatewayJsonTask/submit-form", {})


def _modification(asynchronous: bool) -> Prepare:
    def prepare(engine: str, name: str) -> Door:
        instance_id = _instance(engine)
        suffix = "-async" if asynchronous else ""
        instruction = {"type": "startBeforeActivity", "activityId": "TaskDone"}
        body = {"instructions": [instruction]}
        path = f"/process-instance/{instance_id}/modification{suffix}"
        if asynchronous:
            # The engine decodes the instructions' variables, then its batch drops them
            # (ModificationCmdJsonConverter writes no variables): nothing is stored.
            return Door("POST", path, body, stores=False, status=200)
        return Door("POST", path, body)

    return prepare


def _variables_async(engine: str, name: str) -> Door:
    body = {"processInstanceIds": [_instance(engine)]}
    return Door("POST", "/process-instance/variables-async", body, batch=True)


def _waiting(engine: str) -> str:
    return start(engine, "gatewayJsonWaiting")


def _message_async(engine: str, name: str) -> Door:
    body = {"messageName": "gatewayJsonMessage", "processInstanceIds": [_waiting(engine)]}
    return Door("POST", "/process-instance/message-async", body, batch=True)


def _execution_signal(engine: str, name: str) -> Door:
    instance_id = _waiting(engine)
    call(
        engine,
        "POST",
        "/message",
        {"messageName": "gatewayJsonMessage", "processInstanceId": instance_id},
    )
    execution_id = execution_at(engine, instance_id, "activityId=Receive")
    return Door("POST", f"/execution/{execution_id}/signal", {})


def _message_trigger(engine: str, name: str) -> Door:
    instance_id = _waiting(engine)
    execution_id = execution_at(
        engine, instance_id, "messageEventSubscriptionName=gatewayJsonMessage"
    )
    return Door(
        "POST", f"/execution/{execution_id}/messageSubscriptions/gatewayJsonMessage/trigger", {}
    )


def _task_door(action: str, **body: str) -> Prepare:
    def prepare(engine: str, name: str) -> Door:
        task_id = _task(engine)
        if action == "resolve":
            call(engine, "POST", f"/task/{task_id}/delegate", {"userId": "demo"})
        return Door("POST", f"/task/{task_id}/{action}", dict(body))

    return prepare


def _external_task(action: str, **body: object) -> Prepare:
    def prepare(engine: str, name: str) -> Door:
        task_id = locked_external_task(engine, business_key=name)
        return Door("POST", f"/external-task/{task_id}/{action}", {"workerId": WORKER, **body})

    return prepare


def _message(stores: bool) -> Prepare:
    def prepare(engine: str, name: str) -> Door:
        body = {"messageName": "gatewayJsonMessage", "processInstanceId": _waiting(engine)}
        # A correlation key is queried for, and the engine cannot query binary values.
        return Door("POST", "/message", body, stores=stores, status=None if stores else 500)

    return prepare


def _signal(engine: str, name: str) -> Door:
    return Door("POST", "/signal", {"name": "gatewayJsonSignal"})


def _condition(engine: str, name: str) -> Door:
    condition = {"gatewayJsonStart": {"type": "Boolean", "value": True}}
    return Door("POST", "/condition", {"variables": condition})


def _case_create(engine: str, name: str) -> Door:
    return Door("POST", "/case-definition/key/gatewayJsonCase/create", {})


def _case_instance_door(transition: str) -> Prepare:
    def prepare(engine: str, name: str) -> Door:
        case_id = case_instance(engine)
        if transition in ("complete", "close"):
            # Completable once its active task is done; completed (which closing needs) once
            # the task waiting to be started by hand is disabled too.
            active = case_execution(engine, case_id, "PlanItem_Active")
            call(engine, "POST", f"/case-execution/{active}/complete", {})
        if transition == "close":
            manual = case_execution(engine, case_id, "PlanItem_Manual")
            call(engine, "POST", f"/case-execution/{manual}/disable", {})
        return Door("POST", f"/case-instance/{case_id}/{transition}", {})

    return prepare


def _case_execution_door(transition: str) -> Prepare:
    def prepare(engine: str, name: str) -> Door:
        case_id = case_instance(engine)
        manual = transition in ("manual-start", "disable", "reenable")
        execution_id = case_execution(
            engine, case_id, "PlanItem_Manual" if manual else "PlanItem_Active"
        )
        if transition == "reenable":
            call(engine, "POST", f"/case-execution/{execution_id}/disable", {})
        return Door("POST", f"/case-execution/{execution_id}/{transition}", {})

    return prepare


def _decision(engine: str, name: str) -> Door:
    return Door(
        "POST",
        "/decision-definition/key/gatewayJsonDecision/evaluate",
        {},
        stores=False,
        status=200,
    )


def _definition_id(engine: str) -> str:
    definitions = call(engine, "GET", "/process-definition?key=gatewayJsonTask&latestVersion=true")
    return str(definitions[0]["id"])


def _migration_plan(engine: str) -> dict[str, Any]:
    definition = _definition_id(engine)
    instruction = {"sourceActivityIds": ["Work"], "targetActivityIds": ["Work"]}
    return {
        "sourceProcessDefinitionId": definition,
        "targetProcessDefinitionId": definition,
        "instructions": [instruction],
    }


def _migration_generate(engine: str, name: str) -> Door:
    definition = _definition_id(engine)
    body = {"sourceProcessDefinitionId": definition, "targetProcessDefinitionId": definition}
    return Door("POST", "/migration/generate", body, stores=False, status=200)


def _migration_validate(engine: str, name: str) -> Door:
    return Door("POST", "/migration/validate", _migration_plan(engine), stores=False, status=200)


def _migration_execute(asynchronous: bool) -> Prepare:
    def prepare(engine: str, name: str) -> Door:
        body = {"migrationPlan": _migration_plan(engine), "processInstanceIds": [_instance(engine)]}
        path = "/migration/executeAsync" if asynchronous else "/migration/execute"
        return Door("POST", path, body, batch=asynchronous)

    return prepare


DOORS: dict[tuple[str, str], Prepare] = {
    **{("PUT", scope + "/{name}"): _scope(scope, put=True)(find) for scope, find in SCOPES.items()},
    **{("POST", scope): _scope(scope, put=False)(find) for scope, find in SCOPES.items()},
    ("POST", "process-definition/{definition}/start"): _start,
    ("POST", "process-definition/{definition}/submit-form"): _submit_start_form,
    ("POST", "process-instance/{id}/modification"): _modification(asynchronous=False),
    ("POST", "process-instance/{id}/modification-async"): _modification(asynchronous=True),
    ("POST", "process-instance/variables-async"): _variables_async,
    ("POST", "process-instance/message-async"): _message_async,
    ("POST", "execution/{id}/signal"): _execution_signal,
    ("POST", "execution/{id}/messageSubscriptions/{id}/trigger"): _message_trigger,
    ("POST", "task/{id}/complete"): _task_door("complete"),
    ("POST", "task/{id}/submit-form"): _task_door("submit-form"),
    ("POST", "task/{id}/resolve"): _task_door("resolve"),
    ("POST", "task/{id}/bpmnError"): _task_door("bpmnError", errorCode="jsonError"),
    ("POST", "task/{id}/bpmnEscalation"): _task_door(
        "bpmnEscalation", escalationCode="jsonEscalation"
    ),
    ("POST", "external-task/{id}/complete"): _external_task("complete"),
    ("POST", "external-task/{id}/failure"): _external_task(
        "failure", errorMessage="failed", retries=1, retryTimeout=0
    ),
    ("POST", "external-task/{id}/bpmnError"): _external_task("bpmnError", errorCode="jsonError"),
    ("POST", "message"): _message(stores=True),
    ("POST", "signal"): _signal,
    ("POST", "condition"): _condition,
    ("POST", "case-definition/{definition}/create"): _case_create,
    **{
        ("POST", f"case-instance/{{id}}/{t}"): _case_instance_door(t)
        for t in ("complete", "close", "terminate")
    },
    **{
        ("POST", f"case-execution/{{id}}/{t}"): _case_execution_door(t)
        for t in ("manual-start", "disable", "reenable", "complete", "terminate")
    },
    ("POST", "decision-definition/{definition}/evaluate"): _decision,
    ("POST", "migration/generate"): _migration_generate,
    ("POST", "migration/validate"): _migration_validate,
    ("POST", "migration/execute"): _migration_execute(asynchronous=False),
    ("POST", "migration/executeAsync"): _migration_execute(asynchronous=True),
}

# Maps whose values the engine only matches against, never stores.
MATCHED_ONLY = {("POST", "message"): ("correlationKeys", "localCorrelationKeys")}


def prepare(method: str, path: str, place: Place, engine: str, name: str) -> Door:
    if place and place[0] in MATCHED_ONLY.get((method, path), ()):
        return _message(stores=False)(engine, name)
    return DOORS[(method, path)](engine, name)


# Batch jobs run on the engine's job executor: seconds, on this machine.
BATCH_SECONDS = 60


def stored(engine: str, name: str) -> list[bytes]:
    """The binary contents of every variable called `name`, as the history has them (so
    also of instances that have ended since)."""
    found = call(engine, "GET", f"/history/variable-instance?variableName={name}")
    contents = []
    for variable in found:
        url = f"{engine}/engine-rest/history/variable-instance/{variable['id']}/data"
        contents.append(engine_api.get_bytes(url))
    return contents
