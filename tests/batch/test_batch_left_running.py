"""A batch job whose collecting failed for good while the provider still runs it (``ProviderError.handle``) is
journaled resumable under that provider, routed or not, and the next run (CLI preflight included) collects it; a
job the provider no longer knows (404) is a plain failure, not resumed forever."""

from __future__ import annotations

import datetime
from pathlib import Path

import helpers_batch
from helpers_batch import adapters, created, journal_lines

from photomaker_bridge import Bridge, JobHandle, PhotoMakerRequest, Route
from photomaker_bridge.batch import BatchJob, run_batch
from photomaker_bridge.batch.journal import JournalWriter
from photomaker_bridge.batch.preflight import preflight
from photomaker_bridge.emulators import Emulators, Fault
from photomaker_bridge.samples import sample_faces

running = helpers_batch.running
emu = helpers_batch.emu


def job(provider: str | Route) -> BatchJob:
    return BatchJob(PhotoMakerRequest(prompt="a photo of a man img", images=[sample_faces()[0]], seed=11),
                    provider=provider)


def test_a_routed_job_left_running_is_collected_by_the_next_run(emu: Emulators, tmp_path: Path) -> None:
    pending = job(Route(["fal", "eachlabs"]))
    emu.fal.settings.run_time = 0.3
    emu.fal.settings.faults.append(Fault("status", status=401, route=r"/requests/[^/]+/status", method="GET"))
    first = run_batch([pending], tmp_path, providers=adapters(emu))
    assert first.left == (pending.key,) and created(emu)["eachlabs"] == 0  # the route stopped: fal's job runs on
    (line,) = [line for line in journal_lines(tmp_path) if line.get("type") == "finished"]
    assert line["resumable"] and line["provider"] == "fal"
    emu.fal.settings.faults.clear()
    with Bridge(providers=adapters(emu)) as bridge:  # the CLI's plan: the job is fal's to collect
        checked = preflight([("line 1", pending)], bridge, tmp_path)
    assert checked.to_resume == 1 and sum(checked.to_submit.values()) == 0
    second = run_batch([pending], tmp_path, providers=adapters(emu))
    assert (second.resumed, second.succeeded, second.left) == (1, 1, ())
    assert created(emu) == {"runware": 0, "fal": 1, "eachlabs": 0}


def test_a_job_the_provider_no_longer_knows_is_a_plain_failure(emu: Emulators, tmp_path: Path) -> None:
    pending = job("fal")
    gone = JobHandle(provider="fal", request_ids=["00000000-0000-0000-0000-000000000000"],
                     submitted_at=datetime.datetime.now(datetime.UTC), requested_images=1, images_per_request=[1],
                     details={"application": "fal-ai/photomaker", "submitted_at_known": True})
    with JournalWriter(tmp_path / "journal.jsonl") as journal:
        journal.run_started()
        journal.intent(pending.key, "fal", pending.labels)
        journal.submitted(pending.key, "fal", gone.to_dict(), pending.labels)
    outcome = run_batch([pending], tmp_path, providers=adapters(emu))
    assert (outcome.resumed, outcome.failed, outcome.left) == (1, 1, ())
    line = [line for line in journal_lines(tmp_path) if line.get("type") == "finished"][-1]
    assert not line["resumable"] and line["attempts"][-1]["status"] == 404
