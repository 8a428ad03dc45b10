"""Every file the code, the tests and the docs cite exists in the repository, so a person who clones the project
can follow each citation.

* ``runware.md §5.1``, ``fal.md §1.7``, ``eachlabs.md §2.3`` are sections of ``docs/protocols/<provider>.md``
  (their existence is checked by tests/emulators/test_protocol_references.py); ``fal.md SEED3`` names a source
  tag of that page's §0;
* any other ``*.md`` or ``docs/...`` path must exist;
* nothing cites the developers' notes outside the repository (``shared/``, the style guide, "seed 00N").
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CITING = [*ROOT.joinpath("photomaker_bridge").rglob("*.py"), *ROOT.joinpath("tests").rglob("*.py"),
          *ROOT.joinpath("benchmarks").rglob("*.py"), *ROOT.joinpath("docs").rglob("*.md"), ROOT / "README.md"]
MARKDOWN = {path.name for path in ROOT.rglob("*.md") if ".venv" not in path.parts and ".git" not in path.parts}
PATH = re.compile(r"(?<![\w/.-])((?:docs|benchmarks|tests|photomaker_bridge)/[\w./-]*\w)")
NAME = re.compile(r"(?<![\w/.-])([\w-]+\.md)\b")
TAG = re.compile(r"\b(runware|fal|eachlabs)\.md (SEED[\w-]*|[A-Z][A-Z0-9]*(?:-[A-Z]+)?)\b")
OUTSIDE = re.compile(r"shared/|style-guide|seed 00\d|/work/")
SOURCE_TAG = re.compile(r"\b[A-Z][A-Z0-9]*(?:-[A-Z]+)?,?\s(?:[\w.]+\s)?`?$")
"""What stands before a file of another repository: its source tag (``NEWPY `tests/...```, ``SDK `docs/...```)."""


def _ours(text: str, pattern: re.Pattern[str]) -> set[str]:
    """The matches of ``pattern`` that are not files of another repository (named after a source tag)."""
    return {match.group(1) for match in pattern.finditer(text)
            if not SOURCE_TAG.search(text[max(0, match.start() - 24):match.start()])}


def _text(path: Path) -> str:
    """The file's text, without lines that cite an outside source by its URL (a file of another repository)."""
    return "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if "https://" not in line)


def _tags(page: str) -> set[str]:
    sources = (ROOT / "docs" / "protocols" / f"{page}.md").read_text(encoding="utf-8").partition("\n## 1.")[0]
    return set(re.findall(r"^\| ([A-Z0-9-]+) \|", sources, re.MULTILINE))


@pytest.mark.parametrize("path", CITING, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_citation_resolves(path: Path) -> None:
    text = _text(path)
    if path == Path(__file__):
        return  # this file names the forbidden forms to forbid them
    outside = sorted(set(OUTSIDE.findall(text)))
    assert not outside, f"cites notes outside the repository: {outside}"
    missing = sorted({cited for cited in _ours(text, PATH) if "*" not in cited and "{" not in cited
                      and not (ROOT / cited).exists() and not (ROOT / cited.rstrip(".")).exists()})
    assert not missing, f"cites paths that do not exist: {missing}"
    unknown = sorted({name for name in _ours(text, NAME) if name not in MARKDOWN})
    assert not unknown, f"cites Markdown files that do not exist: {unknown}"
    undefined = sorted({f"{page}.md {tag}" for page, tag in TAG.findall(text) if tag not in _tags(page)})
    assert not undefined, f"cites source tags no page defines: {undefined}"
