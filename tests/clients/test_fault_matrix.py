"""The fault matrix: every provider × every step of its protocol × every HTTP fault the emulators inject, once or
for good, through ``Bridge`` and ``AsyncBridge``.

The rules under test (docs/architecture.md, "Retries"):

* a step that creates nothing billable (upload, presign, token, status, result) is tried again after a rate limit,
  an unavailable provider, a dropped connection or an unreadable answer: one such fault and the call succeeds with
  the same images; the fault for good and the call ends with the typed error once the retry policy gives up;
* a step that creates a job is tried again only after a refusal (429, 503); any other failure may hide an accepted
  job: Runware's is looked up with getResponse (its taskUUIDs are ours) and sent again only when unknown; fal and
  Eachlabs give the id only in the answer, so the call ends with an error saying a job may exist — never a second
  submit;
* 401 and 402 settle the matter at once, wherever they come.

Whatever happens, the emulators' job counters prove that no job was created twice, and every job they accepted
ends as a result, an error carrying its id, or a cancel they saw. The rules are written once below
(:func:`expected`), independently of the code under test.
"""

from __future__ import annotations

import re
from typing import Any

import helpers_bridge
import pytest
from helpers_bridge import FAST_RETRY, JOB_COUNTER, Client, cancelled_ids, photo_request

from photomaker_bridge import (
    AuthenticationError,
    GenerationFailedError,
    GenerationTimeoutError,
    InsufficientCreditsError,
    PhotoMakerResult,
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
)
from photomaker_bridge.emulators import Emulators, Fault
from photomaker_bridge.emulators._common import HTTP_FAULT_KINDS, INJECTABLE_STATUSES, JOB_FAULT_KINDS

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu
mode = helpers_bridge.mode
client = helpers_bridge.client

READ, CREATE, PUT = "read", "create", "put"

# provider -> step -> (what the step is, the Fault fields that aim at it)
STEPS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    "runware": {
        "upload": (READ, {"route": r"^/v1$", "method": "POST", "body": '"taskType":"imageUpload"'}),
        "submit": (CREATE, {"route": r"^/v1$", "method": "POST", "body": '"taskType":"(photoMaker|imageInference)"'}),
    },
    "fal": {
        "token": (READ, {"route": r"^/storage/auth/token$", "method": "POST"}),
        "upload": (READ, {"route": r"^/files/upload$", "method": "POST"}),
        "submit": (CREATE, {"route": r"^/fal-ai/photomaker$", "method": "POST"}),
        "status": (READ, {"route": r"/requests/[^/]+/status$", "method": "GET"}),
        "result": (READ, {"route": r"/requests/[^/]+$", "method": "GET"}),
    },
    "eachlabs": {
        "presign": (READ, {"route": r"^/v1/upload/presign$", "method": "POST"}),
        "put": (PUT, {"route": r"^/storage/uploads/", "method": "PUT"}),
        "create": (CREATE, {"route": r"^/v1/prediction/?$", "method": "POST"}),
        "poll": (READ, {"route": r"^/v1/prediction/[^/]+$", "method": "GET"}),
    },
}

FAULTS: list[tuple[str, int | None]] = [("status", status) for status in sorted(INJECTABLE_STATUSES)]
FAULTS += [(kind, None) for kind in sorted(HTTP_FAULT_KINDS - {"status"})]
assert {kind for kind, _ in FAULTS} == HTTP_FAULT_KINDS  # every kind the emulators can inject is covered

CELLS = [(provider, step, kind, status, persistent)
         for provider, steps in STEPS.items() for step in steps
         for kind, status in FAULTS for persistent in (False, True)
         # A storage PUT's answer has no body the client reads: "malformed" (a 200 with a broken JSON body,
         # the file not stored) is not something storage does.
         if not (STEPS[provider][step][0] == PUT and kind == "malformed")]


def _name(cell: tuple[str, str, str, int | None, bool]) -> str:
    provider, step, kind, status, persistent = cell
    return f"{provider}-{step}-{status or kind}-{'always' if persistent else 'once'}"


def expected(provider: str, step: str, kind: str, status: int | None, persistent: bool) -> Any:
    """``"ok"`` (the call succeeds with every image) or ``(error class, status, whether a job may exist)``."""
    what = STEPS[provider][step][0]
    if provider == "fal" and step in ("token", "upload"):
        return "ok"  # fal_client falls back to its other storage (initiate + signed PUT), whatever failed
    if provider == "fal" and step == "status" and (persistent or status in (401, 402)):
        return "ok"  # the cancel that follows a status call failing for good finds the request completed
        # (billed): its result is fetched after all
    if status in (401, 402):
        if what == PUT:  # storage refusing the upload is about the upload, not the account
            return ProviderRejectedError, status, False
        return (AuthenticationError if status == 401 else InsufficientCreditsError), status, what != CREATE
    refused = status in (429, 503)
    if what == CREATE and not refused and provider != "runware":
        # The job may exist, its id unknown: never sent twice.
        return ProviderUnavailableError, (200 if kind == "malformed" else status), True
    if not persistent:
        return "ok"
    error = RateLimitedError if status == 429 else ProviderUnavailableError
    return error, (200 if kind == "malformed" else status), what == READ and step in ("status", "result", "poll")


