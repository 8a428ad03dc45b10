"""``generate`` in a real pseudo-terminal against the emulators: the live display shows each state as it
happens, plain lines replace it off a terminal or with ``--no-progress``, and ``NO_COLOR`` is honoured.

What the display can promise is to show an event as soon as the flow yields it; *when* a state change is
noticed is decided by the adapters' poll schedules (``providers/_polling.py``), which a fresh CLI process
starts cold (fal: first status check 1 s after submitting; Eachlabs: 2 s after creating). The job times below
are chosen so that those first checks land inside the phase each test looks for; the display's own lag is
measured from the emulator's log of the poll that brought the news.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cli_terminal import ANSI, Terminal

from photomaker_bridge.emulators import Emulators, EmulatorSettings, start_emulators

ENVIRONMENT = {"runware": "RUNWARE_API_KEY", "fal": "FAL_KEY", "eachlabs": "EACHLABS_API_KEY"}
DISPLAY_LAG = 1.0
"""Seconds within which a state is on screen once the emulator answered the poll that reports it (the display
redraws on every event; its timer only moves the spinner)."""


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    with start_emulators(runware=EmulatorSettings(run_time=0.2),
                         fal=EmulatorSettings(queue_time=0.3, run_time=2.5),
                         eachlabs=EmulatorSettings(queue_time=0.0, run_time=1.5)) as running:
        yield running


def environment(emulators: Emulators, **extra: str) -> dict[str, str]:
    return {**{name: emulators[provider].api_key for provider, name in ENVIRONMENT.items()}, **extra}


def generate_arguments(emulators: Emulators, provider: str, *extra: str) -> list[str]:
    base_url = emulators.runware.rest_url if provider == "runware" else emulators[provider].url
    return ["generate", "--provider", provider, "--prompt", "a portrait of a woman img", "--sample-faces", "1",
            "--base-url", base_url, *extra]


def test_fal_running_is_shown_before_the_job_completes(emulators: Emulators) -> None:
    terminal = Terminal(generate_arguments(emulators, "fal"), environment(emulators))
    try:
        queued = terminal.wait_for(r"fal +queued")
        running = terminal.wait_for(r"fal +running")
        completed = terminal.wait_for(r"fal +completed")
        assert terminal.finish() == 0, terminal.text
    finally:
        terminal.kill()
    submitted_at = next(entry.received_at for entry in emulators.fal.state.log
                        if entry.method == "POST" and entry.path == "/fal-ai/photomaker")
    finished_at = submitted_at + 0.3 + 2.5
    assert queued < running < finished_at < completed  # "running" was on screen while the job ran
    # What told the CLI: the first status poll after the job went running, or — a new client follows fal's status
    # stream — a stream already open then, which sends "running" the moment the job starts.
    went_running = submitted_at + 0.3
    carriers = [entry.received_at if entry.path.endswith("/status") else max(entry.received_at, went_running)
                for entry in emulators.fal.state.log
                if (entry.path.endswith("/status") and entry.received_at > went_running)
                or entry.path.endswith("/status/stream")]
    assert running - min(carriers) < DISPLAY_LAG
    screen = terminal.text
    assert "fal image 1: " in screen and "request id" in screen  # the summary after the live rows
    assert re.search(r"\d+\.\ds", screen)  # elapsed seconds on the row


def test_eachlabs_completion_is_shown_within_a_second_of_the_emulator_finishing(emulators: Emulators) -> None:
    terminal = Terminal(generate_arguments(emulators, "eachlabs"), environment(emulators))
    try:
        completed = terminal.wait_for(r"eachlabs +completed")
        assert terminal.finish() == 0, terminal.text
    finally:
        terminal.kill()
    created_at = next(entry.received_at for entry in emulators.eachlabs.state.log
                      if entry.method == "POST" and entry.path.rstrip("/") == "/v1/prediction")
    finished_at = created_at + 1.5
    assert 0 < completed - finished_at < DISPLAY_LAG
    polls = [entry.received_at for entry in emulators.eachlabs.state.log
             if entry.method == "GET" and entry.path.startswith("/v1/prediction/")]
    assert completed - polls[-1] < DISPLAY_LAG  # the poll that saw success, then the screen


def test_the_live_display_has_a_spinner_and_colour_and_no_color_turns_colour_off(emulators: Emulators) -> None:
    coloured = Terminal(generate_arguments(emulators, "runware"), environment(emulators))
    plain = Terminal(generate_arguments(emulators, "runware"), environment(emulators, NO_COLOR="1"))
    try:
        assert coloured.finish() == 0 and plain.finish() == 0
    finally:
        coloured.kill()
        plain.kill()
    colour = re.compile(r"\x1b\[[0-9;]*3[0-7]m|\x1b\[[0-9;]*38;")
    assert colour.search(coloured.raw), coloured.raw[:500]
    assert not colour.search(plain.raw), plain.raw[:500]
    assert re.search(r"[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏]", coloured.text)  # rich's "dots" spinner while the job ran
    assert "runware image 1: " in plain.text


def test_no_progress_gives_plain_lines_even_on_a_terminal(emulators: Emulators) -> None:
    terminal = Terminal(generate_arguments(emulators, "runware", "--no-progress"), environment(emulators))
    try:
        assert terminal.finish() == 0, terminal.text
    finally:
        terminal.kill()
    lines = terminal.text.splitlines()
    assert any(re.match(r"\[ +\d+\.\d\ds\] runware \S+ submitted$", line) for line in lines), lines
    assert any(re.match(r"\[ +\d+\.\d\ds\] runware completed: 1 image$", line) for line in lines), lines
    assert not re.search(r"\x1b\[\d*A", terminal.raw)  # no cursor movement: nothing is redrawn in place


def test_plain_lines_when_stderr_is_not_a_terminal(emulators: Emulators) -> None:
    completed = subprocess.run([sys.executable, "-m", "photomaker_bridge",
                                *generate_arguments(emulators, "eachlabs")],
                               env={**os.environ, **environment(emulators)},
                               capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    assert not ANSI.search(completed.stderr) and not ANSI.search(completed.stdout)
    kinds = [match.group(1) for match in re.finditer(r"^\[ *\d+\.\d\ds\] eachlabs(?: [0-9a-f-]{36})? (\w+)",
                                                     completed.stderr, re.MULTILINE)]
    assert kinds[0] == "uploading" and "submitted" in kinds and kinds[-1] == "completed", completed.stderr
