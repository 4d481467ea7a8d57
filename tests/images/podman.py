"""podman for the image tests: every call with the project's containers.conf (runc, the
ulimits and the init this machine needs, deploy/images/containers.conf), the images
deploy/images/build.sh makes (`make image`), and a pod run as the Kubernetes pod runs.

Every pod, container and volume a test makes has a name of its own (NAME_PREFIX, the
test process's pid, a counter) and is removed by that name when the test ends."""

from __future__ import annotations

import contextlib
import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

from tests import processes

CONF = processes.ROOT / "deploy" / "images" / "containers.conf"
BUILD = processes.ROOT / "deploy" / "images" / "build.sh"
NAME_PREFIX = "engine-gateway-test"
READY_SECONDS = 180  # the engine in its container starts in about 10 s here
ENGINE_ENV = ("--env", "JAVA_TOOL_OPTIONS=-Xmx1g -Dfile.encoding=UTF-8")
_numbers = itertools.count()


def environment() -> dict[str, str]:
    """The environment every podman call here gets: this one, with the project's config."""
    return {**os.environ, "CONTAINERS_CONF": str(CONF)}


def podman(
    *arguments: str, check: bool = True, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    shown = subprocess.run(
        ["podman", *arguments],
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and shown.returncode != 0:
        raise AssertionError(f"podman {' '.join(arguments)}: {shown.returncode}\n{shown.stderr}")
    return shown


@dataclass(frozen=True)
class Images:
    gateway: str
    engine: str


def build(engine: str) -> Images:
    """Both images, as `make image` builds them (its base images are reused when there)."""
    processes.engine_jar(engine)
    shown = subprocess.run(
        ["bash", str(BUILD), engine],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    gateway, engine_image = shown.stdout.split()[-2:]
    return Images(gateway, engine_image)


def unique(kind: str) -> str:
    return f"{NAME_PREFIX}-{kind}-{os.getpid()}-{next(_numbers)}"


def exit_code(container: str) -> int:
    return int(podman("inspect", "--format", "{{.State.ExitCode}}", container).stdout)


def running(container: str) -> bool:
    shown = podman("inspect", "--format", "{{.State.Running}}", container, check=False)
    return shown.stdout.strip() == "true"


@contextlib.contextmanager
def removed(*objects: tuple[str, str]) -> Iterator[None]:
    """Removes each (kind, name) at the end: kind "pod", "container" or "volume"."""
    try:
        yield
    finally:
        for kind, name in objects:
            # A container's anonymous volumes (the engine image's /data) go with it.
            extra = ("--volumes",) if kind == "container" else ()
            podman(kind, "rm", "--force", *extra, name, check=False)


@dataclass(frozen=True)
class Pod:
    name: str
    base_url: str  # the gateway's public port, published
    admin_url: str  # its admin port, published

    @property
    def gateway(self) -> str:
        return f"{self.name}-gateway"

    @property
    def engine(self) -> str:
        return f"{self.name}-engine"


# The counter of `GET`s passed through and answered 2xx, as /metrics shows it.
PASSED_GETS = (
    'engine_gateway_requests_total{method="GET",outcome="complete",'
    'route="passthrough",status_class="2xx"} '
)


def passed_gets(metrics: str) -> float:
    """How many `GET`s the gateway passed through with a 2xx, from its /metrics text."""
    lines = metrics.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(PASSED_GETS))


def wait_ready(admin_url: str, what: str) -> None:
    processes.wait_until(
        lambda: processes.http_status(admin_url + "/readyz") == 200,
        timeout_seconds=READY_SECONDS,
        what=what,
    )


def run_gateway_in(pod: Pod, container: str, image: str) -> None:
    """A gateway container in `pod`, in front of the engine on the pod's loopback."""
    podman(
        "run", "--detach", "--pod", pod.name, "--name", container,
        "--read-only", "--tmpfs", "/tmp",
        "--env", "ENGINE_GATEWAY_UPSTREAM=http://127.0.0.1:8080",
        image,
    )  # fmt: skip


@contextlib.contextmanager
def engine_pod(images: Images) -> Iterator[Pod]:
    """The gateway and the engine in one pod, as deploy/k8s runs them: one network
    namespace, the engine on its loopback only, the gateway's two ports published (on this
    machine's loopback, free ports); both read-only with a tmpfs /tmp, the engine's H2 on a
    volume of its own. The gateway starts first, as the native sidecar does."""
    name, data = unique("pod"), unique("data")
    port, admin_port = processes.free_port(), processes.free_port()
    pod = Pod(
        name, f"http://{processes.LOOPBACK}:{port}", f"http://{processes.LOOPBACK}:{admin_port}"
    )
    with removed(("pod", name), ("volume", data)):
        podman(
            "pod", "create", "--name", name,
            "--publish", f"{processes.LOOPBACK}:{port}:8000",
            "--publish", f"{processes.LOOPBACK}:{admin_port}:8001",
        )  # fmt: skip
        run_gateway_in(pod, pod.gateway, images.gateway)
        podman(
            "run", "--detach", "--pod", name, "--name", pod.engine,
            "--read-only", "--tmpfs", "/tmp", "--volume", f"{data}:/data",
            "--env", "SERVER_ADDRESS=127.0.0.1", *ENGINE_ENV,
            images.engine,
        )  # fmt: skip
        wait_ready(pod.admin_url, f"pod {name} ready")
        yield pod
