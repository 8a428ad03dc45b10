"""A compare killed halfway and run again: the second run finishes the rest, creates no job twice (the
emulators' counters) and redoes no finished job.

The emulators run in the test's process; the compare runs in a child process (``compare_child.py``) that the
test interrupts with SIGINT (a graceful stop: submissions in flight are journaled) or kills with SIGKILL (no
chance to clean up). A SIGKILL can land while a submission is on the wire, where nobody — not even the
runner — can know whether the provider accepted it; the journal then holds an undecided intent, which a
re-run reports instead of paying twice (tested in ``test_runner.py``). Here the test freezes the child with
SIGSTOP and kills it only at a moment with no submission on the wire and with accepted jobs still running, so
the run is resumable by handle and the counts are exact.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_batch import (
    PROVIDERS,
    accepted_unfinished,
    adapter_config,
    created,
    emulator_settings,
    finished_by_key,
    inject_faults,
    open_intents,
    submitted_per_provider,
)

from photomaker_bridge.emulators import Emulators, start_emulators

HERE = Path(__file__).parent
DEADLINE = 180.0
"""Seconds any one wait may take: generous, the machine may be busy; none is a timed assertion."""


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    settings = {name: emulator_settings(seed=11, queue_time=(0.05, 0.2), run_time=(0.2, 0.6)) for name in PROVIDERS}
    with start_emulators(**settings) as running:
        inject_faults(running)
        yield running


def read_journal(out: Path) -> list[dict[str, Any]]:
    """The journal's whole lines so far (the child may be writing the next one)."""
    path = out / "journal.jsonl"
    if not path.exists():
        return []
    lines = []
    for text in path.read_text(encoding="utf-8").split("\n"):
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            continue
    return lines


def start_child(tmp_path: Path, emulators: Emulators, out: Path, script: str = "compare_child.py",
                **config: Any) -> subprocess.Popen[str]:
    """Run ``script`` (beside this file) in a child process, with the emulators' adapters, ``out`` and ``config``."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"adapters": adapter_config(emulators), "out": str(out), "concurrency": 6, **config}))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(HERE / script), str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=environment)


def wait_for(condition: Any, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.02)


def halfway(out: Path) -> bool:
    return len(finished_by_key(read_journal(out))) >= 24


def finish_and_check(tmp_path: Path, emulators: Emulators, out: Path, first_run: list[dict[str, Any]]) -> None:
    """Run the compare again to the end and check that nothing was created or finished twice."""
    finished_before = set(finished_by_key(first_run))
    accepted_before = accepted_unfinished(first_run)
    assert len(finished_before) < 48 and accepted_before, "the first run was not stopped halfway"
    created_before = created(emulators)
    assert created_before == submitted_per_provider(first_run)

    child = start_child(tmp_path, emulators, out)
    stdout, stderr = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["skipped"] == len(finished_before) and report["resumed"] == len(accepted_before)
    assert report["left"] == []

    lines = read_journal(out)
    finished = finished_by_key(lines)
    assert len(finished) == 48 and not open_intents(lines)
    second_run = lines[len(first_run):]
    assert second_run[0]["type"] == "run"
    touched_again = {line["key"] for line in second_run if "key" in line}
    assert not touched_again & finished_before, "a finished job was redone"
    for key in accepted_before:  # collected by handle, never submitted again
        assert [line["type"] for line in second_run if line.get("key") == key] == ["finished"]
        assert finished[key]["resumed"] is True
    # Every job the emulators accepted has exactly one handle in the journal: none was created twice.
    submitted = [line["key"] for line in lines if line["type"] == "submitted"]
    assert len(submitted) == len(set(submitted))
    assert created(emulators) == submitted_per_provider(lines)
    assert sum(created(emulators).values()) == 47  # 48 jobs, one Eachlabs create refused by the injected 402


def test_sigint_halfway_then_rerun(tmp_path: Path, emulators: Emulators) -> None:
    out = tmp_path / "results"
    child = start_child(tmp_path, emulators, out)
    try:
        wait_for(lambda: halfway(out) or child.poll() is not None, "half of the jobs to finish")
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=DEADLINE)
    finally:
        child.kill()
    assert child.returncode == 130, stderr[-3000:]
    assert stdout.strip() == "interrupted"
    first_run = read_journal(out)
    # A graceful stop leaves no undecided submission: each was accepted (and journaled) or withdrawn.
    assert not open_intents(first_run)
    finish_and_check(tmp_path, emulators, out, first_run)


def test_sigkill_halfway_then_rerun(tmp_path: Path, emulators: Emulators) -> None:
    out = tmp_path / "results"
    child = start_child(tmp_path, emulators, out)
    wait_for(lambda: halfway(out) or child.poll() is not None, "half of the jobs to finish")
    kill_when(child, out, lambda lines: not open_intents(lines) and bool(accepted_unfinished(lines)))
    finish_and_check(tmp_path, emulators, out, read_journal(out))


def kill_when(child: subprocess.Popen[str], out: Path, ready: Callable[[list[dict[str, Any]]], bool]) -> None:
    """Freeze ``child`` (SIGSTOP) again and again until the journal it wrote in ``out`` is ``ready``, then SIGKILL it
    there (a frozen process writes nothing more, so what is read is all it wrote)."""
    try:
        deadline = time.monotonic() + DEADLINE
        while True:
            assert child.poll() is None, "the child finished before it could be killed halfway"
            os.kill(child.pid, signal.SIGSTOP)
            if ready(read_journal(out)):
                os.kill(child.pid, signal.SIGKILL)
                break
            os.kill(child.pid, signal.SIGCONT)
            assert time.monotonic() < deadline, "never found a moment to kill the child"
            time.sleep(0.01)
        child.wait(timeout=DEADLINE)
    finally:
        child.kill()
        child.communicate()
    assert child.returncode == -signal.SIGKILL
