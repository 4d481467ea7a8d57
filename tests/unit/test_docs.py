"""The pages a user reads: README.md, SECURITY.md and docs/. What the code knows is what
`make docs` writes (docs/generate.py), and every relative link and anchor resolves.
(tests/integration/test_readme_tour.py runs the README's tour against the real engine.)
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from docs import generate
from gateway import metrics
from gateway.__main__ import OPTIONS
from tests.processes import ROOT

PAGES = (ROOT / "README.md", ROOT / "SECURITY.md", *sorted((ROOT / "docs").glob("*.md")))
_FENCE = re.compile(r"^```.*?^```", re.S | re.M)
_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.M)


def _prose(page: Path) -> str:
    """The page without its code blocks, where a `[x](y)` is no link."""
    return _FENCE.sub("", page.read_text())


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(heading) for heading in _HEADING.findall(_prose(page))}


def links(page: Path) -> list[str]:
    return [
        target
        for target in _LINK.findall(_prose(page))
        if not re.match(r"^[a-z]+:", target)  # http:, https:, mailto:
    ]


def test_every_generated_part_is_what_make_docs_writes() -> None:
    assert generate.stale() == [], "run make docs"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    for target in links(page):
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: {target} does not exist"
        if fragment:
            assert linked.suffix == ".md", f"{page.name}: {target}"
            assert fragment in anchors(linked), f"{page.name}: no heading for {target}"


def test_the_link_check_sees_a_broken_link_and_a_broken_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n[a](missing.md) [b](#nowhere) [c](#title)\n```\n[d](x.md)\n```\n")
    assert links(page) == ["missing.md", "#nowhere", "#title"]
    assert anchors(page) == {"title"}


def test_anchors_are_githubs() -> None:
    assert anchor("Download names (`Content-Disposition`)") == "download-names-content-disposition"
    assert anchor("Multipart uploads, validated") == "multipart-uploads-validated"


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200
    first_screen = "\n".join(lines[:40])
    assert "--upstream http://your-engine" in first_screen  # run it before your own engine


def test_every_flag_environment_variable_and_metric_family_is_in_the_docs() -> None:
    reference = "\n".join(page.read_text() for page in PAGES)
    for option in OPTIONS:
        assert f"`{option.flag}`" in reference
        assert f"`{option.env}`" in reference
    for family in metrics.create().registry.collect():
        assert family.name in reference


def test_a_page_with_unbalanced_markers_is_refused() -> None:
    with pytest.raises(generate.PageError):
        generate.markers("<!-- generated: a -->\n<!-- generated: b -->\n")
    with pytest.raises(generate.PageError):
        generate.markers("<!-- generated: a -->\n")
    with pytest.raises(generate.PageError):
        generate.markers("<!-- generated: a -->\n<!-- /generated: b -->\n")
    assert generate.markers("<!-- generated: a -->\nx\n<!-- /generated: a -->\n") == ["a"]


def test_a_part_is_replaced_and_the_prose_around_it_kept() -> None:
    text = "before\n<!-- generated: a -->\nold\n<!-- /generated: a -->\nafter\n"
    assert generate.replaced(text, "a", "new\n") == (
        "before\n<!-- generated: a -->\nnew\n<!-- /generated: a -->\nafter\n"
    )
