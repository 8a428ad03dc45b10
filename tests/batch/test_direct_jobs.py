"""Jobs sent to one provider go through ``generate(keep_running=True)``, their handle journaled as it comes
(``photomaker_bridge.batch.direct``): Runware's as its synchronous POST leaves (``"accepted": false``), fal's and
Eachlabs' once accepted. A later run collects a journaled handle, and sends the job again only when the provider
says it never had it."""

from __future__ import annotations

import asyncio
import datetime
import uuid
from pathlib import Path
from typing import Any

import helpers_batch
from helpers_batch import PROVIDERS, adapters, created, journal_lines

from photomaker_bridge import AsyncBridge, GenerationTimeoutError, JobHandle, PhotoMakerRequest
from photomaker_bridge.batch import BatchEvent, BatchJob, run_batch, scan_journal
from photomaker_bridge.batch.journal import JournalWriter, now_iso
from photomaker_bridge.batch.records import JobTiming, failure_record
from photomaker_bridge.emulators import Emulators, Fault
from photomaker_bridge.samples import sample_faces

running = helpers_batch.running
emu = helpers_batch.emu


def job(provider: str = "runware", prompt: str = "a photo of a man img sailing") -> BatchJob:
    return BatchJob(PhotoMakerRequest(prompt=prompt, images=[sample_faces()[0]], seed=11), provider=provider)


def unsent_runware_handle() -> JobHandle:
    """A handle of Runware tasks that never left (the process died between the journal line and the POST)."""
    return JobHandle(provider="runware", request_ids=[str(uuid.uuid4())],
                     submitted_at=datetime.datetime.now(datetime.UTC), requested_images=1, images_per_request=[1],
                     details={"delivery": "sync"})


def journal_unconfirmed(out: Path, pending: BatchJob, handle: JobHandle) -> None:
    with JournalWriter(out / "journal.jsonl") as journal:
        journal.run_started()
        journal.intent(pending.key, "runware", pending.labels)
        journal.submitted(pending.key, "runware", handle.to_dict(), pending.labels, accepted=False)


def test_each_handle_is_journaled_before_the_outcome(emu: Emulators, tmp_path: Path) -> None:
    jobs = [job(provider) for provider in PROVIDERS]
    outcome = run_batch(jobs, tmp_path, providers=adapters(emu))
    assert outcome.succeeded == 3 and created(emu) == {name: 1 for name in PROVIDERS}
    lines = journal_lines(tmp_path)
    for item in jobs:
        steps = [line for line in lines if line.get("key") == item.key]
        assert [line["type"] for line in steps] == ["intent", "submitted", "finished"]
        submitted, finished = steps[1], steps[2]
        # Runware answers the sync POST only when done: its handle is journaled as the POST leaves.
        assert submitted.get("accepted", True) is (item.label != "runware")
        assert submitted["handle"]["request_ids"] == finished["request_ids"]
    assert scan_journal(tmp_path / "journal.jsonl").pending == {}


def test_a_handle_of_tasks_runware_never_got_is_sent_again_once(emu: Emulators, tmp_path: Path) -> None:
    pending = job()
    journal_unconfirmed(tmp_path, pending, unsent_runware_handle())
    outcome = run_batch([pending], tmp_path, providers=adapters(emu))
    assert (outcome.resumed, outcome.succeeded, outcome.left) == (1, 1, ())
    assert created(emu)["runware"] == 1
    lines = [line for line in journal_lines(tmp_path) if line.get("key") == pending.key]
    assert [line["type"] for line in lines] == ["intent", "submitted", "intent", "submitted", "finished"]
    assert lines[-1]["outcome"] == "success" and not lines[-1]["resumed"]
    assert scan_journal(tmp_path / "journal.jsonl").finished == {pending.key}


def test_a_handle_of_tasks_runware_took_is_collected_not_sent_again(emu: Emulators, tmp_path: Path) -> None:
    pending = job()

    async def taken() -> JobHandle:  # tasks that reached Runware before the process died
        async with AsyncBridge(providers=adapters(emu)) as bridge:
            return await bridge.submit(pending.request, "runware")

    journal_unconfirmed(tmp_path, pending, asyncio.run(taken()))
    outcome = run_batch([pending], tmp_path, providers=adapters(emu))
    assert (outcome.resumed, outcome.succeeded) == (1, 1)
    assert created(emu)["runware"] == 1
    (finished,) = [line for line in journal_lines(tmp_path) if line["type"] == "finished"]
    assert finished["resumed"] is True and finished["outcome"] == "success"


