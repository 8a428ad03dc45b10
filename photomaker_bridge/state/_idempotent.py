"""``generate(..., idempotency_key=key)``: a job paid for once, whichever process asks and however often.

The journal (``ClaimJob``/``UpdateJob`` in the client's state) maps the key to the accepted job's handle:

1. the first caller *claims* the key (atomically: one claimer), submits, and records the handle the moment the
   provider accepts the job; then it collects the job and records the outcome (status, cost);
2. a later caller — the same process, another process, after a crash — finds the handle and collects that job
   (``result``), never submitting again; a failed or collected job is collected again, which costs nothing;
3. a caller that finds the key claimed waits (within its deadline) for the claimer's handle. If the claim ran
   out without a handle, the claimer died between sending and recording the answer: the provider may have
   accepted the job, so :class:`~photomaker_bridge.JobUnknownError` refuses to pay a second time.

A submission refused before anything was accepted drops its claim, so the key may be sent again. The flow is
written once (a generator, as everywhere in the package) and driven by :func:`run_idempotent` (``Bridge``) and
:func:`arun_idempotent` (``AsyncBridge``). Because the job must be collectable by handle, the key's call is a
``submit`` followed by ``result``: a passed deadline leaves the job running (collect it by calling again with the
same key) instead of cancelling it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
import uuid
from collections.abc import Callable, Generator
from typing import Any, Final

import attrs

from ..errors import BridgeError, GenerationTimeoutError, JobUnknownError, ProviderError, StateUnavailableError
from ..jobs import JobHandle
from ..result import PhotoMakerResult
from ..routing._state import StateOperation
from ._operations import ClaimJob, DropJob, JobEntry, UpdateJob

__all__ = ["CLAIM_GRACE_SECONDS", "arun_idempotent", "call_owner", "check_key", "idempotent_flow", "key_label",
           "run_idempotent"]

CLAIM_GRACE_SECONDS: Final = 30.0
"""A claim lasts the call's timeout (or ``DEFAULT_CLAIM_SECONDS``) plus this: a submission on the wire at the
deadline still gets its clean-up grace to be accepted and recorded."""

DEFAULT_CLAIM_SECONDS: Final = 600.0
"""How long a claim lasts when the call has no timeout."""

_WAIT_SECONDS: Final = (0.1, 0.5)
"""A caller waiting for another's claim asks again after a uniform draw within this range."""


@attrs.frozen
class Ask:
    """Ask the client's state ``operation``."""

    operation: StateOperation


@attrs.frozen
class Submit:
    """``submit`` the request (``after``: the error the route's last job ended with)."""

    after: ProviderError | None = None


@attrs.frozen
class Collect:
    """``result(handle)``."""

    handle: JobHandle


@attrs.frozen
class Pause:
    """Wait ``seconds``."""

    seconds: float


Step = Ask | Submit | Collect | Pause
IdempotentFlow = Generator[Step, Any, PhotoMakerResult]


def check_key(key: object) -> str:
    """``key`` if it is a usable idempotency key (a non-empty string of at most 512 characters)."""
    from ..errors import InvalidRequestError

    if not isinstance(key, str) or not key.strip() or len(key) > 512:
        raise InvalidRequestError("idempotency_key", key, "a non-empty string of at most 512 characters")
    return key


def key_label(key: str) -> str:
    """How messages name an idempotency key: a short hash (a key may carry a user's data; errors keep the key
    itself as an attribute)."""
    return f"idempotency key sha256:{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def call_owner(state: object) -> str:
    """A claimer's name for one call: the state's process name and a per-call part, so that a claim whose reply was
    lost and asked again is recognised as this call's own (docs/scaling.md, "The job journal")."""
    return f"{getattr(state, 'owner', 'memory')}-{uuid.uuid4().hex[:12]}"


def idempotent_flow(key: str, owner: str, keep_seconds: float, remaining: Callable[[], float | None],
                    route: bool) -> IdempotentFlow:
    """The steps of one idempotent ``generate`` (see the module docstring). ``remaining()`` is the time left
    before the call's deadline; ``route``: whether ``provider`` is a route (a failed job may then fall back)."""
    left = remaining()
    claim_seconds = (DEFAULT_CLAIM_SECONDS if left is None else left) + CLAIM_GRACE_SECONDS
    entry = yield from _claim(ClaimJob(key, owner, claim_seconds, keep_seconds), remaining)
    if entry.status == "new":
        handle = yield from _submit(key, owner, keep_seconds, None, None)
    else:
        assert entry.handle is not None
        handle = JobHandle.from_dict(entry.handle)
    job_round = entry.round
    while True:
        try:
            result: PhotoMakerResult = yield Collect(handle)
        except GenerationTimeoutError:
            raise  # the job still runs: the journal's handle collects it next time
        except ProviderError as error:
            if error.handle is not None:
                raise  # collecting failed, but the job may still deliver: the journal's handle collects it next time
            if not route:
                yield from _bookkeeping(UpdateJob(key, "failed", keep_seconds))
                raise
            # The route's policy may send the request elsewhere. Only one caller may: take the key back from the
            # failed job with a compare-and-set on its round; a caller that loses collects the winner's job.
            try:
                entry = yield from _claim(ClaimJob(key, owner, claim_seconds, keep_seconds, replace_round=job_round),
                                          remaining)
            except StateUnavailableError:
                raise error from None  # no fallback without the journal: the failed job is the outcome
            if entry.status == "new":
                handle = yield from _submit(key, owner, keep_seconds, error, handle)  # the route's policy decides
            else:
                assert entry.handle is not None
                handle = JobHandle.from_dict(entry.handle)
            job_round = entry.round
            continue
        cost = None if result.cost is None else str(result.cost.amount)
        yield from _bookkeeping(UpdateJob(key, "completed", keep_seconds, cost=cost))
        return result


