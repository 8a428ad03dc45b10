"""Every ```python block of docs/compare-and-batch.md runs as written (in a fresh folder, against the emulators
the blocks start themselves), and the page's picture is a PNG of the report."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from PIL import Image

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "compare-and-batch.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
BLOCKS = [(DOCUMENT.read_text().count("\n", 0, match.start()) + 1, match.group(1))
          for match in BLOCK.finditer(DOCUMENT.read_text(encoding="utf-8"))]


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line-{line}" for line, _ in BLOCKS])
def test_example_runs(line: int, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{DOCUMENT.name}:{line}", "exec"), {"__name__": f"docs_compare_line_{line}"})
    assert (tmp_path / os.listdir(tmp_path)[0] / "report.html").is_file()


def test_the_page_shows_a_screenshot_of_a_report() -> None:
    text = DOCUMENT.read_text(encoding="utf-8")
    (picture,) = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    with Image.open(DOCUMENT.parent / picture) as image:
        assert image.format == "PNG" and image.width >= 1000
    assert (DOCUMENT.parent / picture).stat().st_size < 200_000
    assert len(BLOCKS) >= 2
