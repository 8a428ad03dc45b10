"""Batch jobs that route (docs/compare-and-batch.md, "Routes"): a provider that fails every job is fallen back from,
each job is journaled under the provider that ran it with its route and decision trail, no job is created twice
(the emulators' counters), a re-run skips finished keys, and a job no candidate finished counts under ``route``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helpers_batch
from helpers_batch import adapters, created, journal_lines

from photomaker_bridge import PhotoMakerRequest, Route
from photomaker_bridge.batch import BatchEvent, BatchJob, BatchOptions, BatchProgress, run_batch, summarize_journal
from photomaker_bridge.batch.routes import canonical_route
from photomaker_bridge.emulators import Emulators, Fault
from photomaker_bridge.samples import sample_faces

running = helpers_batch.running
emu = helpers_batch.emu

ROUTE = Route(["runware", "fal"], max_attempts=3)


def routed_jobs(count: int, route: Route = ROUTE) -> list[BatchJob]:
    return [BatchJob(PhotoMakerRequest(prompt=f"a photo of a woman img reading, take {number}",
                                       images=[sample_faces()[0]], seed=number), provider=route)
            for number in range(count)]


def tried(line: Mapping[str, Any], provider: str) -> int:
    """Attempts of a trail that reached ``provider`` (a skip sends nothing)."""
    return sum(1 for attempt in line["attempts"] if attempt["provider"] == provider and attempt["outcome"] != "skipped")


def lines_of(out: Path, kind: str) -> list[dict[str, Any]]:
    return [line for line in journal_lines(out) if line["type"] == kind]


def test_a_failing_first_provider_is_fallen_back_from_and_nothing_is_created_twice(emu: Emulators,
                                                                                  tmp_path: Path) -> None:
    emu.runware.settings.faults.append(Fault("fail_job"))  # every Runware job is accepted, then fails
    jobs = routed_jobs(8)
    events: list[BatchEvent] = []
    outcome = run_batch(jobs, tmp_path, providers=adapters(emu), options=BatchOptions(concurrency=3),
                        on_event=events.append)
    assert (outcome.succeeded, outcome.failed, outcome.left) == (8, 0, ())

    finished = lines_of(tmp_path, "finished")
    assert sorted(line["key"] for line in finished) == sorted(job.key for job in jobs)
    for line in finished:
        assert line["provider"] == "fal" and line["outcome"] == "success"
        assert line["route"] == canonical_route(ROUTE)
        trail = line["attempts"]
        assert trail[-1]["provider"] == "fal" and trail[-1]["outcome"] == "ok"
        assert all(attempt["provider"] == "runware" and attempt["outcome"] in ("error", "skipped")
                   for attempt in trail[:-1])
        assert all(attempt["error_type"] == "GenerationFailedError" for attempt in trail[:-1]
                   if attempt["outcome"] == "error")
    # Every job the emulators accepted has its own handle line, under the provider that accepted it, and every
    # Runware job is one attempt of a trail: none was created twice.
    submitted = lines_of(tmp_path, "submitted")
    accepted = Counter(line["provider"] for line in submitted)
    assert created(emu) == {"runware": accepted["runware"], "fal": 8, "eachlabs": 0}
    assert accepted["runware"] == sum(tried(line, "runware") for line in finished)
    assert len({(line["handle"]["provider"], tuple(line["handle"]["request_ids"])) for line in submitted}) == len(
        submitted)
    for line in submitted:
        assert line["handle"]["provider"] == line["provider"] and line["route"] == canonical_route(ROUTE)
        assert line["attempts"][-1] == {**line["attempts"][-1], "provider": line["provider"], "outcome": "ok"}
    # A failed accepted job sends the route on from a new intent line, which carries the trail so far.
    assert all(line["provider"] == "route" for line in lines_of(tmp_path, "intent"))
    assert any(line["attempts"] for line in lines_of(tmp_path, "intent"))

    summary = summarize_journal(tmp_path / "journal.jsonl")
    assert [(item.provider, item.jobs, item.successes) for item in summary.providers] == [("fal", 8, 8)]
    progress = BatchProgress(started=0.0)
    progress.expect("route", 8)
    for event in events:
        progress.update(event)
    assert progress.providers["fal"].succeeded == 8 and progress.providers["fal"].total == 8
    assert progress.providers["route"].total == 0
    assert all(tally.in_flight == 0 for tally in progress.providers.values())

    again = run_batch(jobs, tmp_path, providers=adapters(emu), options=BatchOptions(concurrency=3))
    assert (again.skipped, again.succeeded, again.failed) == (8, 0, 0)
    assert created(emu) == {"runware": accepted["runware"], "fal": 8, "eachlabs": 0}


def test_a_job_no_candidate_finishes_counts_under_route_with_its_trail(emu: Emulators, tmp_path: Path) -> None:
    for name in ("runware", "fal"):
        emu[name].settings.faults.append(Fault("fail_job"))
    (job,) = routed_jobs(1)
    outcome = run_batch([job], tmp_path, providers=adapters(emu))
    assert (outcome.succeeded, outcome.failed) == (0, 1)
    (line,) = lines_of(tmp_path, "finished")
    assert line["provider"] == "route" and line["outcome"] == "failed"
    assert line["error"]["class"] == "GenerationFailedError"
    assert [(attempt["provider"], attempt["outcome"]) for attempt in line["attempts"]] == [
        ("runware", "error"), ("fal", "error"), ("runware", "error")]  # max_attempts=3, across both
    assert created(emu) == {"runware": 2, "fal": 1, "eachlabs": 0}
    (row,) = summarize_journal(tmp_path / "journal.jsonl").providers
    assert (row.provider, row.jobs, row.successes, dict(row.errors)) == ("route", 1, 0, {"GenerationFailedError": 1})


def test_a_list_of_names_is_an_ordered_route_and_direct_jobs_keep_their_lines(emu: Emulators,
                                                                               tmp_path: Path) -> None:
    request = PhotoMakerRequest(prompt="a photo of a man img", images=[sample_faces()[1]], seed=3)
    routed = BatchJob(request, provider=["eachlabs", "fal"])
    direct = BatchJob(request, provider="fal")
    assert routed.provider == Route(["eachlabs", "fal"]) and routed.key.startswith("route-")
    run_batch([routed, direct], tmp_path, providers=adapters(emu))
    by_key = {line["key"]: line for line in lines_of(tmp_path, "finished")}
    assert by_key[routed.key]["provider"] == "eachlabs" and by_key[routed.key]["route"]["providers"] == [
        "eachlabs", "fal"]
    assert by_key[direct.key]["provider"] == "fal" and "route" not in by_key[direct.key]
    assert "route" not in next(line for line in lines_of(tmp_path, "submitted") if line["key"] == direct.key)


def test_a_job_timed_out_on_a_route_is_resumable_under_the_provider_running_it(emu: Emulators,
                                                                               tmp_path: Path) -> None:
    emu.fal.settings.faults.append(Fault("slow_job", seconds=4.0, times=1))
    (job,) = routed_jobs(1, Route(["fal", "runware"]))
    first = run_batch([job], tmp_path, providers=adapters(emu), options=BatchOptions(timeout=1.0))
    assert first.left == (job.key,)
    (line,) = lines_of(tmp_path, "finished")
    assert (line["provider"], line["outcome"], line["resumable"]) == ("fal", "timeout", True)
    second = run_batch([job], tmp_path, providers=adapters(emu), options=BatchOptions(timeout=60))
    assert (second.resumed, second.succeeded) == (1, 1)
    last = lines_of(tmp_path, "finished")[-1]
    assert last["provider"] == "fal" and last["resumed"] and last["route"] == canonical_route(job.provider)
    assert created(emu) == {"runware": 0, "fal": 1, "eachlabs": 0}


