"""The JSON doors as README.md and SECURITY.md list them are the route table's, row for row:
a door added to gateway/routes.py without its line in the docs fails here.

`python -m tests.unit.test_json_doors_docs` prints both lists, to paste between the markers.
"""

from __future__ import annotations

import re

from gateway.routes import JSON_DOORS, JsonDoor
from tests.processes import ROOT

BEGIN, END = "<!-- json-doors: begin -->", "<!-- json-doors: end -->"
REGENERATE = "regenerate it: python -m tests.unit.test_json_doors_docs"


def _path(door: JsonDoor) -> str:
    return "/" + re.sub(r"\(\?P<\w+>[^)]*\)", "{name}", door.path)


def _places(places: tuple[tuple[str, ...], ...]) -> str:
    shown = [".".join(place).replace(".[]", "[]") or "." for place in places]
    return ", ".join(f"`{place}`" for place in shown) or "—"


def doors_table() -> str:
    """README's table: every door, where its File and Bytes values are."""
    lines = [
        "| route label | method | path below the API root "
        "| File and Bytes values in the request | in the answer |",
        "|---|---|---|---|---|",
    ]
    for door in JSON_DOORS:
        lines.append(
            f"| `{door.label}` | {door.method} | `{_path(door)}` "
            f"| {_places(door.up)} | {_places(door.down)} |"
        )
    return "\n".join(lines)


def doors_by_label() -> str:
    """SECURITY.md's list: the doors by route label, requests first, then answers."""
    lines = []
    for label in dict.fromkeys(door.label for door in JSON_DOORS):
        doors = [door for door in JSON_DOORS if door.label == label]
        up = [f"{door.method} `{_path(door)}`" for door in doors if door.up]
        down = [f"{door.method} `{_path(door)}`" for door in doors if door.down]
        line = f"- `{label}`: " + ("; ".join(up) if up else "no request door")
        if down:
            line += "; answers: " + "; ".join(down)
        lines.append(line)
    return "\n".join(lines)


def _listed(document: str) -> str:
    text = (ROOT / document).read_text()
    assert BEGIN in text, f"{document} has no list of the JSON doors"
    return text.split(BEGIN, 1)[1].split(END, 1)[0].strip()


def test_the_readme_lists_every_json_door_as_the_route_table_has_it() -> None:
    assert _listed("README.md") == doors_table(), REGENERATE


def test_security_md_lists_every_json_door_by_label() -> None:
    assert _listed("SECURITY.md") == doors_by_label(), REGENERATE


if __name__ == "__main__":
    print(doors_table(), doors_by_label(), sep="\n\n")
