"""The engine's image on PostgreSQL, through Spring Boot's SPRING_DATASOURCE_* variables as
deploy/k8s/overlays/postgres sets them (on H2, its default, it runs in test_pod.py)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests import processes
from tests.images import podman
from tests.integration import engine_api


def test_the_engine_image_keeps_its_data_in_postgresql(
    images: podman.Images, tmp_path: Path
) -> None:
    name = podman.unique("engine")
    port = processes.free_port()
    with processes.postgres(tmp_path) as database, podman.removed(("container", name)):
        podman.podman(
            "run", "--detach", "--name", name, "--network", "host",
            "--read-only", "--tmpfs", "/tmp",
            "--env", f"SPRING_DATASOURCE_URL={database.jdbc_url}",
            "--env", f"SPRING_DATASOURCE_USERNAME={processes.POSTGRES_USER}",
            "--env", f"SPRING_DATASOURCE_PASSWORD={database.password}",
            "--env", f"SERVER_ADDRESS={processes.LOOPBACK}", "--env", f"SERVER_PORT={port}",
            *podman.ENGINE_ENV, images.engine,
        )  # fmt: skip
        base_url = f"http://{processes.LOOPBACK}:{port}"
        processes.wait_until(
            lambda: processes.http_status(base_url + "/engine-rest/engine") == 200,
            timeout_seconds=podman.READY_SECONDS,
            what="the engine's container on PostgreSQL",
        )
        deployed = engine_api.deploy(base_url)
        instance_id, _ = engine_api.start_instance(base_url)
        # The ids are the engine's own (UUIDs), not input: quoted into the query as they are.
        query = (
            "select (select count(*) from act_re_deployment where id_ = "  # noqa: S608
            f"'{deployed['id']}'), (select count(*) from act_ru_execution where id_ = "
            f"'{instance_id}')"
        )
        rows = subprocess.run(
            [
                str(processes.postgres_bin() / "psql"),
                "--host", processes.LOOPBACK, "--port", str(database.port),
                "--username", processes.POSTGRES_USER, "--dbname", processes.POSTGRES_DATABASE,
                "--tuples-only", "--no-align", "--command", query,
            ],
            env={**os.environ, "PGPASSWORD": database.password},
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert rows.strip() == "1|1"