def _fault(provider: str, step: str, kind: str, status: int | None, persistent: bool) -> Fault:
    fields = dict(STEPS[provider][step][1])
    return Fault(kind, status=status, retry_after=0.01 if status == 429 else None, nth=None if persistent else 1,
                 **fields)


@pytest.fixture
def fast_jobs(emu: Emulators) -> Emulators:
    """Jobs that finish as soon as they start, so a completed job is seen at once (no timing in any outcome)."""
    for name in ("runware", "fal", "eachlabs"):
        emu[name].settings.run_time = 0.0
    return emu


def _accounted(emu: Emulators, provider: str, outcome: PhotoMakerResult | ProviderError) -> None:
    """No job twice; every accepted job delivered, named by the error, or cancelled."""
    emulator = emu[provider]
    created = emulator.counters[JOB_COUNTER[provider]]
    assert created <= 1, f"{created} jobs for one call"
    if created and isinstance(outcome, ProviderError):
        job_ids = _accepted_ids(emu, provider)
        assert outcome.request_id in job_ids or set(cancelled_ids(emulator)) & set(job_ids), (
            f"an accepted job ({job_ids}) was neither named by the error nor cancelled: {outcome!r}")


def _accepted_ids(emu: Emulators, provider: str) -> list[str]:
    emulator = emu[provider]
    if provider == "runware":
        return [str(task["taskUUID"]) for entry in emulator.log if entry.path == "/v1"
                for task in (entry.json() if entry.body.startswith(b"[") else [])  # type: ignore[union-attr]
                if isinstance(task, dict) and task.get("taskType") in ("photoMaker", "imageInference")]
    pattern = re.compile(r"/requests/([^/]+)" if provider == "fal" else r"^/v1/prediction/([0-9a-f-]{36})")
    return [match.group(1) for entry in emulator.log if (match := pattern.search(entry.path))]


@pytest.mark.parametrize("cell", CELLS, ids=[_name(cell) for cell in CELLS])
async def test_fault_matrix(client: Client, fast_jobs: Emulators, cell: tuple[str, str, str, int | None, bool],
                            ) -> None:
    provider, step, kind, status, persistent = cell
    emulator = fast_jobs[provider]
    emulator.settings.faults.append(_fault(*cell))
    want = expected(*cell)

    outcome: PhotoMakerResult | ProviderError
    try:
        outcome = await client.generate(photo_request(), provider, timeout=30)
    except ProviderError as error:
        outcome = error
    assert emulator.counters[f"fault:{kind}"] >= 1, "the fault never fired: the step was not reached"
    _accounted(fast_jobs, provider, outcome)

    if want == "ok":
        assert isinstance(outcome, PhotoMakerResult), f"expected success, got {outcome!r}"
        assert len(outcome.images) == 2 and {image.seed for image in outcome.images} <= {42, 43}
        assert emulator.counters[JOB_COUNTER[provider]] == 1
        return
    error_class, error_status, job_may_exist = want
    assert type(outcome) is error_class, f"expected {error_class.__name__}, got {outcome!r}"
    assert outcome.provider == provider and outcome.status == error_status
    if kind == "status":
        assert outcome.raw is not None  # the provider's own answer, as received
    what = STEPS[provider][step][0]
    if error_class in (RateLimitedError, ProviderUnavailableError) and persistent and what != CREATE:
        assert emulator.counters[f"fault:{kind}"] == FAST_RETRY.attempts  # tried again, then given up
    if STEPS[provider][step][0] == CREATE and provider != "runware" and job_may_exist:
        assert emulator.counters[f"fault:{kind}"] == 1  # never sent twice
        assert "may have accepted" in outcome.message
    if status == 429:
        assert isinstance(outcome, RateLimitedError) and outcome.retry_after == 0.01
    if not job_may_exist:
        assert emulator.counters[JOB_COUNTER[provider]] == 0


JOB_CELLS = [(provider, kind) for provider in STEPS for kind in sorted(JOB_FAULT_KINDS)]


@pytest.mark.parametrize(("provider", "kind"), JOB_CELLS, ids=[f"{p}-{k}" for p, k in JOB_CELLS])
async def test_job_faults(client: Client, emu: Emulators, provider: str, kind: str) -> None:
    emulator = emu[provider]
    emulator.settings.faults.append(Fault(kind, images=1 if kind == "partial" else None))
    outcome: PhotoMakerResult | ProviderError
    try:
        outcome = await client.generate(photo_request(), provider, timeout=1.0 if kind == "stuck_job" else 30)
    except ProviderError as error:
        outcome = error
    assert emulator.counters[JOB_COUNTER[provider]] == 1  # a job's own failure is never retried
    _accounted(emu, provider, outcome)
    if kind == "partial":
        assert isinstance(outcome, PhotoMakerResult) and len(outcome.images) == 1
        assert any(warning.field == "num_images" for warning in outcome.warnings)
    elif kind == "fail_job":
        assert isinstance(outcome, GenerationFailedError) and outcome.request_id in _accepted_ids(emu, provider)
    elif kind == "slow_job":  # only later than the others: it still delivers
        assert isinstance(outcome, PhotoMakerResult) and len(outcome.images) == 2
    else:
        assert isinstance(outcome, GenerationTimeoutError) and outcome.handle is not None
        if provider != "runware":  # generate cancels what nobody will collect (Runware has no cancel)
            assert cancelled_ids(emulator) == list(outcome.handle.request_ids)
