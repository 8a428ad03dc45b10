"""The README as a new user meets it: the title, then the two commands (the demo works with no keys, and CI
runs the same test command), then examples that run.

Every ```python block runs, in a fresh namespace and an empty folder holding a ``face.jpg``, against the local
emulators, with only the change the README itself announces: ``Bridge()`` and ``AsyncBridge()`` get
``providers=emulators.providers()`` (the emulators' keys and base URLs). Every ``photomaker-bridge`` line of
the ```bash blocks parses with the real parser.
"""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from photomaker_bridge import ImageFormatWarning
from photomaker_bridge.cli import EXIT_INPUT, build_parser, main
from photomaker_bridge.emulators import Emulators, start_emulators
from photomaker_bridge.samples import sample_faces

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.DOTALL | re.MULTILINE)
SWAPS = {"AsyncBridge()": "AsyncBridge(providers=EMULATORS.providers())",
         "Bridge()": "Bridge(providers=EMULATORS.providers())"}


def blocks(language: str) -> list[tuple[int, str]]:
    """(line number, code) of each block in ``language``."""
    return [(README.count("\n", 0, match.start()) + 1, match.group(2)) for match in BLOCK.finditer(README)
            if match.group(1) == language]


def against_emulators(code: str) -> str:
    """``code`` with its clients pointed at the emulators — the one change the README announces."""
    swapped = re.sub(r"\bAsyncBridge\(\)|(?<!Async)\bBridge\(\)", lambda match: SWAPS[match.group(0)], code)
    assert swapped.count("EMULATORS.providers()") == code.count("Bridge()")
    return swapped


PYTHON = blocks("python")


def test_demo_runs_every_provider_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNWARE_API_KEY", "FAL_KEY", "FAL_KEY_ID", "FAL_KEY_SECRET", "EACHLABS_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo", "--out", str(tmp_path)], out=out, err=err) == 0, err.getvalue()
    # A small compare: one prompt × two styles × the three providers, two images each, then a report.
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [item["provider"] for item in summary["providers"]] == ["eachlabs", "fal", "runware"]
    assert all((item["jobs"], item["successes"], item["images"]) == (2, 2, 4) for item in summary["providers"])
    images = [path for path in (tmp_path / "images").iterdir() if re.match(r"(runware|fal|eachlabs)-", path.name)]
    assert len(images) == 12
    table = out.getvalue()
    for column in ("provider", "jobs", "success", "queue p50/p95 s", "run p50/p95 s", "total p50/p95 s"):
        assert column in table
    # The first command of the README ends by printing where the HTML report is.
    assert table.rstrip().splitlines()[-1] == f"report: {tmp_path / 'report.html'}"
    assert "would cost on the real providers" in err.getvalue()
    assert re.search(r"^\[ *\d+\.\d\ds\] fal 2/2: 2 ok, 0 failed, 0 in flight; ", err.getvalue(), re.MULTILINE)


def test_demo_refuses_an_out_that_is_a_file_before_starting(tmp_path: Path) -> None:
    existing = tmp_path / "summary.txt"
    existing.write_text("keep me")
    out, err = io.StringIO(), io.StringIO()
    assert main(["demo", "--out", str(existing)], out=out, err=err) == EXIT_INPUT
    assert err.getvalue().startswith("error: --out: ") and "existing file" in err.getvalue()
    assert out.getvalue() == "" and existing.read_text() == "keep me"


def test_readme_starts_with_the_title_then_the_two_commands_and_ci_runs_the_second() -> None:
    lines = README.splitlines()
    assert lines[0] == "# photomaker-bridge"
    first_block = lines.index("```bash")
    assert all(not line.strip() for line in lines[1:first_block])  # nothing between the title and the commands
    demo, tests = lines[first_block + 1], lines[first_block + 2]
    assert demo.endswith("photomaker-bridge demo") and tests.endswith("pytest -q")
    ci = (ROOT / ".ci" / "run").read_text()
    install = tests.split("&&")[1].strip()
    assert install.replace("-q ", "") in ci.replace("-q ", "")
    assert tests.split("&&")[-1].strip() in ci


def test_the_readme_has_runnable_examples_of_each_kind() -> None:
    code = "\n".join(block for _, block in PYTHON)
    assert len(PYTHON) >= 5
    for needed in ("Bridge()", "AsyncBridge()", "explain(", "submit(", "resume(", "start_emulators("):
        assert needed in code, needed


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators() as running:
        yield running


@pytest.mark.parametrize(("line", "code"), PYTHON, ids=[f"line-{line}" for line, _ in PYTHON])
def test_python_example_runs(line: int, code: str, emulators: Emulators, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(sample_faces()[0], tmp_path / "face.jpg")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": f"readme_line_{line}", "EMULATORS": emulators}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(compile(against_emulators(code), f"README.md:{line}", "exec"), namespace)
    if "spacesuit.png" in code:
        assert (tmp_path / "spacesuit.png").is_file()  # fal's images are PNG: kept as asked, no warning
        assert not [warning for warning in caught if issubclass(warning.category, ImageFormatWarning)]
    if "painting-" in code:
        assert sorted(path.name for path in tmp_path.glob("painting-*")) == ["painting-0.jpg", "painting-1.jpg"]


def test_save_into_a_png_name_writes_a_jpg_with_a_warning(emulators: Emulators, tmp_path: Path) -> None:
    """What the Quick start says about Runware's JPEG output."""
    from photomaker_bridge import Bridge, PhotoMakerRequest

    request = PhotoMakerRequest(prompt="a man img", images=[sample_faces()[0]])
    with Bridge(providers=emulators.providers()) as bridge:
        result = bridge.generate(request, "runware", timeout=60)
    with pytest.warns(ImageFormatWarning, match=r"the image is JPEG, not PNG: saved as .*out\.jpg"):
        saved = result.images[0].save(tmp_path / "out.png")
    assert saved == tmp_path / "out.jpg" and saved.read_bytes()[:2] == b"\xff\xd8"
    assert not (tmp_path / "out.png").exists()


def test_every_shell_example_parses() -> None:
    commands = [line for _, block in blocks("bash") for line in block.splitlines()
                if line.startswith("photomaker-bridge ")]
    assert len(commands) >= 6
    parser = build_parser()
    for command in commands:
        arguments = shlex.split(command)[1:]
        if arguments == ["--version"]:
            continue
        parser.parse_args(arguments)  # a usage error would exit 2
