"""The batch runner against the emulators: what a journal left by an earlier run makes the next run do, a
deadline that leaves a job resumable, a missing key, cancellation while submissions are on the wire."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import helpers_batch
import pytest
from helpers_batch import PROVIDERS, adapters, created, journal_lines, open_intents

from photomaker_bridge import AsyncBridge, ConfigurationError, PhotoMakerRequest
from photomaker_bridge.batch import BatchEvent, BatchJob, BatchOptions, arun_batch, run_batch, scan_journal
from photomaker_bridge.batch.journal import JournalWriter
from photomaker_bridge.emulators import Emulators
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.samples import sample_faces

running = helpers_batch.running
emu = helpers_batch.emu


def job(provider: str = "eachlabs", prompt: str = "a photo of a woman img reading", **fields: Any) -> BatchJob:
    return BatchJob(PhotoMakerRequest(prompt=prompt, images=[sample_faces()[0]], seed=7, **fields), provider=provider)


def finished(out: Path) -> list[dict[str, Any]]:
    return [line for line in journal_lines(out) if line["type"] == "finished"]


def test_a_run_journals_each_step_and_saves_images(emu: Emulators, tmp_path: Path) -> None:
    events: list[BatchEvent] = []
    jobs = [job(provider) for provider in PROVIDERS]
    outcome = run_batch(jobs, tmp_path, providers=adapters(emu), on_event=events.append)
    assert (outcome.succeeded, outcome.failed, outcome.left) == (3, 0, ())
    kinds = [line["type"] for line in journal_lines(tmp_path)]
    assert kinds[0] == "run" and kinds.count("intent") == kinds.count("submitted") == kinds.count("finished") == 3
    for line in finished(tmp_path):
        assert line["outcome"] == "success" and line["total_seconds"] > 0 and not line["resumed"]
        (image,) = line["images"]
        assert (tmp_path / image["path"]).read_bytes()[:4] in (b"\x89PNG", b"\xff\xd8\xff\xe0", b"\xff\xd8\xff\xdb")
        assert image["url"].startswith("http://127.0.0.1:")
    assert [event.kind for event in events if event.key == jobs[0].key] == [
        "submitting", "submitted", "collecting", "finished"]


def test_a_key_given_twice_runs_once(emu: Emulators, tmp_path: Path) -> None:
    events: list[BatchEvent] = []
    outcome = run_batch([job(), job()], tmp_path, providers=adapters(emu), on_event=events.append)
    assert outcome.succeeded == 1 and created(emu)["eachlabs"] == 1
    assert [event.kind for event in events].count("duplicate") == 1


def test_without_download_the_journal_keeps_urls(emu: Emulators, tmp_path: Path) -> None:
    run_batch([job("fal")], tmp_path, providers=adapters(emu), options=BatchOptions(download=False))
    (line,) = finished(tmp_path)
    assert line["images"][0]["path"] is None and line["images"][0]["url"]
    assert not any((tmp_path / "images").iterdir())


def test_an_accepted_job_is_collected_by_its_handle_not_submitted_again(emu: Emulators, tmp_path: Path) -> None:
    pending = job("fal")

    async def scenario() -> None:
        async with AsyncBridge(providers=adapters(emu)) as bridge:
            handle = await bridge.submit(pending.request, "fal")  # a run that died right after this
            with JournalWriter(tmp_path / "journal.jsonl") as journal:
                journal.run_started()
                journal.intent(pending.key, "fal", pending.labels)
                journal.submitted(pending.key, "fal", handle.to_dict(), pending.labels)
            outcome = await arun_batch([pending], tmp_path, bridge=bridge)
            assert (outcome.resumed, outcome.succeeded) == (1, 1)

    asyncio.run(scenario())
    assert created(emu)["fal"] == 1
    (line,) = finished(tmp_path)
    assert line["resumed"] is True and line["total_seconds"] is None and line["outcome"] == "success"


def test_an_undecided_submission_is_reported_not_sent_again(emu: Emulators, tmp_path: Path) -> None:
    undecided = job("runware")
    with JournalWriter(tmp_path / "journal.jsonl") as journal:
        journal.run_started()
        journal.intent(undecided.key, "runware", undecided.labels)  # killed before the answer arrived
    events: list[BatchEvent] = []
    outcome = run_batch([undecided], tmp_path, providers=adapters(emu), on_event=events.append)
    assert outcome.left == (undecided.key,) and outcome.finished == 0
    assert [event.kind for event in events] == ["unknown"]
    assert emu.runware.counters["requests"] == 0
    # Asked explicitly, the next run sends it.
    outcome = run_batch([undecided], tmp_path, providers=adapters(emu), options=BatchOptions(resubmit_unknown=True))
    assert outcome.succeeded == 1 and created(emu)["runware"] == 1
    assert scan_journal(tmp_path / "journal.jsonl").unknown == {}


def test_a_passed_deadline_leaves_the_job_to_collect_later(emu: Emulators, tmp_path: Path) -> None:
    emu.eachlabs.settings.run_time = 4.0
    slow = job()
    outcome = run_batch([slow], tmp_path, providers=adapters(emu), options=BatchOptions(timeout=1.0))
    assert outcome.failed == 1 and outcome.left == (slow.key,)
    (line,) = finished(tmp_path)
    assert (line["outcome"], line["resumable"], line["error"]["class"]) == ("timeout", True, "GenerationTimeoutError")
    assert line["handle"]["request_ids"] == line["request_ids"]
    state = scan_journal(tmp_path / "journal.jsonl")
    assert set(state.pending) == {slow.key} and state.pending[slow.key].timed_out

    outcome = run_batch([slow], tmp_path, providers=adapters(emu), options=BatchOptions(timeout=120))
    assert (outcome.resumed, outcome.succeeded, outcome.left) == (1, 1, ())
    assert created(emu)["eachlabs"] == 1
    assert [line["outcome"] for line in finished(tmp_path)] == ["timeout", "success"]


def test_a_missing_key_stops_the_run_before_anything_is_sent(emu: Emulators, tmp_path: Path) -> None:
    without_key = [adapter for adapter in adapters(emu) if adapter.name != "eachlabs"] + [EachlabsProvider()]
    with pytest.raises(ConfigurationError, match="EACHLABS_API_KEY"):
        run_batch([job()], tmp_path, providers=without_key)
    assert emu.eachlabs.counters["requests"] == 0
    assert [line["type"] for line in journal_lines(tmp_path)] == ["run", "intent", "withdrawn"]
    assert scan_journal(tmp_path / "journal.jsonl").unknown == {}


def test_the_sync_entry_point_runs_inside_an_event_loop(emu: Emulators, tmp_path: Path) -> None:
    async def inside() -> int:
        return run_batch([job("runware")], tmp_path, providers=adapters(emu)).succeeded

    assert asyncio.run(inside()) == 1


def test_cancelling_a_run_journals_the_submissions_on_the_wire(emu: Emulators, tmp_path: Path) -> None:
    emu.eachlabs.settings.latency = 0.3  # every answer takes a while: the submissions are on the wire
    jobs = [job(prompt=f"a photo of a woman img reading book {number}") for number in range(3)]

    stopping: list[BatchEvent] = []

    async def scenario() -> None:
        started = asyncio.Event()

        def on_event(event: BatchEvent) -> None:
            if event.kind == "submitting":
                started.set()
            if event.kind == "stopping":
                stopping.append(event)

        task = asyncio.create_task(arun_batch(jobs, tmp_path, providers=adapters(emu), on_event=on_event))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    (stopped,) = stopping
    assert stopped.message is not None and "30 s" in stopped.message
    lines = journal_lines(tmp_path)
    assert not open_intents(lines)
    assert created(emu)["eachlabs"] == sum(1 for line in lines if line["type"] == "submitted") >= 1
    emu.eachlabs.settings.latency = 0.0
    outcome = run_batch(jobs, tmp_path, providers=adapters(emu))
    assert outcome.left == () and len({line["key"] for line in finished(tmp_path)}) == 3
    assert created(emu)["eachlabs"] == 3


def test_a_submission_past_its_grace_stays_undecided(emu: Emulators, tmp_path: Path) -> None:
    emu.eachlabs.settings.latency = 1.0
    slow = job()

    async def scenario() -> None:
        started = asyncio.Event()
        task = asyncio.create_task(arun_batch([slow], tmp_path, providers=adapters(emu),
                                              options=BatchOptions(submit_grace=0.05),
                                              on_event=lambda event: started.set()))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    assert open_intents(journal_lines(tmp_path)) == {slow.key}
    emu.eachlabs.settings.latency = 0.0
    before = emu.eachlabs.counters["route:POST /v1/prediction/"]
    outcome = run_batch([slow], tmp_path, providers=adapters(emu))
    assert outcome.left == (slow.key,)
    assert emu.eachlabs.counters["route:POST /v1/prediction/"] == before


def test_the_journal_lines_are_json_objects_with_a_type(emu: Emulators, tmp_path: Path) -> None:
    run_batch([job("fal")], tmp_path, providers=adapters(emu))
    for text in (tmp_path / "journal.jsonl").read_text().splitlines():
        assert isinstance(json.loads(text), dict) and "type" in json.loads(text)
