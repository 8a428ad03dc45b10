"""A routed batch killed with SIGKILL and run again: the jobs a provider had accepted are collected by their
handles under that provider, none is submitted again (the emulators' counters), and every job ends on the fallback.

As in ``test_interrupt.py``, the child is frozen with SIGSTOP and killed only at a moment with no submission on the
wire (no undecided intent), with jobs accepted by fal still running, so the counts are exact.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_batch import PROVIDERS, accepted_unfinished, created, emulator_settings, finished_by_key
from test_interrupt import DEADLINE, kill_when, read_journal
from test_interrupt import start_child as start_compare_child
from test_routed_batch import routed_jobs

from photomaker_bridge.emulators import Emulators, Fault, start_emulators

HERE = Path(__file__).parent
JOBS = 12


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    settings = {name: emulator_settings(seed=21, queue_time=(0.05, 0.2), run_time=(0.4, 0.9)) for name in PROVIDERS}
    with start_emulators(**settings) as running:
        running.runware.settings.faults.append(Fault("fail_job"))  # every Runware job fails: fal finishes them all
        yield running


def start_child(tmp_path: Path, emulators: Emulators, out: Path) -> subprocess.Popen[str]:
    return start_compare_child(tmp_path, emulators, out, "routed_child.py", jobs=JOBS, concurrency=4)


def latest_steps(lines: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    steps: dict[str, dict[str, object]] = {}
    for line in lines:
        if line["type"] in ("intent", "submitted", "withdrawn", "finished"):
            steps[str(line["key"])] = line
    return steps


def killable(lines: list[dict[str, object]]) -> bool:
    """No submission on the wire, and some jobs accepted by fal and not collected (and none left on Runware, whose
    jobs all fail: a job collected by handle in a later run is not routed further)."""
    steps = latest_steps(lines)
    accepted = [line for line in steps.values() if line["type"] == "submitted"]
    return (not any(line["type"] == "intent" for line in steps.values()) and bool(accepted)
            and all(line["provider"] == "fal" for line in accepted))


def test_a_sigkilled_routed_batch_resumes_by_handle_without_a_second_job(tmp_path: Path,
                                                                         emulators: Emulators) -> None:
    out = tmp_path / "results"
    child = start_child(tmp_path, emulators, out)
    kill_when(child, out, lambda lines: killable(lines) and len(finished_by_key(lines)) >= 2)
    first_run = read_journal(out)
    accepted_before = accepted_unfinished(first_run)
    finished_before = set(finished_by_key(first_run))
    created_before = created(emulators)
    assert accepted_before and len(finished_before) < JOBS

    child = start_child(tmp_path, emulators, out)
    stdout, stderr = child.communicate(timeout=DEADLINE)
    assert child.returncode == 0, stderr[-3000:]
    report = json.loads(stdout.strip().splitlines()[-1])
    assert report["resumed"] == len(accepted_before) and report["skipped"] == len(finished_before)
    assert report["left"] == [] and report["failed"] == 0

    lines = read_journal(out)
    second_run = lines[len(first_run):]
    finished = finished_by_key(lines)
    assert sorted(finished) == sorted(job.key for job in routed_jobs(JOBS))
    assert all(line["provider"] == "fal" and line["outcome"] == "success" for line in finished.values())
    for key in accepted_before:  # collected by handle under fal, never submitted again
        assert [line["type"] for line in second_run if line.get("key") == key] == ["finished"]
        assert finished[key]["resumed"] is True and finished[key]["route"]["providers"] == ["runware", "fal"]
        assert finished[key]["attempts"][-1]["provider"] == "fal"
    assert not {line["key"] for line in second_run if "key" in line} & finished_before
    # One fal job per key, all of them: the jobs accepted before the kill were not created again.
    assert created(emulators)["fal"] == JOBS
    submitted = [line for line in lines if line["type"] == "submitted"]
    assert created(emulators) == {"runware": sum(line["provider"] == "runware" for line in submitted),
                                  "fal": JOBS, "eachlabs": 0}
    assert created(emulators)["runware"] >= created_before["runware"]
