"""Ctrl-C and deadlines from the shell: whatever ends the wait, the job's fate is printed with the exact
``photomaker-bridge resume`` line, which collects it from a second process — paid once, never lost.

The CLI runs in a pseudo-terminal (``cli_terminal.Terminal``) and gets a real SIGINT.
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

RESUME = re.compile(r"photomaker-bridge resume --provider (\w+) --request-id (\S+) --base-url (\S+)")
ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}
OUTPUTS = {"runware": "runware_1.jpg", "fal": "fal_1.png", "eachlabs": "eachlabs_1.png"}


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    with start_emulators(runware=EmulatorSettings(run_time=3.0), fal=EmulatorSettings(queue_time=0.2, run_time=3.0),
                         eachlabs=EmulatorSettings(run_time=3.0)) as running:
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


@pytest.mark.parametrize("provider", ["runware", "fal", "eachlabs"])
def test_ctrl_c_while_waiting_prints_a_resume_line_that_a_second_process_runs(
        provider: str, emulators: Emulators, tmp_path: Path) -> None:
    screen = interrupted(generate(emulators, provider), rf"{provider} +(running|submitted)")
    assert "interrupted" in screen and "still running at the provider" in screen, screen
    line = only_resume_line(screen, emulators, provider)
    resumed = run_resume_line(line, emulators, provider, tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "resumed" / OUTPUTS[provider]).is_file()
    assert emulators[provider].state.counters["jobs_created" if provider == "runware" else
                                               "submits" if provider == "fal" else "predictions_created"] == 1


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
    assert fal.state.counters["submits"] == 1  # the submit went through, and its id was not lost:
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


def test_a_deadline_says_truthfully_that_the_job_still_runs_and_how_to_collect_it(
        emulators: Emulators, tmp_path: Path) -> None:
    terminal = generate(emulators, "eachlabs", "--timeout", "1")
    try:
        assert terminal.finish() == 5, terminal.text
    finally:
        terminal.kill()
    screen = terminal.text
    assert "timed out after 1 s: eachlabs job " in screen and "still running at the provider" in screen, screen
    assert emulators.eachlabs.state.counters["cancels"] == 0  # as it says: left running, not cancelled
    resumed = run_resume_line(only_resume_line(screen, emulators, "eachlabs"), emulators, "eachlabs",
                              tmp_path / "resumed")
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "resumed" / "eachlabs_1.png").is_file()


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
