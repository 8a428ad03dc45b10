"""``generate`` over a route from the shell: ``--provider runware,fal,eachlabs`` with ``--strategy``,
``--max-attempts``, ``--budget`` and ``--hedge``; the summary shows the decision trail; bad routing flags are one
line naming the flag; Ctrl-C still cancels the job that was accepted and prints its resume line."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_terminal import Terminal

from photomaker_bridge.cli import EXIT_BUDGET, EXIT_INPUT, EXIT_OK, main
from photomaker_bridge.emulators import Emulators, EmulatorSettings, Fault, start_emulators

ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}
SUBMIT = {"runware": {"route": r"^/v1$", "method": "POST", "body": '"taskType":"photoMaker"'},
          "fal": {"route": r"^/fal-ai/photomaker$", "method": "POST"},
          "eachlabs": {"route": r"^/v1/prediction/$", "method": "POST"}}
RESUME = re.compile(r"photomaker-bridge resume --provider (\w+) --request-id (\S+) --base-url (\S+)")


@pytest.fixture
def emulators(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulators]:
    fast = {name: EmulatorSettings(run_time=0.05) for name in ENVIRONMENT}
    with start_emulators(**fast) as running:
        for name, variable in ENVIRONMENT.items():
            monkeypatch.setenv(variable, running[name].api_key)
        yield running


def base_url(emulators: Emulators, provider: str) -> str:
    return emulators.runware.rest_url if provider == "runware" else emulators[provider].url


def route_arguments(emulators: Emulators, providers: str, *extra: str) -> list[str]:
    urls = [argument for name in providers.split(",")
            for argument in ("--base-url", f"{name}={base_url(emulators, name)}")]
    return ["generate", "--provider", providers, "--prompt", "a portrait of a woman img", "--sample-faces", "1",
            "--no-progress", *urls, *extra]


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def trail_lines(out: str) -> list[list[str]]:
    """The rows of the printed decision trail: ``[number, provider, outcome, ...]``."""
    lines = out.splitlines()
    start = lines.index("decision trail:") + 3
    rows: list[list[str]] = []
    for line in lines[start:]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_a_route_falls_back_and_the_summary_shows_the_trail(emulators: Emulators, tmp_path: Path) -> None:
    emulators.fal.settings.faults.append(Fault("status", status=503, **SUBMIT["fal"]))
    code, out, err = run(*route_arguments(emulators, "fal,runware", "--out", str(tmp_path)))
    assert code == EXIT_OK, err
    assert out.splitlines()[2].startswith("runware")  # the result row
    assert [row[1:3] for row in trail_lines(out)] == [["fal", "error"], ["runware", "ok"]]
    assert "ProviderUnavailableError" in out and "fallback after fal" in out
    assert (tmp_path / "runware.json").is_file()
    assert json.loads((tmp_path / "runware.json").read_text())["attempts"][0]["provider"] == "fal"
    # One row per attempt: fal's ends failed with the reason, runware's completes.
    assert "fal starting: 1 of 3 (ordered): first choice" in err and "fal failed: ProviderUnavailableError" in err
    assert "runware starting: 2 of 3 (ordered): fallback after fal" in err and "runware completed" in err


def test_a_job_that_fails_after_it_was_accepted_goes_to_the_next_provider(emulators: Emulators) -> None:
    emulators.eachlabs.settings.faults.append(Fault("fail_job"))
    code, out, err = run(*route_arguments(emulators, "eachlabs,fal", "--max-attempts", "2", "--json"))
    assert code == EXIT_OK, err
    summary = json.loads(out)
    assert summary["provider"] == "fal"
    assert [(entry["provider"], entry["outcome"]) for entry in summary["attempts"]] == [("eachlabs", "error"),
                                                                                     ("fal", "ok")]


def test_cheapest_and_a_budget_from_the_shell(emulators: Emulators) -> None:
    code, out, err = run(*route_arguments(emulators, "fal,eachlabs,runware", "--strategy", "cheapest", "--json"))
    assert code == EXIT_OK, err
    assert json.loads(out)["provider"] == "runware"  # the seed prices: Runware's estimate is the lowest

    before = sum(len(emulators[name].log) for name in ENVIRONMENT)
    code, out, err = run(*route_arguments(emulators, "fal,runware", "--budget", "0.000001"))
    assert code == EXIT_BUDGET and out == ""
    assert "\nbudget: no attempt fits the call's budget of 0.000001 USD" in err
    assert [row[1:3] for row in trail_lines(err)] == [["fal", "skipped"], ["runware", "skipped"]]
    assert sum(len(emulators[name].log) for name in ENVIRONMENT) == before  # nothing was sent


def test_a_hedge_from_the_shell_wins_on_a_slow_primary(emulators: Emulators) -> None:
    emulators.fal.settings.queue_time = 60.0
    code, out, err = run(*route_arguments(emulators, "fal,runware", "--hedge", "0.2", "--json"))
    assert code == EXIT_OK, err
    summary = json.loads(out)
    assert summary["provider"] == "runware"
    assert [(entry["provider"], entry["outcome"]) for entry in summary["attempts"]] == [("fal", "cancelled"),
                                                                                     ("runware", "ok")]
    assert emulators.fal.counters["cancels"] == 1


@pytest.mark.parametrize(("extra", "flag"), [
    (["--provider", "fal,dalle"], "--provider"),
    (["--provider", "fal,fal"], "--provider"),
    (["--provider", "fal,runware", "--budget", "ten"], "--budget"),
    (["--provider", "fal,runware", "--hedge", "soon"], "--hedge"),
    (["--provider", "fal,runware", "--max-attempts", "0"], "--max-attempts"),
    (["--provider", "fal,runware", "--base-url", "http://127.0.0.1:1"], "--base-url"),
])
def test_bad_routing_flags_are_one_line_naming_the_flag(extra: list[str], flag: str) -> None:
    code, out, err = run("generate", "--prompt", "a man img", "--sample-faces", "1", *extra)
    assert code == EXIT_INPUT and out == ""
    assert err.count("\n") == 1 and err.startswith(f"error: {flag}"), err
    assert "Route." not in err and "max_attempts" not in err


def test_ctrl_c_on_a_route_cancels_the_accepted_job_and_prints_its_resume_line(emulators: Emulators) -> None:
    emulators.eachlabs.settings.faults.append(Fault("status", status=503, **SUBMIT["eachlabs"]))
    emulators.fal.settings.run_time = 30.0
    environment = {variable: emulators[name].api_key for name, variable in ENVIRONMENT.items()}
    terminal = Terminal(route_arguments(emulators, "eachlabs,fal"), environment)
    try:
        terminal.wait_for(r"fal \S+ running")
        terminal.interrupt()
        assert terminal.finish() == 130, terminal.text
    finally:
        terminal.kill()
    screen = terminal.text
    assert emulators.fal.counters["cancels"] == 1 and emulators.eachlabs.counters["predictions_created"] == 0
    assert re.search(r"fal request \S+: cancel", screen), screen
    assert all(match.group(1) == "fal" and match.group(3) == emulators.fal.url for match in RESUME.finditer(screen))
