"""deploy/k8s/base as podman runs Kubernetes YAML (`podman kube play`), with the images
`make image` built.

podman 4.3 (Debian 12's) does not run the manifest as it is: it refuses an init container
with probes or a lifecycle, so the native sidecar (an init container with
`restartPolicy: Always`, probed on /livez and /readyz) is refused before anything starts.
The first test holds that, word for word, so a podman that runs it shows up here. The
closest thing it runs is the same pod with the gateway as its first ordinary container:
the second test plays that and goes through the gateway's port as the Service would."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import processes
from tests.deploy.test_k8s import find, render
from tests.images import podman
from tests.integration import engine_api

REFUSAL = (
    "cannot create an init container that has either of lifecycle, livenessProbe, "
    "readinessProbe, or startupProbe set"
)

Obj = dict[str, Any]


def _for_podman(images: podman.Images, name: str) -> tuple[list[Obj], Obj]:
    """The base's Deployment and volume claim, with names of the test's own and the images
    just built (the kustomization's `images:` does the same for a registry); the kinds
    podman does not run (Service, PodDisruptionBudget, the operator's) left out."""
    objects = render("base")
    (deployment,) = copy.deepcopy(find(objects, "Deployment", "engine"))
    (claim,) = copy.deepcopy(find(objects, "PersistentVolumeClaim", "engine-data"))
    deployment["metadata"]["name"] = name
    claim["metadata"]["name"] = f"{name}-data"
    spec = deployment["spec"]["template"]["spec"]
    for volume in spec["volumes"]:
        if "persistentVolumeClaim" in volume:
            volume["persistentVolumeClaim"]["claimName"] = f"{name}-data"
    for container in spec["initContainers"] + spec["containers"]:
        container["image"] = images.gateway if container["name"] == "gateway" else images.engine
    return [claim, deployment], spec


@pytest.fixture
def played(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A name for the test's pod, a file for its YAML; the pod and its volume removed after."""
    name = podman.unique("kube")
    path = tmp_path / "pod.yaml"
    try:
        yield name, path
    finally:
        if path.exists():
            podman.podman("kube", "down", str(path), check=False)
        podman.podman("pod", "rm", "--force", f"{name}-pod-0", check=False)
        podman.podman("volume", "rm", "--force", f"{name}-data", check=False)


def test_podman_refuses_the_native_sidecar_as_the_manifest_has_it(
    images: podman.Images, played: tuple[str, Path]
) -> None:
    name, path = played
    objects, spec = _for_podman(images, name)
    assert spec["initContainers"][0]["restartPolicy"] == "Always"
    path.write_text(yaml.safe_dump_all(objects))
    shown = podman.podman("kube", "play", str(path), check=False)
    assert shown.returncode != 0
    assert REFUSAL in shown.stderr, shown.stderr
    assert not podman.running(f"{name}-pod-0-gateway")
    assert not podman.running(f"{name}-pod-0-engine")


def test_the_pod_with_the_gateway_as_its_first_container_runs_as_the_manifest_says(
    images: podman.Images, played: tuple[str, Path]
) -> None:
    name, path = played
    objects, spec = _for_podman(images, name)
    (gateway,) = spec.pop("initContainers")
    del gateway["restartPolicy"]
    published = {}
    for port in gateway["ports"]:  # the Service's job, done by podman's port publishing
        published[port["containerPort"]] = port["hostPort"] = processes.free_port()
        port["hostIP"] = processes.LOOPBACK
    spec["containers"].insert(0, gateway)
    path.write_text(yaml.safe_dump_all(objects))
    podman.podman("kube", "play", str(path))

    base_url = f"http://{processes.LOOPBACK}:{published[8000]}"
    admin_url = f"http://{processes.LOOPBACK}:{published[8001]}"
    podman.wait_ready(admin_url, "the played pod ready")
    engine_api.deploy(base_url)
    instance_id, _ = engine_api.start_instance(base_url)
    engine_api.put_file(base_url, instance_id, "doc", b"%PDF-1.7 kube", "kube.pdf")
    downloaded = engine_api.get_bytes(
        f"{base_url}/engine-rest/process-instance/{instance_id}/variables/doc/data"
    )
    assert downloaded == b"%PDF-1.7 kube"
    # The manifest's securityContext, as podman applied it.
    for container, uid in (("gateway", "10001"), ("engine", "10002")):
        running = f"{name}-pod-0-{container}"
        assert podman.podman("exec", running, "id", "-u").stdout.strip() == uid
        read_only = podman.podman(
            "inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", running
        ).stdout.strip()
        assert read_only == "true"
    # What the gateway may write: its in-memory /tmp (the manifest's emptyDir).
    podman.podman("exec", f"{name}-pod-0-gateway", "touch", "/tmp/probe")