def test_a_handle_never_received_and_no_longer_in_the_input_is_reported(emu: Emulators, tmp_path: Path) -> None:
    pending = job()
    journal_unconfirmed(tmp_path, pending, unsent_runware_handle())
    events: list[BatchEvent] = []
    other = job(prompt="a photo of a man img skiing")
    outcome = run_batch([other], tmp_path, providers=adapters(emu), on_event=events.append)
    assert outcome.left == (pending.key,) and outcome.succeeded == 1
    (unknown,) = [event for event in events if event.kind == "unknown"]
    assert unknown.key == pending.key and "never received" in (unknown.message or "")
    assert created(emu)["runware"] == 1  # the other job only


def test_runware_jobs_are_collected_from_the_sync_answer(emu: Emulators, tmp_path: Path) -> None:
    """No getResponse polling for a job the runner sends: the images come with the synchronous answer."""
    jobs = [job(prompt=f"a photo of a man img, take {index}") for index in range(3)]
    outcome = run_batch(jobs, tmp_path, providers=adapters(emu))
    assert outcome.succeeded == 3

    def tasks(entry: Any) -> list[dict[str, Any]]:
        try:
            body = entry.json()
        except ValueError:  # an image upload or download, not a task array
            return []
        return [task for task in body if isinstance(task, dict)] if isinstance(body, list) else []

    polls = [task for entry in emu.runware.log for task in tasks(entry) if task.get("taskType") == "getResponse"]
    assert polls == []


def test_a_deadline_during_a_sync_post_that_never_arrived_is_sent_again(emu: Emulators, tmp_path: Path) -> None:
    """The timeout line keeps ``"accepted": false``: the next run asks Runware, and sends the job once."""
    pending, handle = job(), unsent_runware_handle()
    journal_unconfirmed(tmp_path, pending, handle)
    timeout = GenerationTimeoutError("the deadline passed while waiting for Runware's sync answer",
                                     provider="runware", handle=handle)
    record = failure_record(pending.key, "runware", pending.labels, timeout, JobTiming(now_iso(), 1.0), handle=handle)
    assert record["resumable"]
    with JournalWriter(tmp_path / "journal.jsonl") as journal:
        journal.write({**record, "accepted": False})
    outcome = run_batch([pending], tmp_path, providers=adapters(emu))
    assert (outcome.succeeded, outcome.left) == (1, ()) and created(emu)["runware"] == 1
    assert scan_journal(tmp_path / "journal.jsonl").finished == {pending.key}


def test_a_confirmed_handle_is_never_sent_again_whatever_runware_says(emu: Emulators, tmp_path: Path) -> None:
    """Only a handle journaled before Runware's answer may be sent again; an accepted one that Runware no longer
    knows is a failure to look at, not a job to pay for twice."""
    pending = job()
    handle = unsent_runware_handle()
    with JournalWriter(tmp_path / "journal.jsonl") as journal:
        journal.run_started()
        journal.intent(pending.key, "runware", pending.labels)
        journal.submitted(pending.key, "runware", handle.to_dict(), pending.labels)
    outcome = run_batch([pending], tmp_path, providers=adapters(emu))
    assert outcome.failed == 1 and created(emu)["runware"] == 0


def test_a_job_left_running_when_collecting_failed_is_collected_by_the_next_run(emu: Emulators,
                                                                             tmp_path: Path) -> None:
    """Status calls refused for good: the job runs on (keep_running), its line is resumable, and the next run
    collects it by handle instead of sending it again."""
    pending = job("fal")
    emu.fal.settings.faults.append(Fault("status", status=401, route=r"/requests/[^/]+/status", method="GET"))
    first = run_batch([pending], tmp_path, providers=adapters(emu))
    assert (first.succeeded, first.failed, first.left) == (0, 1, (pending.key,))
    (line,) = [line for line in journal_lines(tmp_path) if line.get("type") == "finished"]
    assert line["resumable"] and line["outcome"] == "failed" and line["handle"]["request_ids"]
    emu.fal.settings.faults.clear()
    second = run_batch([pending], tmp_path, providers=adapters(emu))
    assert (second.resumed, second.succeeded, second.left) == (1, 1, ())
    assert created(emu)["fal"] == 1
