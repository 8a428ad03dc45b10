"""Sub-flows every provider's flows are built from: a step tried again by the retry policy, a slot of the
provider's limits, an upload done once per distinct content, and cancel outcomes.

Written once here, so that "what is retried", "who waits for a slot" and "who uploads" mean the same for every
provider and both clients (docs/architecture.md, "Retries" and "Limits").
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import attrs

from .._coordination import (
    AcquireSlot,
    BindSlot,
    Busy,
    ClaimUpload,
    FinishUpload,
    ForgetUpload,
    Lease,
    Limits,
    ReleaseSlot,
    RenewSlot,
    UploadTicket,
)
from .._http import Event, Flow, Wait
from ..errors import ConfigurationError, GenerationTimeoutError, ProviderError
from ..jobs import CancelOutcome, JobHandle
from ..plan import Plan
from ..result import BridgeWarning, Cost, PhotoMakerResult, Timings
from .base import FlowContext

__all__ = [
    "account_of",
    "acquire_slots",
    "add_note",
    "bind_slot",
    "cancel_summary",
    "check_fits",
    "forget_upload",
    "in_waves",
    "keep_handle",
    "release_slot",
    "renew_slot",
    "step",
    "upload_once",
]

T = TypeVar("T")


def account_of(provider: str, key: str) -> str:
    """The name of a provider account in shared state: the provider and a hash of its key, never the key."""
    return f"{provider}:{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def step(operation: Any, context: FlowContext, *, provider: str, what: str,
         parse: Callable[[Any], T] | None = None, request_id: str | None = None) -> Flow[T]:
    """Yield ``operation`` and return its parsed answer, trying again as ``context.retry`` allows.

    ``parse`` turns the answer into a value or raises the typed error it means; ``what`` names the step in the
    ``retrying`` progress event ("status poll", "submit" ...). Whether the operation creates a billed job
    (``operation.creates_job``) decides which failures may be tried again (``_retry``).
    """
    creates_job = bool(getattr(operation, "creates_job", False))
    attempt = 1
    while True:
        failure: ProviderError
        try:
            answer = yield operation
            return parse(answer) if parse is not None else answer
        except ProviderError as error:
            delay = context.retry.delay(error, attempt, creates_job=creates_job, remaining=context.remaining())
            if delay is None:
                raise
            failure = error
        attempt += 1
        yield Event("retrying", provider, request_id or failure.request_id,
                    message=f"{what} failed ({failure}); try {attempt} of {context.retry.attempts} "
                            f"in {delay:.2g} s")
        yield Wait(delay)


def acquire_slots(context: FlowContext, provider: str, account: str, limits: Limits, count: int,
                  request_id: str | None = None) -> Flow[tuple[Lease, ...]]:
    """``count`` slots of ``account`` at once, one per job the call is about to create, waiting (within the
    deadline) while the provider's limits are reached; none when the provider has no limits. The wait shows as
    one ``waiting`` event. ``count`` must not pass ``limits.concurrency`` (see :func:`in_waves`)."""
    if not limits.active or count < 1:
        return ()
    told = False
    wait = False
    while True:
        answer = yield AcquireSlot(account, limits, wait=wait, count=count)
        if isinstance(answer, tuple):
            return answer
        if isinstance(answer, Busy):
            if not told:
                told = True
                yield Event("waiting", provider, request_id, message=f"waiting for {provider}: {answer.reason}")
            if answer.retry_in is not None:
                yield Wait(answer.retry_in)
                wait = False
                continue
        # Busy for slots (or a wait cut short, None): wait on the next release.
        wait = True


def bind_slot(lease: Lease | None, request_id: str, *, keep: bool) -> Flow[None]:
    """The job of ``lease`` was accepted as ``request_id``: it holds the slot until it ends. ``keep``: past the
    end of this run (a handle handed over); otherwise the slot is freed when the run ends, whatever happened."""
    if lease is not None:
        yield BindSlot(lease, request_id, keep=keep)


def renew_slot(account: str, limits: Limits, request_id: str) -> Flow[None]:
    """The job ``request_id`` was seen running: its slot's lease starts over."""
    if limits.concurrency is not None:
        yield RenewSlot(account, request_id)


def release_slot(account: str, limits: Limits, *, request_id: str | None = None,
                 lease: Lease | None = None) -> Flow[None]:
    """The job ``request_id`` ended (or ``lease`` made no job): free its slot."""
    if limits.active and (request_id is not None or lease is not None):
        yield ReleaseSlot(account, request_id=request_id, lease=lease)


def upload_once(key: str, provider: str, description: str, upload: Callable[[], Flow[str]],
                ) -> Flow[tuple[str, bool]]:
    """The URL (or id) of the content ``key``, uploaded by ``upload`` only if no earlier or concurrent call of
    this client did. Returns ``(url, uploaded_now)``. A failed upload lets the next waiting call try."""
    told = False
    wait = False
    while True:
        claimed = yield ClaimUpload(key, wait=wait)
        if isinstance(claimed, str):
            return claimed, False
        if isinstance(claimed, UploadTicket):
            break
        if isinstance(claimed, Busy) and not told:
            told = True
            yield Event("waiting", provider, message=f"{description}: {claimed.reason}")
        wait = True
    try:
        yield Event("uploading", provider, message=description)
        url = yield from upload()
    except GeneratorExit:
        raise  # a closed flow cannot yield: the driver's scope finishes the ticket (as failed) itself
    except BaseException:
        yield FinishUpload(claimed, None)  # a waiting call uploads it itself
        raise
    yield FinishUpload(claimed, url)
    return url, True


