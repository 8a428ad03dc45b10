"""``photomaker-bridge batch --route P[,P...]`` with ``--strategy``, ``--max-attempts`` and ``--budget`` against the
emulators: lines that name no provider follow the route and are journaled under the provider that ran them;
``--route`` and ``--provider`` exclude each other; bad routing flags are one line naming the flag, before any
request."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_batch import PROVIDERS, created, emulator_settings, journal_lines

from photomaker_bridge.cli import main
from photomaker_bridge.emulators import Emulators, Fault, start_emulators
from photomaker_bridge.samples import sample_faces

ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}


@pytest.fixture(scope="module")
def running() -> Iterator[Emulators]:
    with start_emulators(**{name: emulator_settings(seed=12) for name in PROVIDERS}) as emulators:
        yield emulators


@pytest.fixture
def emu(running: Emulators, monkeypatch: pytest.MonkeyPatch) -> Emulators:
    running.reset()
    for provider, name in ENVIRONMENT.items():
        monkeypatch.setenv(name, running[provider].api_key)
    return running


def run(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(arguments), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def batch(emulators: Emulators, jobs: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    urls = ["--base-url", f"runware={emulators.runware.rest_url}", "--base-url", f"fal={emulators.fal.url}",
            "--base-url", f"eachlabs={emulators.eachlabs.url}"]
    return run("batch", str(jobs), "--out", str(out), "--no-progress", *urls, *extra)


def jobs_file(tmp_path: Path, count: int, **extra: object) -> Path:
    face = str(sample_faces()[0])
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"a man img on a boat, take {number}", "images": [face],
                                        "seed": number, **extra}) + "\n" for number in range(count)))
    return path


def test_batch_route_falls_back_and_journals_the_provider_that_ran_each_job(emu: Emulators, tmp_path: Path) -> None:
    emu.eachlabs.settings.faults.append(Fault("fail_job"))
    path = jobs_file(tmp_path, 4)
    with path.open("a") as stream:  # a line of its own route, and a line for one provider
        stream.write(json.dumps({"prompt": "a man img in a garden", "images": [str(sample_faces()[1])],
                                 "route": {"providers": ["runware"]}}) + "\n")
        stream.write(json.dumps({"prompt": "a man img in a garden", "images": [str(sample_faces()[1])],
                                 "provider": "fal"}) + "\n")
    code, out, err = batch(emu, path, tmp_path / "out", "--route", "eachlabs,fal", "--strategy", "ordered",
                           "--max-attempts", "2", "--budget", "0.5", "--concurrency", "1")
    assert code == 0, err
    assert "6 jobs (fal 1, route 5): 6 to submit" in err
    assert "route: 5 jobs ≈ " in err and "the dearest candidate of the route" in err
    finished = [line for line in journal_lines(tmp_path / "out") if line["type"] == "finished"]
    routed = [line for line in finished if "route" in line]
    assert len(finished) == 6 and len(routed) == 5
    assert sorted(line["provider"] for line in routed) == ["fal"] * 4 + ["runware"]
    assert all(line["route"]["max_attempts"] == 2 and line["route"]["budget"] == "0.5" for line in routed[:4]
               if line["route"]["providers"] == ["eachlabs", "fal"])
    assert created(emu) == {"eachlabs": 4, "fal": 5, "runware": 1}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert {item["provider"]: item["jobs"] for item in summary["providers"]} == {"fal": 5, "runware": 1}
    assert "report: " in out

    code, _, err = batch(emu, path, tmp_path / "out", "--route", "eachlabs,fal", "--strategy", "ordered",
                         "--max-attempts", "2", "--budget", "0.5")
    assert code == 0 and "6 finished earlier" in err and "fal 5, runware 1" in err
    assert created(emu) == {"eachlabs": 4, "fal": 5, "runware": 1}


@pytest.mark.parametrize("case", ["both", "strategy without route", "unknown provider", "bad attempts", "hedge"])
def test_bad_route_flags_are_refused_before_any_request(emu: Emulators, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str], case: str) -> None:
    arguments, code_wanted, expected = {
        "both": (["--provider", "fal", "--route", "runware,fal"], 2, "argument --route: not allowed with argument "
                                                                    "--provider"),
        "strategy without route": (["--provider", "fal", "--strategy", "cheapest"], 2,
                                   "--strategy: 'cheapest' is not allowed; given with --route"),
        "unknown provider": (["--route", "runware,replicate"], 2, "--route: 'runware,replicate' is not allowed"),
        "bad attempts": (["--route", "runware,fal", "--max-attempts", "0"], 2, "--max-attempts: 0 is not allowed"),
        "hedge": (["--route", "runware,fal", "--hedge", "p95"], 2, "unrecognized arguments: --hedge"),
    }[case]
    try:
        code, _, err = batch(emu, jobs_file(tmp_path, 1), tmp_path / "out", *arguments)
    except SystemExit as exit:  # argparse's own refusals
        code, err = int(exit.code or 0), capsys.readouterr().err
    assert code == code_wanted, err
    assert expected in err
    assert sum(handle.counters["requests"] for handle in emu) == 0
