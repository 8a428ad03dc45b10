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
import random
import time
from collections.abc import Callable, Generator
from typing import Any, Final

import attrs

from ..errors import BridgeError, GenerationTimeoutError, JobUnknownError, ProviderError, StateUnavailableError
from ..jobs import JobHandle
from ..result import PhotoMakerResult
from ..routing._state import StateOperation
from ._operations import ClaimJob, DropJob, JobEntry, UpdateJob

__all__ = ["CLAIM_GRACE_SECONDS", "arun_idempotent", "check_key", "idempotent_flow", "run_idempotent"]

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


def idempotent_flow(key: str, owner: str, keep_seconds: float, remaining: Callable[[], float | None],
                    route: bool) -> IdempotentFlow:
    """The steps of one idempotent ``generate`` (see the module docstring). ``remaining()`` is the time left
    before the call's deadline; ``route``: whether ``provider`` is a route (a failed job may then fall back)."""
    left = remaining()
    claim_seconds = (DEFAULT_CLAIM_SECONDS if left is None else left) + CLAIM_GRACE_SECONDS
    entry: JobEntry = yield Ask(ClaimJob(key, owner, claim_seconds, keep_seconds))
    while entry.status == "claimed":
        if entry.claim_expired:
            raise JobUnknownError(
                f"idempotency key {key!r}: an earlier submission stopped before recording the provider's answer, so "
                "a job may have been accepted; it is not sent again (check the provider, or use a new key)", key=key)
        left = remaining()
        if left is not None and left <= 0:
            raise GenerationTimeoutError(f"the deadline passed while another call was submitting idempotency key "
                                         f"{key!r}; call again with the same key to collect its job",
                                         provider="journal")
        yield Pause(random.uniform(*_WAIT_SECONDS))
        entry = yield Ask(ClaimJob(key, owner, claim_seconds, keep_seconds))
    if entry.status == "new":
        handle = yield from _submit(key, owner, keep_seconds, None)
    else:
        assert entry.handle is not None
        handle = JobHandle.from_dict(entry.handle)
    while True:
        try:
            result: PhotoMakerResult = yield Collect(handle)
        except GenerationTimeoutError:
            raise  # the job still runs: the journal's handle collects it next time
        except ProviderError as error:
            yield from _bookkeeping(UpdateJob(key, "failed", keep_seconds))
            if not route:
                raise
            handle = yield from _submit(key, owner, keep_seconds, error)  # the route's policy decides
            continue
        cost = None if result.cost is None else str(result.cost.amount)
        yield from _bookkeeping(UpdateJob(key, "completed", keep_seconds, cost=cost))
        return result


def _submit(key: str, owner: str, keep_seconds: float,
            after: ProviderError | None) -> Generator[Step, Any, JobHandle]:
    try:
        handle: JobHandle = yield Submit(after)
    except GenerationTimeoutError as error:
        if error.handle is not None:  # accepted after all: record it, so the next call collects it
            yield from _record(key, keep_seconds, error.handle)
        elif after is None:
            yield from _bookkeeping(DropJob(key, owner))
        raise
    except BridgeError as error:
        if after is None and not getattr(error, "may_have_accepted", False):
            yield from _bookkeeping(DropJob(key, owner))  # refused before anything was accepted
        raise
    yield from _record(key, keep_seconds, handle)
    return handle


def _record(key: str, keep_seconds: float, handle: JobHandle) -> Generator[Step, Any, None]:
    try:
        yield Ask(UpdateJob(key, "accepted", keep_seconds, handle=handle.to_dict()))
    except StateUnavailableError as error:
        raise StateUnavailableError(f"{error} — the provider accepted the job of idempotency key {key!r}: collect it "
                                    "with result(error.handle)", handle=handle, backend=error.backend) from error


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
