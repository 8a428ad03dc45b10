"""``--out`` is checked before anything is sent, and a paid result is never lost to a save that fails.

Every refusal is checked against the emulators' counters: not one request reached any of them.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from photomaker_bridge.cli import EXIT_INPUT, EXIT_NOT_SAVED, EXIT_OK, main
from photomaker_bridge.emulators import Emulators, EmulatorSettings, start_emulators

ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    fast = {name: EmulatorSettings(run_time=0.05) for name in ENVIRONMENT}
    with start_emulators(**fast) as running:
        yield running


def base_url(emulators: Emulators, provider: str) -> str:
    return emulators.runware.rest_url if provider == "runware" else emulators[provider].url


def generate(emulators: Emulators, provider: str, monkeypatch: pytest.MonkeyPatch,
             *extra: str) -> tuple[int, str, str]:
    monkeypatch.setenv(ENVIRONMENT[provider], emulators[provider].api_key)
    out, err = io.StringIO(), io.StringIO()
    code = main(["generate", "--provider", provider, "--prompt", "a woman img", "--sample-faces", "1",
                 "--base-url", base_url(emulators, provider), *extra], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def requests_seen(emulators: Emulators) -> int:
    return sum(handle.state.counters["requests"] for handle in emulators)


def unwritable_folder(tmp_path: Path) -> str:
    """A folder no file can be created in, even by root: a read-only pseudo file system when running as root
    (permission bits do not stop root), a folder without write permission otherwise."""
    if os.geteuid() == 0:
        return "/proc/self"
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    return str(folder)


@pytest.mark.parametrize("provider", ["runware", "fal", "eachlabs"])
@pytest.mark.parametrize("case", ["existing file", "unwritable folder", "typo in the path"])
def test_a_bad_out_fails_before_any_request(case: str, provider: str, emulators: Emulators, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("not a folder")
    target = {
        "existing file": str(existing),
        "unwritable folder": unwritable_folder(tmp_path),
        "typo in the path": str(tmp_path / "reuslts" / "today" / "images"),
    }[case]
    before = requests_seen(emulators)
    code, out, err = generate(emulators, provider, monkeypatch, "--out", target)
    assert code == EXIT_INPUT, err
    assert requests_seen(emulators) == before  # nothing was sent, nothing paid for
    assert out == "" and err.count("\n") == 1 and err.startswith("error: --out: ") and target in err
    assert "Traceback" not in err
    assert existing.read_text() == "not a folder"
    if case == "typo in the path":
        assert "reuslts does not exist" in err and not (tmp_path / "reuslts").exists()


def test_a_new_folder_under_an_existing_one_is_created(emulators: Emulators, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = generate(emulators, "fal", monkeypatch, "--out", str(tmp_path / "new"))
    assert code == EXIT_OK, err
    assert sorted(path.name for path in (tmp_path / "new").iterdir()) == ["fal.json", "fal_1.png"]
    assert f"fal image 1: {tmp_path / 'new' / 'fal_1.png'}" in out


def test_without_out_the_summary_lists_each_image_url(emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = generate(emulators, "eachlabs", monkeypatch, "--num-images", "2")
    assert code == EXIT_OK, err
    lines = [line for line in out.splitlines() if line.startswith("eachlabs image ")]
    assert [line.split(": ", 1)[0] for line in lines] == ["eachlabs image 1", "eachlabs image 2"]
    assert all(line.split(": ", 1)[1].startswith(emulators.eachlabs.url) for line in lines)


def test_a_save_that_fails_after_generation_prints_the_urls_and_exits_6(
        emulators: Emulators, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder passed the check, then the disk refused (simulated by taking the folder away)."""
    import photomaker_bridge._cli_jobs as jobs

    folder = tmp_path / "results"
    real_save = jobs.save_result

    def disk_refuses(result: object, target: Path) -> list[Path]:
        target.rmdir()
        target.write_text("the disk changed under us")  # a file where the folder was: saving fails
        return real_save(result, target)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "save_result", disk_refuses)
    code, out, err = generate(emulators, "runware", monkeypatch, "--out", str(folder))
    assert code == EXIT_NOT_SAVED
    assert "generated but could not be saved" in err
    url_line = next(line for line in out.splitlines() if line.startswith("runware image 1: "))
    assert url_line.split(": ", 1)[1].startswith(emulators.runware.url)
    summary = json.loads(out[out.index("{"):])
    assert summary["provider"] == "runware" and summary["images"][0]["url"]


def test_processes_creating_the_same_new_out_folder_at_once_all_get_it(tmp_path: Path) -> None:
    # Shards of one batch (`batch --shard K/N --out DIR`) start together and may all find DIR missing; each must
    # get the folder, not "File exists" from the one that lost the race.
    import threading

    from photomaker_bridge._console import check_out_folder

    for round_number in range(20):
        folder = tmp_path / f"out-{round_number}"
        start = threading.Barrier(8)
        errors: list[BaseException] = []

        def create(folder: Path = folder, start: threading.Barrier = start,
                   errors: list[BaseException] = errors) -> None:
            start.wait()
            try:
                check_out_folder(str(folder))
            except BaseException as error:  # any failure is the finding
                errors.append(error)

        threads = [threading.Thread(target=create) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors and folder.is_dir()
