"""The journal: one JSON line per step of every job, appended as it happens, read back as a stream.

Five kinds of line (``"type"``):

* ``run`` — a run started (when, and the format version);
* ``intent`` — a job is about to be submitted (written *before* the request leaves); for a routed job also when
  its accepted job failed and the route goes on to another attempt (the earlier handle is then spent);
* ``withdrawn`` — the submission stopped before any request left (a missing key): the intent is void;
* ``submitted`` — the provider accepted it: the job's handle, enough to collect it from any process (for a
  routed job, under the provider that accepted it, with the route and the decision trail so far). With
  ``"accepted": false`` the handle was written as the request left, before any answer (Runware's synchronous
  delivery: the bridge chose the taskUUIDs); a new run collects it, and sends the job again only when the provider
  says it never had those tasks;
* ``finished`` — the outcome: images, cost, timings, warnings, or the error (see :mod:`.records`).

Reading it back (:func:`scan_journal`) tells a new run what to do with each key: *finished* keys are skipped;
*pending* ones (a handle but no outcome, or a deadline that passed while the job still ran) are collected by
their handle, never submitted again; an *unknown* one (an intent with no handle: the process died while the
provider may or may not have been accepting it) is reported and left alone unless the caller asks to submit it
again. So a crash or Ctrl-C never pays twice for a job.

Each line is written with one ``write`` on a file opened for appending, so a killed process leaves whole
lines behind; a torn last line (a power cut) is ignored on reading. ``write`` hands the line to the operating
system, which keeps it whatever happens to the process; ``fsync=True`` also forces it to the disk.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs

from .jobs import JobLabels

__all__ = ["FORMAT_VERSION", "JOURNAL_NAME", "JournalState", "JournalWriter", "PendingJob", "iter_records",
           "now_iso", "scan_journal"]

JOURNAL_NAME = "journal.jsonl"
"""The journal's file name inside a batch's output folder."""

FORMAT_VERSION = 1
"""Written on every ``run`` line; a reader refuses a newer one."""


def now_iso() -> str:
    """The current UTC time, ISO 8601 with microseconds (what every journal timestamp looks like)."""
    return datetime.datetime.now(datetime.UTC).isoformat()


class JournalWriter:
    """Appends journal lines to ``path`` (created if missing), each with one ``write`` call."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self._fsync = fsync
        self._descriptor: int | None = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __enter__(self) -> JournalWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` as one line."""
        if self._descriptor is None:
            raise ValueError("the journal is closed")
        data = (json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode()
        view = memoryview(data)
        while view:
            written = os.write(self._descriptor, view)
            view = view[written:]
        if self._fsync:
            os.fsync(self._descriptor)

    def run_started(self) -> None:
        """Record that a run starts."""
        self.write({"type": "run", "format": FORMAT_VERSION, "at": now_iso(), "pid": os.getpid()})

    def intent(self, key: str, provider: str, labels: JobLabels, *, route: Mapping[str, Any] | None = None,
               attempts: Sequence[Mapping[str, Any]] = ()) -> None:
        """Record that ``key`` is about to be submitted (before any request leaves); ``provider`` is the route's
        label for a routed job, ``route`` its canonical form and ``attempts`` the trail of its earlier attempts."""
        self.write({"type": "intent", "key": key, "provider": provider, "labels": labels.to_dict(),
                    **_routed(route, attempts), "at": now_iso()})

    def withdrawn(self, key: str) -> None:
        """Record that the submission of ``key`` stopped before any request left."""
        self.write({"type": "withdrawn", "key": key, "at": now_iso()})

    def submitted(self, key: str, provider: str, handle: Mapping[str, Any], labels: JobLabels, *,
                  route: Mapping[str, Any] | None = None, attempts: Sequence[Mapping[str, Any]] = (),
                  accepted: bool = True) -> None:
        """Record the handle of an accepted job (``JobHandle.to_dict()``) under the provider that accepted it; for a
        routed job with the route's canonical form and the decision trail up to the acceptance. ``accepted=False``:
        a handle known before the provider answered (Runware's synchronous delivery, ``Event.accepted``), written
        with ``"accepted": false``."""
        unconfirmed = {} if accepted else {"accepted": False}
        self.write({"type": "submitted", "key": key, "provider": provider, "handle": dict(handle),
                    "labels": labels.to_dict(), **_routed(route, attempts), **unconfirmed, "at": now_iso()})


def _routed(route: Mapping[str, Any] | None, attempts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The fields a routed job's lines add (none for a job sent to one provider)."""
    return {} if route is None else {"route": dict(route), "attempts": list(attempts)}


@attrs.frozen
class PendingJob:
    """A job the provider accepted and nobody collected yet: collect it by ``handle``."""

    key: str
    provider: str
    handle: Mapping[str, Any]
    """``JobHandle.to_dict()``."""
    labels: JobLabels
    timed_out: bool = False
    """An earlier run's deadline passed while the provider still ran it (its ``timeout`` outcome counts until
    a later run collects it)."""
    route: Mapping[str, Any] | None = None
    """The route's canonical form, for a routed job (``None`` for one sent to one provider)."""
    accepted: bool = True
    """``False``: the handle was journaled as the request left, before the provider answered (``"accepted":
    false``); if the provider never received it, collecting fails with ``never_accepted`` and the job may be sent."""


@attrs.define
class JournalState:
    """What a journal says about each key, for the next run."""

    finished: set[str] = attrs.field(factory=set)
    """Keys with an outcome: skipped by the next run."""
    pending: dict[str, PendingJob] = attrs.field(factory=dict)
    """Keys accepted by a provider and not collected: resumed by their handle."""
    unknown: dict[str, tuple[str, JobLabels]] = attrs.field(factory=dict)
    """Keys whose submission was interrupted before the provider's answer arrived: provider and labels."""
    runs: int = 0
    """How many runs wrote to the journal."""
    damaged: list[int] = attrs.field(factory=list)
    """Numbers of lines that could not be read (a torn last line is not counted)."""
    ran_by: dict[str, str] = attrs.field(factory=dict)
    """Routed keys with an outcome → the provider (or route label) their ``finished`` line counts them under."""


def iter_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, record)`` for every readable line of the journal at ``path``, as a stream.

    A line that is not a JSON object is skipped, and reported through ``JournalState.damaged`` by
    :func:`scan_journal`. Raises ``ValueError`` for a journal written by a newer format.
    """
    if not path.exists():
        return
    with path.open("rb") as stream:
        for number, raw in enumerate(stream, start=1):
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                record = None
            if not isinstance(record, dict):
                if raw.endswith(b"\n"):
                    yield number, {"type": "damaged"}
                continue
            if record.get("type") == "run" and int(record.get("format", 1)) > FORMAT_VERSION:
                raise ValueError(f"{path} was written by a newer photomaker-bridge (journal format "
                                 f"{record.get('format')}); upgrade to read it")
            yield number, record


def scan_journal(path: Path) -> JournalState:
    """Read the journal at ``path`` (missing: empty) into a :class:`JournalState`, one line at a time.

    Memory grows with the number of keys (their strings), not with what the jobs produced.
    """
    state = JournalState()
    for number, record in iter_records(path):
        kind, key = record.get("type"), record.get("key")
        if kind == "run":
            state.runs += 1
        elif kind == "damaged" or not isinstance(key, str):
            state.damaged.append(number)
        elif kind == "intent":  # a routed job's next attempt, after its accepted job failed, spends the handle
            state.finished.discard(key)
            state.pending.pop(key, None)
            state.unknown[key] = (str(record.get("provider")), JobLabels.from_dict(record.get("labels")))
        elif kind == "withdrawn":
            state.unknown.pop(key, None)
        elif kind == "submitted":
            state.unknown.pop(key, None)
            state.pending[key] = PendingJob(key, str(record.get("provider")), record.get("handle") or {},
                                            JobLabels.from_dict(record.get("labels")), route=_route(record),
                                            accepted=record.get("accepted") is not False)
        elif kind == "finished":
            state.unknown.pop(key, None)
            handle = record.get("handle")
            if record.get("resumable") and isinstance(handle, dict):
                state.pending[key] = PendingJob(key, str(record.get("provider")), handle,
                                                JobLabels.from_dict(record.get("labels")), timed_out=True,
                                                route=_route(record), accepted=record.get("accepted") is not False)
                state.finished.discard(key)
            else:
                state.pending.pop(key, None)
                state.finished.add(key)
                if _route(record) is not None:
                    state.ran_by[key] = sys.intern(str(record.get("provider")))
    return state


def _route(record: Mapping[str, Any]) -> Mapping[str, Any] | None:
    route = record.get("route")
    return route if isinstance(route, Mapping) else None
