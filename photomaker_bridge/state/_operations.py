"""The questions a client asks its state beyond routing (``routing._state``): provider slots (leases) and the
job journal. Pure values, answered atomically by every backend (``MemoryState``, ``RedisState``), so one set
of tests holds for both (docs/scaling.md, "The state interface").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

from .._coordination_operations import Limits
from ..routing._state import StateOperation

__all__ = [
    "BindLease",
    "ClaimJob",
    "CountLeases",
    "DropJob",
    "JobEntry",
    "JobStatus",
    "ReadJob",
    "ReleaseLease",
    "RenewLease",
    "TakeSlots",
    "UpdateJob",
]


@attrs.frozen
class TakeSlots(StateOperation):
    """Take ``count`` slots of ``account`` at once, under its ``limits`` (concurrency and per-minute rate), as
    leases named ``lease_ids`` (unique across processes). Answers ``True`` when taken, or a
    :class:`~photomaker_bridge._coordination_operations.Busy` saying why not and when to ask again."""

    account: str
    limits: Limits
    lease_ids: tuple[str, ...]


@attrs.frozen
class BindLease(StateOperation):
    """The lease ``lease_id`` now belongs to the job ``request_id``; its expiry starts over (``lease_seconds``)."""

    account: str
    lease_id: str
    request_id: str
    lease_seconds: float


@attrs.frozen
class RenewLease(StateOperation):
    """The job ``request_id`` was seen running: its lease (whoever took it) starts over."""

    account: str
    request_id: str
    lease_seconds: float


@attrs.frozen
class ReleaseLease(StateOperation):
    """Free the slot of the job ``request_id`` or of the lease ``lease_id``."""

    account: str
    request_id: str | None = None
    lease_id: str | None = None


@attrs.frozen
class CountLeases(StateOperation):
    """How many unexpired leases ``account`` holds now, in every process. Answers an ``int``."""

    account: str


JobStatus = Literal["new", "claimed", "accepted", "completed", "failed"]
"""Where a job of the journal is: ``new`` (just claimed by this caller), ``claimed`` (another caller is
submitting it), ``accepted`` (a provider accepted it: ``handle`` collects it), ``completed``/``failed`` (collected;
the handle still collects it again without paying)."""


@attrs.frozen
class JobEntry:
    """What the journal knows of one idempotency key."""

    status: JobStatus
    handle: Mapping[str, Any] | None = None
    """``JobHandle.to_dict()`` once a provider accepted the job."""
    cost: str | None = None
    """The cost collected, as a decimal string (USD), when known."""
    owner: str = ""
    """Who claimed it (a process-unique id)."""
    claim_expired: bool = False
    """``claimed`` only: the claimer's time ran out without a handle (it crashed, or its submission's answer was
    lost): the provider may or may not have accepted the job."""
    round: int = 1
    """How many times the key was claimed: 1 for its first submission, one more each time a caller takes it over
    from a failed job to submit again (``ClaimJob.replace_round``)."""


@attrs.frozen
class ClaimJob(StateOperation):
    """Claim ``key`` for ``owner`` (one call's unique name) for ``claim_seconds`` (the time its submission may take)
    unless the journal already has it. Answers a :class:`JobEntry`: ``new`` when this caller now owns it (also when
    it already did: a claim asked again after a lost reply), otherwise what the journal holds. Entries are kept
    ``keep_seconds``.

    ``replace_round``: take the key over from its accepted, failed or completed job — only if the entry is still at
    that round (compare-and-set: of several callers that saw the same failed job, one wins and submits again)."""

    key: str
    owner: str
    claim_seconds: float
    keep_seconds: float
    replace_round: int | None = None


@attrs.frozen
class UpdateJob(StateOperation):
    """Record what became of ``key``: its ``status``, the accepted job's ``handle``, its ``cost``."""

    key: str
    status: JobStatus
    keep_seconds: float
    handle: Mapping[str, Any] | None = None
    cost: str | None = None


@attrs.frozen
class ReadJob(StateOperation):
    """The :class:`JobEntry` of ``key``, or ``None``."""

    key: str


@attrs.frozen
class DropJob(StateOperation):
    """Forget the claim of ``key`` by ``owner`` (its submission created nothing: a later call may send it)."""

    key: str
    owner: str
