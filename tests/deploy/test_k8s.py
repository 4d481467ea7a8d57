"""deploy/k8s rendered by kustomize, every object validated strictly against Kubernetes'
schemas (1.29, the first with native sidecars, and the newest kubernetes-validate ships),
the prometheus-operator's objects against the schemas of their CRDs (from cloudcoil's
models on PyPI), and the wiring between the
objects checked: what each Service, probe, ServiceMonitor and budget points at exists.
The postgres overlay's engines are checked to be stateless pods that scale out, with the
database taken from a Secret the user creates."""

from __future__ import annotations

import copy
import functools
import math
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from gateway.__main__ import parse_config
from tests import processes

K8S = processes.ROOT / "deploy" / "k8s"
TOOLS = processes.ROOT / ".tools"
KUSTOMIZATIONS = {
    "base": K8S / "base",
    "standalone": K8S / "overlays" / "standalone",
    "postgres": K8S / "overlays" / "postgres",
    "documents": K8S / "overlays" / "documents",
}
# Where the gateway is the engine pod's sidecar.
SIDECARS = ("base", "postgres")
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
OPERATOR_GROUP = "monitoring.coreos.com/v1"
GATEWAY_IMAGE = "engine-gateway"

Obj = dict[str, Any]


@functools.cache
def render(name: str) -> tuple[Obj, ...]:
    kustomize = TOOLS / "bin" / "kustomize"
    assert kustomize.exists(), "kustomize is missing: `make test` (or `make k8s-tools`)"
    built = subprocess.run(
        [str(kustomize), "build", str(KUSTOMIZATIONS[name])],
        capture_output=True,
        text=True,
        check=True,
    )
    return tuple(doc for doc in yaml.safe_load_all(built.stdout) if doc)


def find(objects: tuple[Obj, ...], kind: str, name: str | None = None) -> list[Obj]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def the(objects: tuple[Obj, ...], kind: str, name: str) -> Obj:
    (found,) = find(objects, kind, name)
    return found


def containers(pod_spec: Obj) -> Iterator[Obj]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec["containers"]


def env_of(container: Obj) -> dict[str, str]:
    """The container's literal variables (not those taken from a Secret)."""
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def workloads(objects: tuple[Obj, ...]) -> list[Obj]:
    return find(objects, "Deployment")


def gateway_container(objects: tuple[Obj, ...]) -> Obj:
    (found,) = [
        c
        for d in workloads(objects)
        for c in containers(d["spec"]["template"]["spec"])
        if c["image"].split(":")[0] == GATEWAY_IMAGE
    ]
    return found


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


# --- schemas ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_object_validates_strictly_against_kubernetes(name: str, version: str) -> None:
    checked = 0
    for obj in render(name):
        if obj["apiVersion"] == OPERATOR_GROUP:
            continue  # a CRD's object: test_operator_objects_validate_against_their_crds
        kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 4  # two Services, a Deployment and its budget at least


def test_strict_validation_catches_a_misspelt_field() -> None:
    deployment = copy.deepcopy(the(render("base"), "Deployment", "engine"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[0], strict=True)


def _strict(schema: Any) -> Any:
    """The CRD's schema as the API server applies it with strict field validation: a field
    it does not declare is an error, unless the schema keeps unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if isinstance(strict.get("pattern"), str) and "(?i)" in strict["pattern"]:
        # Go's regexp takes flags anywhere; Python's only at the start.
        strict["pattern"] = "(?i)" + strict["pattern"].replace("(?i)", "")
    if "properties" in strict and "additionalProperties" not in strict:
        strict["additionalProperties"] = False
    return strict


@functools.cache
def crd_schema(kind: str) -> Any:
    """The JSON schema of a prometheus-operator kind, from cloudcoil's models (PyPI), which
    are generated from the operator's CRDs (v0.80), made strict as the API server is."""
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, kind)
    return _strict(model.model_json_schema(by_alias=True, mode="validation"))