def forget_upload(key: str, url: str) -> Flow[None]:
    """The provider could not read the upload ``url``: the next call uploads ``key`` again."""
    yield ForgetUpload(key, url)


def add_note(error: BaseException, note: str) -> None:
    """Append ``note`` to a ProviderError's message, in place (other exceptions are the caller's own)."""
    if isinstance(error, ProviderError) and note:
        error.message = f"{error.message} ({note})"
        error.args = (error.message,)


def keep_handle(error: ProviderError, handle: JobHandle, outcomes: Sequence[CancelOutcome] = (), *,
                running: bool = False) -> None:
    """Give ``error`` the job's ``handle`` when collecting failed and the job may still deliver, and be billed: left
    running (``running``), a cancel that did not happen (no cancel API, a cancel that failed), or a request that had
    already finished when cancelled and was not fetched. Not when the provider says it does not know the job (404,
    410: expired or never its own), which no later collection would change."""
    if isinstance(error, GenerationTimeoutError) or error.status in (404, 410):
        return  # a timeout carries its own handles
    if running or any(outcome.state in ("not_supported", "failed", "already_finished") for outcome in outcomes):
        error.handle = handle


def cancel_summary(outcomes: Sequence[CancelOutcome]) -> str:
    """What cancelling did, in words, for an error message: ``cancelled: a, b; already finished: c``."""
    words = {"cancelled": "cancelled", "cancel_requested": "cancel requested (it was running)",
             "already_finished": "already finished (not cancelled)", "not_found": "unknown to the provider",
             "not_supported": "still running (the provider has no cancel)", "failed": "cancel failed"}
    parts: list[str] = []
    for state, label in words.items():
        ids = [outcome.request_id for outcome in outcomes if outcome.state == state]
        if ids:
            parts.append(f"{label}: {', '.join(ids)}")
    return "; ".join(parts)


def check_fits(plan: Plan, limits: Limits, provider: str) -> None:
    """Refuse (before anything is sent) a handle-returning submit of more jobs than the provider's concurrency:
    its jobs could never all be in flight at once. ``generate`` runs such a request in waves instead."""
    cap = limits.concurrency
    if cap is not None and len(plan.payloads) > cap:
        raise ConfigurationError(
            f"this request needs {len(plan.payloads)} {provider} jobs at once ({sum(plan.images_per_payload)} "
            f"images) but this client allows {cap} in flight (the provider's concurrency setting): use generate(), "
            "which runs them in turn, or fewer images per request")


def in_waves(plan: Plan, limits: Limits, provider: str,
             run: Callable[[Plan], Flow[PhotoMakerResult]]) -> Flow[PhotoMakerResult]:
    """``run(plan)``, or — when the plan needs more jobs than the provider's concurrency allows at once — the plan
    in waves of at most that many jobs, one after the other, merged into one result.

    A wave that fails after earlier waves delivered does not lose their (paid) images: the result keeps them, with
    a ``num_images`` warning naming the failure."""
    cap = limits.concurrency
    if cap is None or len(plan.payloads) <= cap:
        whole: PhotoMakerResult = yield from run(plan)
        return whole
    results: list[PhotoMakerResult] = []
    failure: ProviderError | None = None
    for start in range(0, len(plan.payloads), cap):
        part = attrs.evolve(plan, payloads=plan.payloads[start:start + cap],
                            images_per_payload=plan.images_per_payload[start:start + cap])
        try:
            results.append((yield from run(part)))
        except ProviderError as error:
            if not results:
                raise
            failure = error
            break
    return _merged(results, plan, provider, failure)


def _merged(results: Sequence[PhotoMakerResult], plan: Plan, provider: str,
            failure: ProviderError | None) -> PhotoMakerResult:
    """One result from the waves' results (each with the plan's own warnings, which appear once)."""
    warnings: list[BridgeWarning] = []
    for result in results:
        warnings += [warning for warning in result.warnings if warning not in warnings]
    images = [image for result in results for image in result.images]
    requested = sum(plan.images_per_payload)
    if failure is not None:
        warnings.append(BridgeWarning(field="num_images", asked=requested, sent=len(images), provider=provider,
                                      reason=f"{provider} returned {len(images)} of {requested} images: a later "
                                             f"batch of jobs failed ({failure})"))
    costs = [result.cost for result in results]
    cost = None
    if all(cost is not None for cost in costs) and len({(item.currency, item.source) for item in costs
                                                          if item is not None}) == 1:
        first = costs[0]
        assert first is not None
        cost = Cost(sum((item.amount for item in costs if item is not None), start=first.amount * 0),
                    first.currency, first.source)

    def total(name: str) -> float | None:
        values = [getattr(result.timings, name) for result in results]
        return None if any(value is None for value in values) else round(sum(values), 6)

    return attrs.evolve(
        results[0], images=images, request_ids=[rid for result in results for rid in result.request_ids],
        cost=cost, warnings=warnings, raw=[body for result in results for body in result.raw],
        requested_images=requested, created_at=results[-1].created_at,
        timings=Timings(total_seconds=results[-1].timings.total_seconds, upload_seconds=total("upload_seconds"),
                        queue_seconds=total("queue_seconds"), run_seconds=total("run_seconds")))
