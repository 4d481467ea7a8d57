"""The README's tour, run as a newcomer runs it after `CLAMD=on make run`: every shell block
after a `<!-- tour -->` line, in order, in one working directory, against the real engine
and a gateway scanning with clamd, each block's output checked against the `text` block
under it. docs/documents.md's tour of the documents API likewise, after
`DOCUMENTS=file make run`: against a gateway with a file store.

Only the addresses change: `make run`'s ports (8000, 8001, 8080) become this test's free
ones. Variables a block sets (the instance, the task) are there for the next, as in one
shell. A block runs under `set -eu`, so a command that fails stops it; an expected line
matches an output line whole, `…` standing for any text, and the expected lines must come
in the order of the output.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests import processes
from tests.integration.documents import store_gateway

README = processes.ROOT / "README.md"
DOCUMENTS = processes.ROOT / "docs" / "documents.md"
_BLOCK = re.compile(r"<!-- tour -->\n```sh\n(.*?)```\n(?:```text\n(.*?)```\n)?", re.S)
# What `make run` listens on, as the README writes it.
MAKE_RUN = {"gateway": "127.0.0.1:8000", "admin": "127.0.0.1:8001", "engine": "127.0.0.1:8080"}


@dataclass(frozen=True)
class Block:
    line: int  # where it starts in the README
    script: str
    expected: tuple[str, ...]


def tour(text: str) -> list[Block]:
    return [
        Block(
            text.count("\n", 0, found.start()) + 2,
            found.group(1),
            tuple(found.group(2).splitlines()) if found.group(2) else (),
        )
        for found in _BLOCK.finditer(text)
    ]


def matches(expected: tuple[str, ...], output: str) -> bool:
    """Each expected line matches an output line, in order; `…` is any text."""
    lines = iter(line.rstrip("\r") for line in output.splitlines())
    for wanted in expected:
        pattern = re.compile(".*".join(re.escape(piece) for piece in wanted.split("…")))
        if not any(pattern.fullmatch(line) for line in lines):
            return False
    return True


@pytest.mark.parametrize("page", [README, DOCUMENTS], ids=lambda page: page.name)
def test_the_tour_has_runnable_blocks_each_with_its_output(page: Path) -> None:
    blocks = tour(page.read_text())
    assert len(blocks) >= 5
    assert all(block.expected for block in blocks)


def test_the_matcher_needs_every_line_in_order() -> None:
    output = "a 1\nb 2\nc 3\n"
    assert matches(("a …", "c 3"), output)
    assert not matches(("c 3", "a …"), output)
    assert not matches(("b",), output)


@pytest.fixture(scope="module")
def documents_gateway(
    engine_process: processes.Running, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[processes.Gateway]:
    """As `DOCUMENTS=file make run` starts it: a file store, files over 1 MiB offloaded."""
    work = tmp_path_factory.mktemp("documents-tour")
    with store_gateway(work, engine_process.base_url) as started:
        yield started


@pytest.mark.engine
@pytest.mark.parametrize(
    ("page", "gateway_fixture"),
    [(README, "scanning_gateway"), (DOCUMENTS, "documents_gateway")],
    ids=["README.md", "documents.md"],
)
def test_the_tour_runs_as_written(
    engine_process: processes.Running,
    page: Path,
    gateway_fixture: str,
    request: pytest.FixtureRequest,
    tmp_path: Path,
) -> None:
    gateway: processes.Gateway = request.getfixturevalue(gateway_fixture)
    here = {
        "gateway": gateway.base_url.removeprefix("http://"),
        "admin": gateway.admin_url.removeprefix("http://"),
        "engine": engine_process.base_url.removeprefix("http://"),
    }
    # The tour runs at the repository's root: it reads deploy/engine/process.
    (tmp_path / "deploy").symlink_to(processes.ROOT / "deploy")
    state = tmp_path / "state.sh"
    state.write_text("")
    for block in tour(page.read_text()):
        script = block.script
        for name, address in MAKE_RUN.items():
            script = script.replace(address, here[name])
        # One shell's variables across blocks: each block starts from what the last left.
        wrapped = f"set -a\n. {state}\nset -eu\n{script}\nexport -p > {state}\n"
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", wrapped],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "LC_ALL": "C.UTF-8"},
        )
        where = f"{page.name} line {block.line}"
        assert done.returncode == 0, f"{where} failed:\n{done.stdout}\n{done.stderr}"
        assert matches(block.expected, done.stdout), (
            f"{where} printed:\n{done.stdout}\nexpected:\n" + "\n".join(block.expected)
        )
