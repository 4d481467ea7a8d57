"""The container image's recipe, read without building it: the Dockerfile's shape, and the
package it installs, built as a wheel and run through the same console script the image
runs and every test starts. tests/images builds the images with podman and runs them."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

from gateway.__main__ import parse_config
from tests import processes

DOCKERFILE = processes.ROOT / "Dockerfile"
WHEELHOUSE_WRITER = processes.ROOT / "deploy" / "images" / "wheelhouse.sh"
BUILD_TOOLS = ("apt-get", "apk", "gcc", "build-essential", "make ", "cc ")


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    joined = text.replace("\\\n", " ")
    parsed = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            parsed.append(Instruction(keyword.upper(), arguments.strip()))
    return parsed


def stages(parsed: list[Instruction]) -> list[list[Instruction]]:
    split: list[list[Instruction]] = []
    for instruction in parsed:
        if instruction.keyword == "FROM":
            split.append([])
        if split:
            split[-1].append(instruction)
    return split


PARSED = instructions(DOCKERFILE.read_text())
FINAL = stages(PARSED)[-1]


def _one(stage: list[Instruction], keyword: str) -> str:
    found = [i.arguments for i in stage if i.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def test_the_image_is_built_in_two_stages_on_a_slim_python_base() -> None:
    built = stages(PARSED)
    assert len(built) == 2
    base = next(i.arguments for i in PARSED if i.keyword == "ARG").split("=", 1)[1]
    assert base.startswith("python:3.11-slim")
    # One base for both stages: the venv built in the first runs on the second's python.
    assert all(_one(stage, "FROM").startswith("${BASE}") for stage in built)
    assert _one(FINAL, "COPY").startswith("--from=build ")


def test_the_final_stage_runs_as_a_numeric_non_root_user_without_build_tools() -> None:
    user, _, group = _one(FINAL, "USER").partition(":")
    assert int(user) > 0
    assert int(group) > 0
    for run in (i.arguments for i in FINAL if i.keyword == "RUN"):
        assert not any(tool in run for tool in BUILD_TOOLS), run


def test_the_entrypoint_is_the_console_script_the_tests_run() -> None:
    entrypoint = json.loads(_one(FINAL, "ENTRYPOINT"))
    scripts = tomllib.loads((processes.ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint == ["engine-gateway"]
    assert entrypoint[0] in scripts
    assert processes.GATEWAY_COMMAND.name == entrypoint[0]


def test_the_images_environment_is_a_valid_configuration_listening_on_every_interface() -> None:
    env = dict(
        pair.split("=", 1)
        for instruction in FINAL
        if instruction.keyword == "ENV"
        for pair in shlex.split(instruction.arguments)
    )
    gateway_env = {k: v for k, v in env.items() if k.startswith("ENGINE_GATEWAY_")}
    config = parse_config([], gateway_env)
    everywhere = "0.0.0.0"  # noqa: S104 - inside its container, as Kubernetes needs
    assert (config.host, config.admin_host) == (everywhere, everywhere)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"  # the root filesystem may be read-only


def test_only_what_the_image_needs_is_sent_to_the_build() -> None:
    ignored = (processes.ROOT / ".dockerignore").read_text().splitlines()
    assert ignored[1] == "*"
    for instruction in PARSED:
        if instruction.keyword == "COPY" and not instruction.arguments.startswith("--from"):
            *sources, _ = instruction.arguments.split()
            for source in sources:
                assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignored}
                # `make image` (deploy/images/build.sh) makes the wheelhouse before a build.
                assert source == "build/wheelhouse", source
                assert source in WHEELHOUSE_WRITER.read_text()


def test_the_wheel_holds_every_module_and_its_console_script_runs(tmp_path: Path) -> None:
    # What `pip install .` puts into the image: the build context the Dockerfile copies,
    # built offline with the venv's setuptools (and not in the checkout, left clean).
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(processes.ROOT / name, context / name)
    shutil.copytree(
        processes.ROOT / "gateway",
        context / "gateway",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "wheel"), str(context)],
        check=True,
    )  # fmt: skip
    (wheel,) = (tmp_path / "wheel").glob("engine_gateway-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {name for name in archive.namelist() if name.startswith("gateway/")}
    sources = {f"gateway/{path.name}" for path in (processes.ROOT / "gateway").iterdir()}
    assert packaged == {name for name in sources if not name.endswith("__pycache__")}

    target = tmp_path / "installed"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    script = target / "bin" / "engine-gateway"
    environ = {**os.environ, "PYTHONPATH": str(target)}
    shown = subprocess.run(
        [str(script), "--help"],
        env=environ,
        cwd=tmp_path,  # not the checkout, whose gateway/ would be found first
        capture_output=True,
        text=True,
        check=True,
    )
    assert "ENGINE_GATEWAY_UPSTREAM" in shown.stdout
    where = subprocess.run(
        [sys.executable, "-c", "import gateway; print(gateway.__file__)"],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert where.stdout.startswith(str(target))
