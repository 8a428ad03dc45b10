"""Every ```python block of docs/testing-with-emulators.md runs as written.

A block that defines ``test_`` functions is a pytest module: all such blocks are written to a temporary
directory (beside a copy of this suite's ``conftest.py``, so the network guard applies there too) and run by
one pytest subprocess in pytest-asyncio's strict mode, as a user's project would run them. Every other block
is a script, executed here in a fresh namespace. A block right after an ``<!-- docs-example: skip -->`` line
is neither (there should be none).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "testing-with-emulators.md"
SKIP_MARK = "<!-- docs-example: skip -->"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks() -> list[tuple[int, str]]:
    """(line number, code) of each python block that is not marked to be skipped."""
    text = DOCUMENT.read_text(encoding="utf-8")
    blocks = []
    for match in BLOCK.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if before.strip() != SKIP_MARK:
            blocks.append((text.count("\n", 0, match.start()) + 1, match.group(1)))
    return blocks


def is_test_module(code: str) -> bool:
    return re.search(r"^(async )?def test_", code, re.MULTILINE) is not None


SCRIPTS = [(line, code) for line, code in python_blocks() if not is_test_module(code)]
TEST_MODULES = [(line, code) for line, code in python_blocks() if is_test_module(code)]


def test_the_document_has_both_kinds_of_example() -> None:
    assert len(SCRIPTS) >= 4 and len(TEST_MODULES) >= 2
    assert SKIP_MARK not in DOCUMENT.read_text(encoding="utf-8")


@pytest.mark.parametrize(("line", "code"), SCRIPTS, ids=[f"line-{line}" for line, _ in SCRIPTS])
def test_script_example_runs(line: int, code: str) -> None:
    namespace = {"__name__": f"docs_example_line_{line}"}
    exec(compile(code, f"{DOCUMENT.name}:{line}", "exec"), namespace)


def test_pytest_examples_pass(tmp_path: Path) -> None:
    for helper in ("conftest.py", "runware_sdks.py"):  # the suite's conftest imports the SDK finder beside it
        shutil.copy(Path(__file__).with_name(helper), tmp_path / helper)
    expected = 0
    for line, code in TEST_MODULES:
        (tmp_path / f"test_docs_line_{line}.py").write_text(code, encoding="utf-8")
        expected += len(re.findall(r"^(?:async )?def test_", code, re.MULTILINE))
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=strict",
         "-o", "asyncio_default_fixture_loop_scope=function",
         "-W", "error::pytest.PytestUnraisableExceptionWarning", "--rootdir", str(tmp_path), str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    report = completed.stdout + completed.stderr
    assert completed.returncode == 0, report
    assert re.search(rf"\b{expected} passed\b", report), report