def _claim(operation: ClaimJob, remaining: Callable[[], float | None]) -> Generator[Step, Any, JobEntry]:
    """Claim (or take over) the key, waiting while another caller holds its claim: the entry that is ours
    (``new``) or that has a job to collect."""
    label = key_label(operation.key)
    entry: JobEntry = yield Ask(operation)
    while entry.status == "claimed":
        if entry.claim_expired:
            raise JobUnknownError(
                f"{label}: an earlier submission stopped before recording the provider's answer, so a job may have "
                "been accepted; it is not sent again (check the provider, or use a new key)", key=operation.key)
        left = remaining()
        if left is not None and left <= 0:
            raise GenerationTimeoutError(
                f"the deadline passed while another call was submitting {label}; a later call with the same key "
                "collects its job once that call records it (or raises JobUnknownError if it never does)",
                provider="journal")
        yield Pause(random.uniform(*_WAIT_SECONDS))
        entry = yield Ask(operation)
    return entry


def _submit(key: str, owner: str, keep_seconds: float, after: ProviderError | None,
            failed: JobHandle | None) -> Generator[Step, Any, JobHandle]:
    """Submit (``after``: the route goes on from the failed job ``failed``) and record the accepted job."""
    try:
        handle: JobHandle = yield Submit(after)
    except BridgeError as error:
        if isinstance(error, GenerationTimeoutError) and error.handle is not None:
            yield from _record(key, keep_seconds, error.handle)  # accepted after all: the next call collects it
        elif not getattr(error, "may_have_accepted", False):
            # Refused before anything was accepted: the key goes back to what it was (free, or the failed job).
            # A submission cut on the wire (may_have_accepted) keeps its claim: a job may exist that nobody can
            # name, and a later call must not pay for a second one (it ends in JobUnknownError instead).
            yield from _bookkeeping(DropJob(key, owner) if failed is None else
                                    UpdateJob(key, "failed", keep_seconds, handle=failed.to_dict()))
        raise
    yield from _record(key, keep_seconds, handle)
    return handle


def _record(key: str, keep_seconds: float, handle: JobHandle) -> Generator[Step, Any, None]:
    try:
        yield Ask(UpdateJob(key, "accepted", keep_seconds, handle=handle.to_dict()))
    except StateUnavailableError as error:
        raise StateUnavailableError(
            f"{error} — the provider accepted the job of {key_label(key)}: collect it with result(error.handle). "
            "This process writes the handle to the journal when the state answers again, so a later call with the "
            "same key collects it; if this process stops first, that call raises JobUnknownError",
            handle=handle, backend=error.backend) from error


def _bookkeeping(operation: StateOperation) -> Generator[Step, Any, None]:
    with contextlib.suppress(StateUnavailableError):  # the outcome is the caller's already; the journal's
        yield Ask(operation)                            # handle still collects the job


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.01, deadline - time.monotonic())


def run_idempotent(state: Any, flow: IdempotentFlow, deadline: float | None,
                   submit: Callable[[float | None, ProviderError | None], JobHandle],
                   collect: Callable[[JobHandle, float | None], PhotoMakerResult]) -> PhotoMakerResult:
    """Drive ``flow`` with the sync client: ``submit(timeout, after)`` and ``collect(handle, timeout)``."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            if isinstance(step, Ask):
                value = state.perform(step.operation)
            elif isinstance(step, Submit):
                value = submit(_left(deadline), step.after)
            elif isinstance(step, Collect):
                value = collect(step.handle, _left(deadline))
            else:
                time.sleep(step.seconds)
        except BridgeError as failure:
            error = failure


async def arun_idempotent(state: Any, flow: IdempotentFlow, deadline: float | None,
                          submit: Callable[[float | None, ProviderError | None], Any],
                          collect: Callable[[JobHandle, float | None], Any]) -> PhotoMakerResult:
    """Drive ``flow`` with the async client (``submit`` and ``collect`` return awaitables)."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = flow.throw(error) if error is not None else flow.send(value)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        value, error = None, None
        try:
            if isinstance(step, Ask):
                value = await state.aperform(step.operation)
            elif isinstance(step, Submit):
                value = await submit(_left(deadline), step.after)
            elif isinstance(step, Collect):
                value = await collect(step.handle, _left(deadline))
            else:
                await asyncio.sleep(step.seconds)
        except BridgeError as failure:
            error = failure
