"""docs/routing.md as a user meets it: its Python example runs against the emulators (``Bridge()`` pointed at them,
as the README's examples are), its shell lines parse with the real parser, and the tables it prints are the
library's own (the policy table, the strategies)."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_demo_and_readme import against_emulators

from photomaker_bridge.cli import build_parser
from photomaker_bridge.emulators import Emulators, start_emulators
from photomaker_bridge.routing import POLICIES, STRATEGIES
from photomaker_bridge.samples import sample_faces

DOCUMENT = Path(__file__).resolve().parent.parent / "docs" / "routing.md"
TEXT = DOCUMENT.read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(language: str) -> list[tuple[int, str]]:
    return [(TEXT.count("\n", 0, match.start()) + 1, match.group(2)) for match in BLOCK.finditer(TEXT)
            if match.group(1) == language]


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators() as running:
        yield running


@pytest.mark.parametrize(("line", "code"), blocks("python"), ids=lambda value: str(value)[:12])
def test_the_python_example_runs(line: int, code: str, emulators: Emulators, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(sample_faces()[0], tmp_path / "face.jpg")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"routing_md_line_{line}", "EMULATORS": emulators}
    exec(compile(against_emulators(code), f"routing.md:{line}", "exec"), namespace)
    result = namespace["result"]
    assert result.attempts[-1].outcome == "ok" and result.provider == "runware"  # the cheapest by its seed price


def test_every_shell_line_parses() -> None:
    commands = [command for _, block in blocks("bash") for command in block.replace("\\\n", " ").splitlines()
                if command.startswith("photomaker-bridge ")]
    assert len(commands) >= 2
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])


def test_the_policy_table_is_the_librarys() -> None:
    for name, policy in POLICIES.items():
        if name == "ProviderError":
            continue
        label = "a lost answer to a job-creating request (`may_have_accepted`)" if name == "may_have_accepted" \
            else f"`{name}`"
        row = next(line for line in TEXT.splitlines() if line.startswith(f"| {label} |"))
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert cells[1] == policy.action, name
        assert cells[2] == ("yes" if policy.breaker else "—" if policy.action == "cooldown" else "no"), name
    for strategy in STRATEGIES:
        assert f"**`{strategy}`**" in TEXT
