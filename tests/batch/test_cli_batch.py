"""``photomaker-bridge compare`` and ``batch`` against the emulators: what they print before the first request,
plain progress lines off a terminal, the live bars in a pseudo-terminal, the files and exit codes, and every
kind of bad input refused before anything is sent; ``batch --route`` with its routing flags, exclusive of
``--provider``."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_terminal import Terminal
from helpers_batch import PROVIDERS, created, emulator_settings, journal_lines

from photomaker_bridge.batch.jobs import JobLabels
from photomaker_bridge.batch.journal import JournalWriter
from photomaker_bridge.batch.options import shard_of
from photomaker_bridge.batch.summary import summarize_journal
from photomaker_bridge.cli import main
from photomaker_bridge.emulators import Emulators, Fault, start_emulators
from photomaker_bridge.samples import sample_faces

ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}


@pytest.fixture(scope="module")
def running() -> Iterator[Emulators]:
    with start_emulators(**{name: emulator_settings(seed=9) for name in PROVIDERS}) as emulators:
        yield emulators


@pytest.fixture
def emu(running: Emulators, monkeypatch: pytest.MonkeyPatch) -> Emulators:
    running.reset()
    for provider, name in ENVIRONMENT.items():
        monkeypatch.setenv(name, running[provider].api_key)
    return running


def base_urls(emulators: Emulators) -> list[str]:
    return ["--base-url", f"runware={emulators.runware.rest_url}", "--base-url", f"fal={emulators.fal.url}",
            "--base-url", f"eachlabs={emulators.eachlabs.url}"]


def run(*arguments: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(arguments), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def requests_seen(emulators: Emulators) -> int:
    return sum(handle.counters["requests"] for handle in emulators)


def test_compare_prints_the_plan_progress_lines_and_where_everything_is(emu: Emulators, tmp_path: Path) -> None:
    out_dir = tmp_path / "results"
    code, out, err = run("compare", "--provider", "runware,fal,eachlabs", "--prompt", "a man img on a boat",
                         "--style", "cinematic", "--seeds", "1,2", "--sample-faces", "1", "--out", str(out_dir),
                         *base_urls(emu))
    assert code == 0, err
    assert "6 jobs (eachlabs 2, fal 2, runware 2): 6 to submit" in err
    assert "estimated cost of the jobs to submit:" in err
    # Off a terminal: one plain line per finished job, with the provider's tally.
    finished_lines = [line for line in err.splitlines() if " success " in line or line.endswith(" success")]
    assert len(finished_lines) == 6 and any("fal 2/2: 2 ok, 0 failed, 0 in flight" in line for line in finished_lines)
    assert f"report: {out_dir / 'report.html'}" in out and f"journal: {out_dir / 'journal.jsonl'}" in out
    assert out.splitlines()[0].split()[:3] == ["provider", "jobs", "success"]
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["jobs"] == 6 and (out_dir / "contact_sheet.png").is_file()
    # The same command again: nothing to submit, nothing sent.
    before = requests_seen(emu)
    code, out, err = run("compare", "--provider", "runware,fal,eachlabs", "--prompt", "a man img on a boat",
                         "--style", "cinematic", "--seeds", "1,2", "--sample-faces", "1", "--out", str(out_dir),
                         *base_urls(emu))
    assert code == 0 and "0 to submit, 0 accepted earlier to collect, 6 finished earlier" in err
    assert requests_seen(emu) == before


def test_batch_reports_bad_lines_by_number_and_runs_the_rest(emu: Emulators, tmp_path: Path) -> None:
    face = str(sample_faces()[0])
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join([
        json.dumps({"prompt": "a man img on a boat", "images": [face], "seed": 1}),
        "{oops",
        json.dumps({"provider": "replicate", "prompt": "a man img", "images": [face]}),
        json.dumps({"provider": "eachlabs", "prompt": "a man img in a garden", "images": ["gone.jpg"]}),
        json.dumps({"provider": "runware", "prompt": "a man img in a garden", "images": [face], "seed": 2}),
    ]) + "\n")
    code, _, err = run("batch", str(jobs), "--provider", "fal", "--out", str(tmp_path / "out"), *base_urls(emu))
    assert code == 2
    assert "skipped line 2:" in err and "skipped line 3: provider: 'replicate'" in err
    assert "skipped line 4: images[0]: 'gone.jpg'" in err
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["jobs"] == 2
    assert emu.fal.counters["submits"] == 1 and emu.runware.counters["jobs_created"] == 1


@pytest.mark.parametrize("case", ["unknown provider", "missing image", "out is a file", "out parent missing",
                                  "cost above the limit", "bad seeds", "bad max cost", "missing jobs file",
                                  "no concurrency", "out not writable"])
def test_bad_input_is_refused_before_any_request(emu: Emulators, tmp_path: Path, case: str) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    if case == "out not writable" and not Path("/sys/kernel").is_dir():
        pytest.skip("no /sys/kernel here")
    compare = ["compare", "--prompt", "a man img on a boat", "--sample-faces", "1", *base_urls(emu)]
    arguments, expected = {
        "unknown provider": ([*compare, "--provider", "fal,replicate", "--out", str(tmp_path / "o")],
                             "--provider: 'replicate'"),
        "missing image": ([*compare, "--faces", "nowhere.jpg", "--out", str(tmp_path / "o")], "nowhere.jpg"),
        "out is a file": ([*compare, "--out", str(a_file)], "--out"),
        "out parent missing": ([*compare, "--out", str(tmp_path / "typo" / "o")], "does not exist"),
        "cost above the limit": ([*compare, "--seeds", "1,2,3", "--max-cost", "0.001", "--out", str(tmp_path / "o")],
                                 "--max-cost: '0.001'"),
        "bad seeds": ([*compare, "--seeds", "1,x", "--out", str(tmp_path / "o")], "--seeds"),
        "bad max cost": ([*compare, "--max-cost", "lots", "--out", str(tmp_path / "o")], "--max-cost"),
        "missing jobs file": (["batch", str(tmp_path / "none.jsonl"), "--out", str(tmp_path / "o")], "no such file"),
        "no concurrency": ([*compare, "--concurrency", "0", "--out", str(tmp_path / "o")], "--concurrency: 0"),
        # sysfs refuses new files even to root, so this holds whoever runs the tests.
        "out not writable": ([*compare, "--out", "/sys/kernel"], "'/sys/kernel' is not allowed"),
    }[case]
    code, _, err = run(*arguments)
    assert code == 2, err
    assert expected in err
    assert requests_seen(emu) == 0


def test_a_missing_key_is_a_configuration_error_before_any_request(emu: Emulators, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAL_KEY")
    code, _, err = run("compare", "--provider", "fal", "--prompt", "a man img", "--sample-faces", "1",
                       "--out", str(tmp_path / "o"), *base_urls(emu))
    assert code == 3 and "FAL_KEY" in err
    assert requests_seen(emu) == 0


def test_failed_jobs_give_exit_4_and_the_table_says_which(emu: Emulators, tmp_path: Path) -> None:

    emu.eachlabs.settings.faults.append(Fault("fail_job"))
    code, out, err = run("compare", "--provider", "eachlabs,runware", "--prompt", "a man img", "--sample-faces", "1",
                         "--out", str(tmp_path / "o"), *base_urls(emu))
    assert code == 4, err
    (row,) = [line for line in out.splitlines() if line.startswith("eachlabs")]
    assert "0.0 %" in row and "GenerationFailedError 1" in row


def test_the_live_bars_in_a_terminal(tmp_path: Path) -> None:
    settings = {name: emulator_settings(seed=4, run_time=(0.5, 1.0)) for name in PROVIDERS}
    with start_emulators(**settings) as emulators:
        environment = {name: emulators[provider].api_key for provider, name in ENVIRONMENT.items()}
        terminal = Terminal(["compare", "--prompt", "a man img on a boat", "--sample-faces", "1", "--seeds",
                             "1,2,3", "--out", str(tmp_path / "o"), *base_urls(emulators)], environment)
        try:
            terminal.wait_for(r"fal .*\d/3 .*in flight")
            terminal.wait_for(r"elapsed .* left")
            assert terminal.finish(timeout=120) == 0, terminal.text
        finally:
            terminal.kill()
    text = terminal.text
    for provider in PROVIDERS:
        assert f"{provider}" in text
    assert "3/3" in text and "report: " in text


def test_ctrl_c_stops_gracefully_and_the_same_command_finishes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from helpers_batch import created, journal_lines, open_intents, submitted_per_provider

    settings = {name: emulator_settings(seed=6, run_time=(1.0, 2.0)) for name in PROVIDERS}
    with start_emulators(**settings) as emulators:
        environment = {name: emulators[provider].api_key for provider, name in ENVIRONMENT.items()}
        arguments = ["compare", "--prompt", "a man img on a boat", "--sample-faces", "1", "--seeds", "1,2,3,4",
                     "--concurrency", "4", "--out", str(tmp_path / "o"), *base_urls(emulators)]
        terminal = Terminal(arguments, environment)
        try:
            terminal.wait_for(r"[1-9] ok")
            terminal.interrupt()
            assert terminal.finish(timeout=120) == 130, terminal.text
        finally:
            terminal.kill()
        assert "stopping: submissions on the wire get up to 30 s" in terminal.text
        assert "run the same command again" in terminal.text
        first = journal_lines(tmp_path / "o")
        assert not open_intents(first) and len({line["key"] for line in first if line["type"] == "finished"}) < 12
        for provider, name in ENVIRONMENT.items():
            monkeypatch.setenv(name, emulators[provider].api_key)
        code, _, err = run(*arguments)
        assert code == 0, err
        lines = journal_lines(tmp_path / "o")
        assert len({line["key"] for line in lines if line["type"] == "finished"}) == 12
        assert created(emulators) == submitted_per_provider(lines)


# --route: lines that name no provider follow the route and are journaled under the provider that ran them.


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


def test_a_shard_answers_for_its_own_jobs_while_another_shard_is_in_flight(emu: Emulators, tmp_path: Path) -> None:
    """Shard 1 finishes while shard 2's job is still in flight in the shared folder: shard 1 neither plans to
    collect that job nor waits for it, and its own jobs all succeeded, so it exits 0; the summary of the folder
    still counts the other job as unfinished."""
    out = tmp_path / "out"
    out.mkdir()
    other = next(key for key in (f"elsewhere-{number}" for number in range(100)) if shard_of(key, 2) == 1)
    with JournalWriter(out / "journal.jsonl") as journal:  # shard 2, mid-job
        journal.run_started()
        journal.intent(other, "fal", JobLabels("a man img", "No style", "face.jpg"))
        journal.submitted(other, "fal", {"provider": "fal", "request_ids": ["r-1"]},
                          JobLabels("a man img", "No style", "face.jpg"))
    code, _, err = batch(emu, jobs_file(tmp_path, 4, provider="runware"), out, "--shard", "1/2")
    assert code == 0, err
    assert "1 jobs (runware 1): 1 to submit, 0 accepted earlier to collect" in err  # not shard 2's job
    assert summarize_journal(out / "journal.jsonl").unfinished == 1
