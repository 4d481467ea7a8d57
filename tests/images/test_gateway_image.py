"""The gateway's image alone, on the host's network in front of the test engine (a process
on this machine): what it runs as, what it may write, two workers on a tmpfs /tmp, and
what is not in it."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import processes
from tests.images import podman
from tests.integration import engine_api

CALLS = 40
# The build machine's own certificate authorities (a proxy's, here): none may be trusted
# inside the image, which gets Debian's bundle only.
HOST_AUTHORITIES = Path("/usr/local/share/ca-certificates")
HOST_ONLY_VARIABLES = re.compile(r"PROXY|CERT|CA_BUNDLE|CAINFO|PIP_|SSL_", re.IGNORECASE)


@dataclass(frozen=True)
class Running:
    container: str
    base_url: str
    admin_url: str


@pytest.fixture(scope="module")
def two_workers(images: podman.Images, engine_process: processes.Running) -> Iterator[Running]:
    name = podman.unique("gateway")
    port, admin_port = processes.free_port(), processes.free_port()
    with podman.removed(("container", name)):
        podman.podman(
            "run", "--detach", "--name", name, "--network", "host",
            "--read-only", "--tmpfs", "/tmp",
            images.gateway,
            "--host", processes.LOOPBACK, "--port", str(port),
            "--admin-host", processes.LOOPBACK, "--admin-port", str(admin_port),
            "--upstream", engine_process.base_url, "--workers", "2",
        )  # fmt: skip
        running = Running(
            name, f"http://{processes.LOOPBACK}:{port}", f"http://{processes.LOOPBACK}:{admin_port}"
        )
        podman.wait_ready(running.admin_url, "the gateway's container ready")
        yield running


def test_it_runs_as_a_user_that_is_not_root(two_workers: Running) -> None:
    uid = podman.podman("exec", two_workers.container, "id", "-u").stdout.strip()
    assert uid == "10001"


def test_its_root_filesystem_is_read_only_and_only_tmp_is_written(two_workers: Running) -> None:
    refused = podman.podman("exec", two_workers.container, "touch", "/probe", check=False)
    assert refused.returncode != 0
    assert "Read-only file system" in refused.stderr
    podman.podman("exec", two_workers.container, "touch", "/tmp/probe")


def test_two_workers_share_the_port_and_their_metrics_add_up(two_workers: Running) -> None:
    def counted() -> float:
        with urllib.request.urlopen(two_workers.admin_url + "/metrics", timeout=10) as answer:  # noqa: S310
            return podman.passed_gets(answer.read().decode())

    before = counted()
    for _ in range(CALLS):  # each call on a connection of its own: the kernel picks a worker
        assert engine_api.call(two_workers.base_url, "GET", "/engine") == [{"name": "default"}]
    assert counted() == before + CALLS  # both workers' counts, from the tmpfs
    logs = podman.podman("logs", two_workers.container).stderr
    served_by = set(re.findall(r" pid=(\d+) method=GET route=passthrough ", logs))
    assert len(served_by) == 2, served_by
    # Their shared metrics are on the tmpfs.
    shared = podman.podman(
        "exec", two_workers.container, "sh", "-c", "ls -d /tmp/engine-gateway-metrics-*"
    )
    assert len(shared.stdout.split()) == 1, shared.stdout


def test_two_workers_with_no_writable_tmp_say_so_in_one_line(images: podman.Images) -> None:
    # Kubernetes' readOnlyRootFilesystem with no emptyDir at /tmp; podman mounts tmpfs
    # there for --read-only unless told not to.
    port, admin_port = processes.free_port(), processes.free_port()
    shown = podman.podman(
        "run", "--rm", "--network", "host", "--read-only", "--read-only-tmpfs=false",
        images.gateway,
        "--host", processes.LOOPBACK, "--port", str(port),
        "--admin-host", processes.LOOPBACK, "--admin-port", str(admin_port),
        "--workers", "2",
        check=False, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 1
    assert "mount a tmpfs at /tmp" in shown.stderr
    assert "Traceback" not in shown.stderr


def _in_image(image: str, *command: str) -> subprocess.CompletedProcess[str]:
    return podman.podman(
        "run", "--rm", "--entrypoint", command[0], image, *command[1:], check=False
    )


def test_no_pip_no_compiler_no_wheels_in_the_image(images: podman.Images) -> None:
    assert _in_image(images.gateway, "python3", "-m", "pip", "--version").returncode != 0
    for tool in ("gcc", "cc", "pip", "pip3"):
        assert _in_image(images.gateway, "sh", "-c", f"command -v {tool}").returncode != 0, tool
    assert _in_image(images.gateway, "test", "-e", "/wheels").returncode != 0
    # What it does have: the console script the tests run, from the venv.
    found = _in_image(images.gateway, "sh", "-c", "command -v engine-gateway")
    assert found.stdout.strip() == "/opt/engine-gateway/bin/engine-gateway"


def test_nothing_of_the_build_machine_is_trusted_or_configured_in_the_images(
    images: podman.Images,
) -> None:
    for image in (images.gateway, images.engine):
        environment = podman.podman("image", "inspect", "--format", "{{json .Config.Env}}", image)
        names = [pair.split("=", 1)[0] for pair in json.loads(environment.stdout)]
        assert not [name for name in names if HOST_ONLY_VARIABLES.search(name)], names
    bundle = _in_image(images.gateway, "cat", "/etc/ssl/certs/ca-certificates.crt").stdout
    assert "BEGIN CERTIFICATE" in bundle  # Debian's, for an https engine
    local = _in_image(images.gateway, "ls", "-A", "/usr/local/share/ca-certificates").stdout
    assert local.strip() == ""
    with contextlib.suppress(FileNotFoundError):
        for authority in HOST_AUTHORITIES.glob("*.crt"):
            body = "".join(
                line for line in authority.read_text().splitlines() if "CERTIFICATE" not in line
            )
            assert body[:64] not in bundle.replace("\n", ""), authority
    assert _in_image(images.gateway, "test", "-e", "/etc/pip.conf").returncode != 0
