"""``pip install photomaker-bridge && photomaker-bridge demo`` works in a fresh virtual environment.

The package is installed from this checkout the way a user installs it — no extras, no editable mode, its
dependencies resolved by pip from the package registry — into a new venv that shares nothing with the test's
own. Then the demo runs there from an empty folder with no keys in the environment. This is the one test that
reaches past loopback: pip, in its own process, fetches the declared dependencies (the suite's network guard
covers the test process, where nothing leaves loopback).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("RUNWARE_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "EACHLABS_API_KEY")


def clean_environment() -> dict[str, str]:
    """The test's environment without keys and without anything pointing at the test's own venv."""
    drop = {*KEYS, "PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME", "PYTEST_CURRENT_TEST"}
    return {name: value for name, value in os.environ.items() if name not in drop}


def run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(command, cwd=cwd, env=clean_environment(), capture_output=True, text=True,
                               timeout=timeout, check=False)
    assert completed.returncode == 0, f"{command}\n{completed.stdout}\n{completed.stderr}"
    return completed


def test_a_plain_install_in_a_fresh_venv_runs_the_demo(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path, timeout=300)
    python = venv / "bin" / "python"
    run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(ROOT)], cwd=tmp_path,
        timeout=900)
    installed = run([str(python), "-m", "pip", "list", "--format=json"], cwd=tmp_path, timeout=120).stdout
    names = {entry["name"].lower() for entry in json.loads(installed)}
    assert "photomaker-bridge" in names
    assert not names & {"pytest", "runware", "mypy", "hypothesis"}  # nothing from the dev extra

    work = tmp_path / "user"
    work.mkdir()
    demo = run([str(venv / "bin" / "photomaker-bridge"), "demo", "--out", "demo"], cwd=work, timeout=300)
    assert demo.stdout.rstrip().splitlines()[-1] == "report: demo/report.html"
    summary = json.loads((work / "demo" / "summary.json").read_text())
    assert [item["provider"] for item in summary["providers"]] == ["eachlabs", "fal", "runware"]
    assert all(item["successes"] == item["jobs"] == 2 for item in summary["providers"])
    images = sorted(path.suffix for path in (work / "demo" / "images").iterdir())
    # Runware's default output is JPEG: the emulators render it with Pillow, a dependency of the plain install;
    # the report (Jinja2) and the contact sheet (Pillow) need nothing more.
    assert images == [".jpg"] * 4 + [".png"] * 8
    assert (work / "demo" / "contact_sheet.png").is_file()
    version = run([str(venv / "bin" / "photomaker-bridge"), "--version"], cwd=work, timeout=60).stdout
    assert version.startswith("photomaker-bridge ")
