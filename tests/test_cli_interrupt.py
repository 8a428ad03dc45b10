"""Ctrl-C and deadlines from the shell: ``generate`` cancels the job where the provider allows it and prints
each id's fate, with the exact ``photomaker-bridge resume`` line for any that may still finish, which collects
it from a second process — paid once, never lost. ``resume`` never cancels; ``cancel`` does, by id.

The CLI runs in a pseudo-terminal (``cli_terminal.Terminal``) and gets a real SIGINT. fal's emulator runs
here with ``options.honour_cancel_in_progress = False``: a running fal request that is cancelled is only
*signalled* (whether the PhotoMaker app stops is not documented, docs/protocols/fal.md), and runs to its end —
so one run shows both halves of the promise: the emulator saw the cancel, and the job could still be collected.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_terminal import Terminal

from photomaker_bridge.emulators import EmulatorHandle, Emulators, EmulatorSettings, start_emulators
from photomaker_bridge.emulators.fal import FalOptions

RESUME = re.compile(r"photomaker-bridge resume --provider (\w+) --request-id (\S+) --base-url (\S+)")
ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}
OUTPUTS = {"runware": "runware_1.jpg", "fal": "fal_1.png", "eachlabs": "eachlabs_1.png"}


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    with start_emulators(runware=EmulatorSettings(run_time=3.0), fal=EmulatorSettings(queue_time=0.2, run_time=3.0),
                         eachlabs=EmulatorSettings(run_time=3.0)) as running:
        options = running.fal.options
        assert isinstance(options, FalOptions)
        options.honour_cancel_in_progress = False
        yield running


def base_url(emulators: Emulators, provider: str) -> str:
    return emulators.runware.rest_url if provider == "runware" else emulators[provider].url


def generate(emulators: Emulators, provider: str, *extra: str) -> Terminal:
    handle: EmulatorHandle = emulators[provider]
    return Terminal(["generate", "--provider", provider, "--prompt", "a portrait of a man img", "--sample-faces",
                     "1", "--base-url", base_url(emulators, provider), *extra],
                    {ENVIRONMENT[provider]: handle.api_key})


def run_resume_line(line: str, emulators: Emulators, provider: str, out: Path) -> subprocess.CompletedProcess[str]:
    """The printed line, run as printed (plus ``--out``) by a second process."""
    arguments = shlex.split(line)
    assert arguments[0] == "photomaker-bridge"
    return subprocess.run([sys.executable, "-m", "photomaker_bridge", *arguments[1:], "--out", str(out)],
                          env={**os.environ, ENVIRONMENT[provider]: emulators[provider].api_key},
                          capture_output=True, text=True, timeout=120, check=False)


def interrupted(terminal: Terminal, pattern: str) -> str:
    """Ctrl-C once ``pattern`` is on screen; the screen after the CLI exited with 130."""
    try:
        terminal.wait_for(pattern)
        terminal.interrupt()
        assert terminal.finish() == 130, terminal.text
    finally:
        terminal.kill()
    return terminal.text


def only_resume_line(screen: str, emulators: Emulators, provider: str) -> str:
    matches = list(RESUME.finditer(screen))
    assert len(matches) == 1, screen
    [match] = matches
    assert match.group(1) == provider and match.group(3) == base_url(emulators, provider)
    return match.group(0)


CREATED = {"runware": "jobs_created", "fal": "submits", "eachlabs": "predictions_created"}


@pytest.mark.parametrize(("provider", "fate", "cancels"), [
    ("fal", "cancel requested", 1),  # signalled, runs on: the resume line collects it
    ("runware", "cannot be cancelled", 0),  # Runware has no cancel call: the resume line collects it
])
def test_ctrl_c_cancels_and_prints_a_resume_line_that_a_second_process_runs(
        provider: str, fate: str, cancels: int, emulators: Emulators, tmp_path: Path) -> None:
    screen = interrupted(generate(emulators, provider), rf"{provider} +running")
    assert emulators[provider].state.counters["cancels"] == cancels  # fal: the emulator saw the cancel
    assert re.search(rf"{provider} \w+ \S+: {fate}", screen), screen
    line = only_resume_line(screen, emulators, provider)
    resumed = run_resume_line(line, emulators, provider, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "resumed" / OUTPUTS[provider]).is_file()
    assert emulators[provider].state.counters[CREATED[provider]] == 1  # collected, not generated again


def test_ctrl_c_on_eachlabs_cancels_the_prediction_and_leaves_nothing_to_resume(emulators: Emulators) -> None:
    screen = interrupted(generate(emulators, "eachlabs"), r"eachlabs +submitted")
    assert emulators.eachlabs.state.counters["cancels"] == 1
    assert re.search(r"eachlabs prediction \S+: cancelled", screen), screen
    assert not RESUME.search(screen)


def test_ctrl_c_during_the_submit_is_held_until_the_provider_answers(emulators: Emulators) -> None:
    fal = emulators.fal
    fal.settings.latency = 1.5  # every answer takes 1.5 s: the Ctrl-C lands before the submit is answered
    terminal = generate(emulators, "fal")
    try:
        terminal.wait_for(r"fal +uploading")
        terminal.interrupt()
        terminal.wait_for(r"stopping once the provider has answered the submit")
        assert terminal.finish() == 130, terminal.text
    finally:
        terminal.kill()
    assert fal.state.counters["submits"] == 1  # the submit went through, its id was not lost,
    assert fal.state.counters["cancels"] == 1  # and the job was cancelled (signalled: it may still finish)
    only_resume_line(terminal.text, emulators, "fal")


def test_a_second_ctrl_c_exits_at_once(emulators: Emulators) -> None:
    runware = emulators.runware
    runware.settings.latency = 5.0
    terminal = generate(emulators, "runware")
    try:
        terminal.wait_for(r"runware +submitted")  # Runware's taskUUID is known before the POST is answered
        terminal.interrupt()
        terminal.wait_for(r"Ctrl-C again to exit at once")
        terminal.interrupt()
        assert terminal.finish(timeout=30) == 130, terminal.text
    finally:
        terminal.kill()
    screen = terminal.text
    assert "exiting at once, during the submit" in screen, screen
    only_resume_line(screen, emulators, "runware")


def test_a_deadline_cancels_and_says_so_truthfully(emulators: Emulators) -> None:
    terminal = generate(emulators, "eachlabs", "--timeout", "1")
    try:
        assert terminal.finish() == 5, terminal.text
    finally:
        terminal.kill()
    screen = terminal.text
    assert emulators.eachlabs.state.counters["cancels"] == 1
    assert "timed out after 1 s" in screen and re.search(r"eachlabs prediction \S+: cancelled", screen), screen
    assert not RESUME.search(screen)  # nothing left to collect, so no resume line


def test_resume_interrupted_leaves_the_job_running_and_says_how_to_resume_again(
        emulators: Emulators, tmp_path: Path) -> None:
    from photomaker_bridge import Bridge, PhotoMakerRequest
    from photomaker_bridge.samples import sample_faces

    with Bridge(providers=emulators.providers()) as bridge:
        handle = bridge.submit(PhotoMakerRequest(prompt="a man img", images=[sample_faces()[0]]), "eachlabs",
                               timeout=30)
    terminal = Terminal(["resume", "--provider", "eachlabs", "--request-id", handle.request_id, "--base-url",
                         emulators.eachlabs.url], {"EACHLABS_API_KEY": emulators.eachlabs.api_key})
    line = only_resume_line(interrupted(terminal, r"eachlabs +(starting|queued|running)"), emulators, "eachlabs")
    assert handle.request_id in line
    assert emulators.eachlabs.state.counters["cancels"] == 0


def test_the_cancel_command_says_what_became_of_each_id(emulators: Emulators, monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import json

    from photomaker_bridge import Bridge, PhotoMakerRequest
    from photomaker_bridge.cli import main
    from photomaker_bridge.samples import sample_faces

    request = PhotoMakerRequest(prompt="a man img", images=[sample_faces()[0]])
    with Bridge(providers=emulators.providers()) as bridge:
        eachlabs = bridge.submit(request, "eachlabs", timeout=30)
        runware = bridge.submit(request, "runware", timeout=30)
    monkeypatch.setenv("EACHLABS_API_KEY", emulators.eachlabs.api_key)
    monkeypatch.setenv("RUNWARE_API_KEY", emulators.runware.api_key)

    out, err = io.StringIO(), io.StringIO()
    code = main(["cancel", "--provider", "eachlabs", "--request-id", eachlabs.request_id, "--base-url",
                 emulators.eachlabs.url], out=out, err=err)
    assert code == 0, err.getvalue()
    assert out.getvalue() == f"  eachlabs prediction {eachlabs.request_id}: cancelled\n"
    assert emulators.eachlabs.state.counters["cancels"] == 1

    out, err = io.StringIO(), io.StringIO()
    code = main(["cancel", "--provider", "runware", "--request-id", runware.request_id, "--base-url",
                 emulators.runware.url, "--json"], out=out, err=err)
    assert code == 4  # Runware has no cancel call: the task could not be cancelled
    [outcome] = json.loads(out.getvalue())
    assert outcome["state"] == "not_supported" and outcome["request_id"] == runware.request_id
