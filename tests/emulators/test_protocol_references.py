"""Every ``runware.md §n``, ``fal.md §n`` and ``eachlabs.md §n`` the code cites is a section of
docs/protocols/<provider>.md, and every source tag those pages use is defined in their §0."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("runware", "fal", "eachlabs")
NOT_TAGS = frozenset({"USD", "SSE", "JSON", "URL", "UUID", "HTTP"})
"""Upper-case words in parentheses that are not source tags."""
CITATION = re.compile(r"\b(runware|fal|eachlabs)\.md ?((?:§[0-9]+(?:\.[0-9]+)*[,–/ ]*(?:and )?)+)")


def sections(page: str) -> set[str]:
    """The section numbers of a protocol page's headings (``2``, ``2.3`` ...)."""
    text = (ROOT / "docs" / "protocols" / f"{page}.md").read_text(encoding="utf-8")
    return set(re.findall(r"^#+ ([0-9]+(?:\.[0-9]+)*)\.? ", text, re.MULTILINE))


def citations() -> list[tuple[str, str, str]]:
    """(file, page, section) for every citation in the package and the tests."""
    found = []
    for path in [*ROOT.joinpath("photomaker_bridge").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py")]:
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            for section in re.findall(r"§([0-9]+(?:\.[0-9]+)*)", match.group(2)):
                found.append((str(path.relative_to(ROOT)), match.group(1), section))
    return found


def test_the_code_cites_the_pages() -> None:
    assert {page for _, page, _ in citations()} == set(PAGES)


@pytest.mark.parametrize("page", PAGES)
def test_every_cited_section_exists(page: str) -> None:
    headings = sections(page)
    missing = sorted({(path, section) for path, cited, section in citations()
                      if cited == page and section not in headings})
    assert not missing, f"cited but not in docs/protocols/{page}.md: {missing}"


@pytest.mark.parametrize("page", PAGES)
def test_every_source_tag_is_defined(page: str) -> None:
    text = (ROOT / "docs" / "protocols" / f"{page}.md").read_text(encoding="utf-8")
    sources, _, body = text.partition("\n## 1.")
    defined = set(re.findall(r"^\| ([A-Z0-9-]+) \|", sources, re.MULTILINE))
    used = set(re.findall(r"\(([A-Z][A-Z0-9]*(?:-[A-Z]+)?)[ ,)]", body)) - NOT_TAGS
    assert used <= defined, f"tags used but not defined in §0 of {page}.md: {sorted(used - defined)}"
