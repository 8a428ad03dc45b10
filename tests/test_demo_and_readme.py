"""The README's two commands: the demo works with no keys, and CI runs the same test command."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from photomaker_bridge.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_every_provider_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNWARE_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "EACHLABS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo", "--out", str(tmp_path)], out=out, err=err) == 0, err.getvalue()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [result["provider"] for result in summary["results"]] == ["runware", "fal", "eachlabs"]
    assert all(result["images"] == 2 for result in summary["results"]) and summary["failures"] == {}
    images = [path for path in tmp_path.iterdir() if re.match(r"(runware|fal|eachlabs)_\d\.(png|jpg)$", path.name)]
    assert len(images) == 6
    table = out.getvalue()
    for column in ("provider", "images", "seed", "queue s", "run s", "total s", "cost", "warnings"):
        assert column in table


def test_readme_starts_with_the_two_commands_and_ci_runs_the_second() -> None:
    readme = (ROOT / "README.md").read_text().splitlines()
    assert readme[0] == "```bash"
    demo, tests = readme[1], readme[2]
    assert demo.endswith("photomaker-bridge demo") and tests.endswith("pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    install = tests.split("&&")[1].strip()
    assert install.replace("-q ", "") in ci.replace("-q ", "")
    assert tests.split("&&")[-1].strip() in ci