def _validate_operator_object(obj: Obj) -> None:
    jsonschema.validate(obj, crd_schema(obj["kind"]), cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_operator_objects_validate_against_their_crds(name: str) -> None:
    kinds = []
    for obj in render(name):
        if obj["apiVersion"] == OPERATOR_GROUP:
            _validate_operator_object(obj)
            kinds.append(obj["kind"])
    assert sorted(kinds) == ["PrometheusRule", "ServiceMonitor"]


def test_crd_validation_catches_a_misspelt_field() -> None:
    monitor = copy.deepcopy(the(render("base"), "ServiceMonitor", "engine-gateway"))
    monitor["spec"]["endpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        _validate_operator_object(monitor)


# --- wiring ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_service_reaches_a_named_port_of_the_pods_it_selects(name: str) -> None:
    objects = render(name)
    for service in find(objects, "Service"):
        pods = [
            d["spec"]["template"]
            for d in workloads(objects)
            if selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert pods, f"Service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            for pod in pods:
                names = {p["name"] for c in containers(pod["spec"]) for p in c.get("ports", [])}
                assert port["targetPort"] in names, (service["metadata"]["name"], names)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_gateway_is_probed_on_its_admin_port_never_on_the_engine(name: str) -> None:
    gateway = gateway_container(render(name))
    assert gateway["startupProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert gateway["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "metrics"}
    assert gateway["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    ports = {p["name"]: p["containerPort"] for p in gateway["ports"]}
    config = parse_config([], env_of(gateway))
    assert ports == {"http": config.port, "metrics": config.admin_port}


@pytest.mark.parametrize("name", SIDECARS)
def test_the_gateway_runs_as_a_native_sidecar_before_a_loopback_engine(name: str) -> None:
    objects = render(name)
    pod = the(objects, "Deployment", "engine")["spec"]["template"]
    (sidecar,) = pod["spec"]["initContainers"]
    (engine,) = pod["spec"]["containers"]
    assert sidecar["restartPolicy"] == "Always"
    assert sidecar == gateway_container(objects)
    assert env_of(engine)["SERVER_ADDRESS"] == "127.0.0.1"
    upstream = parse_config([], env_of(sidecar)).upstream_url
    assert (upstream.host, upstream.port) == ("127.0.0.1", int(env_of(engine)["SERVER_PORT"]))
    # Nothing outside the pod can reach the engine: no port of it is declared or probed.
    assert "ports" not in engine
    assert not any(probe in engine for probe in ("startupProbe", "livenessProbe"))
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == parse_config([], env_of(sidecar)).admin_port


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_every_container_is_locked_down_and_sized(name: str) -> None:
    for deployment in workloads(render(name)):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        for container in containers(spec):
            security = container["securityContext"]
            assert security["readOnlyRootFilesystem"] is True
            assert security["allowPrivilegeEscalation"] is False
            assert security["capabilities"]["drop"] == ["ALL"]
            assert security["runAsUser"] > 0
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"])
            assert "memory" in resources["limits"]


def _pre_stop_sleep(container: Obj) -> int:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    return int(command[1])


@pytest.mark.parametrize("name", SIDECARS)
def test_the_engine_outlives_the_gateways_drain_within_the_grace_period(name: str) -> None:
    pod = the(render(name), "Deployment", "engine")["spec"]["template"]["spec"]
    (engine,) = pod["containers"]
    drain = parse_config([], env_of(gateway_container(render(name)))).drain_timeout_seconds
    engine_sleep = _pre_stop_sleep(engine)
    assert engine_sleep > drain
    # The sidecar stops after the engine, so the grace period covers both, and the drain.
    assert pod["terminationGracePeriodSeconds"] > engine_sleep + drain


def test_the_standalone_gateway_drains_within_its_grace_period() -> None:
    objects = render("standalone")
    pod = the(objects, "Deployment", "engine-gateway")["spec"]["template"]["spec"]
    (gateway,) = pod["containers"]
    drain = parse_config([], env_of(gateway)).drain_timeout_seconds
    assert pod["terminationGracePeriodSeconds"] > _pre_stop_sleep(gateway) + drain


def test_the_standalone_overlay_puts_scaled_gateways_before_the_engine_service() -> None:
    objects = render("standalone")
    engine_pod = the(objects, "Deployment", "engine")["spec"]["template"]
    assert "initContainers" not in engine_pod["spec"]
    gateway_pod = the(objects, "Deployment", "engine-gateway")["spec"]["template"]
    labels = gateway_pod["metadata"]["labels"]
    for service in ("engine", "engine-gateway"):
        assert selects(the(objects, "Service", service)["spec"]["selector"], labels)
    upstream = parse_config([], env_of(gateway_container(objects))).upstream_url
    engine_service = the(objects, "Service", str(upstream.host))
    assert selects(engine_service["spec"]["selector"], engine_pod["metadata"]["labels"])
    assert engine_service["spec"]["ports"][0]["port"] == upstream.port
    autoscaler = the(objects, "HorizontalPodAutoscaler", "engine-gateway")
    assert autoscaler["spec"]["scaleTargetRef"]["name"] == "engine-gateway"
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert "replicas" not in the(objects, "Deployment", "engine-gateway")["spec"]


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_a_pod_on_a_read_write_once_claim_is_never_two(name: str) -> None:
    objects = render(name)
    claims = {c["metadata"]["name"]: c for c in find(objects, "PersistentVolumeClaim")}
    for deployment in workloads(objects):
        volumes = deployment["spec"]["template"]["spec"].get("volumes", [])
        used = [
            claims[v["persistentVolumeClaim"]["claimName"]]
            for v in volumes
            if "persistentVolumeClaim" in v
        ]
        if any("ReadWriteOnce" in c["spec"]["accessModes"] for c in used):
            # A second pod, or a rollout's new pod beside the old one, could not mount it.
            assert deployment["spec"]["replicas"] == 1
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_disruption_budgets_select_pods(name: str) -> None:
    objects = render(name)
    budgets = find(objects, "PodDisruptionBudget")
    assert budgets
    for budget in budgets:
        selector = budget["spec"]["selector"]["matchLabels"]
        assert any(
            selects(selector, d["spec"]["template"]["metadata"]["labels"])
            for d in workloads(objects)
        )


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_service_monitor_scrapes_the_gateway_as_job_engine_gateway(name: str) -> None:
    objects = render(name)
    monitor = the(objects, "ServiceMonitor", "engine-gateway")
    (service,) = [
        s
        for s in find(objects, "Service")
        if selects(monitor["spec"]["selector"]["matchLabels"], s["metadata"].get("labels", {}))
    ]
    # Without a jobLabel the job is the Service's name: the one the alerts and the dashboard
    # expect.
    assert service["metadata"]["name"] == "engine-gateway"
    assert "jobLabel" not in monitor["spec"]
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_the_prometheus_rule_holds_the_same_rules_as_alerts_yml(name: str) -> None:
    rule = the(render(name), "PrometheusRule", "engine-gateway")
    alerts = yaml.safe_load((processes.ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    assert rule["spec"] == alerts


def test_the_images_in_the_manifests_are_the_projects_two() -> None:
    images = {
        c["image"].split(":")[0]
        for name in KUSTOMIZATIONS
        for d in workloads(render(name))
        for c in containers(d["spec"]["template"]["spec"])
    }
    assert images == {GATEWAY_IMAGE, "engine-gateway-engine"}


# --- the postgres overlay --------------------------------------------------------------

DATABASE_SECRET = "engine-database"
DATASOURCE = {
    "SPRING_DATASOURCE_URL": "url",
    "SPRING_DATASOURCE_USERNAME": "username",
    "SPRING_DATASOURCE_PASSWORD": "password",
}


def _engine_pod(objects: tuple[Obj, ...]) -> Obj:
    pod: Obj = the(objects, "Deployment", "engine")["spec"]["template"]["spec"]
    return pod


def _engine(objects: tuple[Obj, ...]) -> Obj:
    engines: list[Obj] = [c for c in _engine_pod(objects)["containers"] if c["name"] == "engine"]
    (engine,) = engines
    return engine


def check_no_state_in_the_pod(objects: tuple[Obj, ...]) -> None:
    assert not find(objects, "PersistentVolumeClaim")
    pod = _engine_pod(objects)
    assert all(set(v) == {"name", "emptyDir"} for v in pod["volumes"]), pod["volumes"]
    engine = _engine(objects)
    mounts = {m["mountPath"] for m in engine["volumeMounts"]}
    # The base's H2 directory is not mounted at all.
    assert env_of(_engine(render("base")))["ENGINE_DATA_DIR"] not in mounts
    # The test engine still creates engine.data-dir at start (EngineApplication), on a
    # read-only root filesystem: it must lie on one of the emptyDirs.
    data_dir = env_of(engine)["ENGINE_DATA_DIR"]
    assert any(data_dir == m or data_dir.startswith(m.rstrip("/") + "/") for m in mounts)


def check_the_database_comes_from_the_secret(objects: tuple[Obj, ...]) -> None:
    engine = _engine(objects)
    env = {item["name"]: item for item in engine["env"]}
    for variable, key in DATASOURCE.items():
        assert env.get(variable) == {
            "name": variable,
            "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": key}},
        }
    # Nothing else sets them, and no credentials are shipped: the user creates the Secret.
    for deployment in workloads(objects):
        for container in containers(deployment["spec"]["template"]["spec"]):
            assert "envFrom" not in container
            assert not set(env_of(container)) & set(DATASOURCE)
    assert not find(objects, "Secret")
    assert not find(objects, "ConfigMap")


def check_the_engines_scale_out_and_roll(objects: tuple[Obj, ...]) -> None:
    spec = the(objects, "Deployment", "engine")["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    # Spread across nodes where it can be.
    (term,) = spec["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    selector = term["podAffinityTerm"]["labelSelector"]["matchLabels"]
    assert selects(selector, spec["template"]["metadata"]["labels"])


def _allowed_disruptions(budget: Obj, replicas: int) -> int:
    def scaled(value: int | str) -> int:
        if isinstance(value, str):  # a percentage, which Kubernetes rounds up
            return math.ceil(int(value.rstrip("%")) * replicas / 100)
        return value

    if "maxUnavailable" in budget["spec"]:
        return scaled(budget["spec"]["maxUnavailable"])
    return replicas - scaled(budget["spec"]["minAvailable"])


def check_the_budget_lets_one_engine_go_and_keeps_one(objects: tuple[Obj, ...]) -> None:
    deployment = the(objects, "Deployment", "engine")
    (budget,) = [
        b
        for b in find(objects, "PodDisruptionBudget")
        if selects(
            b["spec"]["selector"]["matchLabels"],
            deployment["spec"]["template"]["metadata"]["labels"],
        )
    ]
    allowed = _allowed_disruptions(budget, deployment["spec"]["replicas"])
    assert 1 <= allowed < deployment["spec"]["replicas"]


def _mount_h2_again(objects: tuple[Obj, ...]) -> None:
    pod = _engine_pod(objects)
    pod["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "engine-data"}})


def _literal_password(objects: tuple[Obj, ...]) -> None:
    for item in _engine(objects)["env"]:
        if item["name"] == "SPRING_DATASOURCE_PASSWORD":
            del item["valueFrom"]
            item["value"] = "secret"


def _recreate(objects: tuple[Obj, ...]) -> None:
    the(objects, "Deployment", "engine")["spec"]["strategy"] = {"type": "Recreate"}


def _no_disruptions(objects: tuple[Obj, ...]) -> None:
    the(objects, "PodDisruptionBudget", "engine")["spec"]["maxUnavailable"] = 0


Check = Callable[[tuple[Obj, ...]], None]
# Each check, and a break of the overlay it must catch.
POSTGRES_CHECKS: dict[str, tuple[Check, Check]] = {
    "no-state": (check_no_state_in_the_pod, _mount_h2_again),
    "database-secret": (check_the_database_comes_from_the_secret, _literal_password),
    "scale-out": (check_the_engines_scale_out_and_roll, _recreate),
    "budget": (check_the_budget_lets_one_engine_go_and_keeps_one, _no_disruptions),
}


@pytest.mark.parametrize("check", POSTGRES_CHECKS)
def test_the_postgres_overlay(check: str) -> None:
    POSTGRES_CHECKS[check][0](render("postgres"))


@pytest.mark.parametrize("check", POSTGRES_CHECKS)
def test_the_postgres_checks_catch_a_broken_overlay(check: str) -> None:
    verify, breaks = POSTGRES_CHECKS[check]
    objects = copy.deepcopy(render("postgres"))
    breaks(objects)
    with pytest.raises(AssertionError):
        verify(objects)
    with pytest.raises(AssertionError):
        verify(render("base"))  # one H2 pod, which none of them may pass


# --- the documents overlay -------------------------------------------------------------


def test_the_documents_overlay_gives_the_gateway_and_its_sweep_the_same_store_and_keys() -> None:
    objects = render("documents")
    (config,) = [
        c for c in find(objects, "ConfigMap") if c["metadata"]["name"].startswith("document-store")
    ]
    key_file = config["data"]["ENGINE_GATEWAY_DOCUMENT_KEY_FILE"]
    assert config["data"]["ENGINE_GATEWAY_DOCUMENT_STORE"].startswith("s3://")
    gateway = the(objects, "Deployment", "engine-gateway")["spec"]["template"]["spec"]
    (sweep_job,) = find(objects, "CronJob")
    sweep = sweep_job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    for spec in (gateway, sweep):
        (container,) = [c for c in containers(spec) if c["image"].split(":")[0] == GATEWAY_IMAGE]
        sources = {
            source.get("configMapRef", source.get("secretRef", {}))["name"]
            for source in container["envFrom"]
        }
        assert config["metadata"]["name"] in sources
        assert "document-store" in sources  # the S3 credentials' Secret
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert key_file.startswith(mounts["document-keys"] + "/")
        assert volumes["document-keys"]["secret"]["secretName"] == "document-keys"
    (sweeper,) = containers(sweep)
    assert sweeper["args"][:2] == ["documents", "sweep"]
    upstream = env_of(sweeper)["ENGINE_GATEWAY_UPSTREAM"]
    # The engine itself, never the gateway: through it, a reference would be resolved.
    service = upstream.removeprefix("http://").split(":")[0]
    assert the(objects, "Service", service)["spec"]["selector"] == {
        "app.kubernetes.io/name": "engine"
    }
