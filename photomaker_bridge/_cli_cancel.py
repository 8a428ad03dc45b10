"""Stopping a job from the shell: ``Bridge.cancel`` where the provider allows it, and the truth about each id.

Used by ``generate`` when Ctrl-C or ``--timeout`` ends the wait (the job was started by this command, so
nobody else will collect it unless told how), and by the ``cancel`` command. Each request id gets one line
saying what became of it; every id that may still run or finish — so may still be billed and collected —
also gets the exact ``photomaker-bridge resume ...`` line. A cancelled job gets none: there is nothing left
to collect.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

import attrs

from ._http import CLEANUP_GRACE_SECONDS
from .errors import BridgeError
from .jobs import JobHandle

if TYPE_CHECKING:
    from ._display import JobBoard
    from .client import Bridge
    from .jobs import CancelOutcome

__all__ = ["EXIT_CANCEL_FAILED", "cancel_and_report", "command_cancel", "report_outcomes", "resume_lines"]

EXIT_CANCEL_FAILED = 4
"""``cancel``: some id could not be cancelled (not found, not supported, or the call failed)."""

_NOUNS = {"runware": "task", "fal": "request", "eachlabs": "prediction"}
_SETTLED = frozenset({"cancelled", "cancel_requested", "already_finished"})
"""Outcomes after which ``cancel`` has done what it could (exit 0)."""
_COLLECTABLE = frozenset({"cancel_requested", "already_finished", "not_supported", "failed"})
"""Outcomes after which the job may still finish, be billed, and be collected with ``resume``."""


def resume_lines(handle: JobHandle, base_url: str | None = None, request_ids: Sequence[str] | None = None) -> list[str]:
    """The ``photomaker-bridge resume`` command(s) that collect ``handle``'s job (or only ``request_ids`` of
    it) from another shell. fal takes one request id per command; Runware and Eachlabs several, with commas."""
    ids = list(request_ids if request_ids is not None else handle.request_ids)
    suffix = f" --base-url {base_url}" if base_url else ""
    groups: Sequence[Sequence[str]] = [[each] for each in ids] if handle.provider == "fal" else [ids]
    return [f"photomaker-bridge resume --provider {handle.provider} --request-id {','.join(group)}{suffix}"
            for group in groups if group]


def _describe(state: str, message: str) -> str:
    detail = f" ({message})" if message else ""
    return {
        "cancelled": "cancelled",
        "cancel_requested": f"cancel requested{detail}; the provider may still finish it, and bill it",
        "already_finished": "already finished, and billed",
        "not_found": f"not found at the provider{detail}",
        "not_supported": f"cannot be cancelled{detail}; it keeps running, and will be billed",
        "failed": f"the cancel failed{detail}; it may still be running",
    }.get(state, f"{state}{detail}")


def report_outcomes(handle: JobHandle, outcomes: Sequence[CancelOutcome], base_url: str | None,
                    err: TextIO) -> list[str]:
    """One line per request id, then the resume lines for those that may still be collected; returns the
    collectable ids."""
    noun = _NOUNS.get(handle.provider, "job")
    for outcome in outcomes:
        err.write(f"  {outcome.provider} {noun} {outcome.request_id}: {_describe(outcome.state, outcome.message)}\n")
    collectable = [outcome.request_id for outcome in outcomes if outcome.state in _COLLECTABLE]
    if collectable:
        err.write("collect it with:\n")
        for line in resume_lines(handle, base_url, collectable):
            err.write(f"  {line}\n")
    return collectable


def _row_state(outcomes: Sequence[CancelOutcome]) -> str:
    states = {outcome.state for outcome in outcomes}
    if states <= {"cancelled", "not_found"}:
        return "cancelled"
    if "cancel_requested" in states:
        return "cancel requested"
    return "still running"


def cancel_and_report(bridge: Bridge, handle: JobHandle, why: str, base_url: str | None, board: JobBoard,
                      err: TextIO) -> None:
    """Cancel ``handle``'s job (waiting at most the clean-up grace), show the row's final state and print each
    id's fate. A second Ctrl-C while waiting prints the resume lines at once and goes on as KeyboardInterrupt."""
    job = board.jobs[-1] if board.jobs else None
    if job is not None:
        job.set_state("cancelling")
    try:
        outcomes = bridge.cancel(handle, timeout=CLEANUP_GRACE_SECONDS)
    except KeyboardInterrupt:
        if job is not None:
            job.finish("interrupted", why)
        board.close()
        err.write(f"{why}; exiting at once, before the cancel was confirmed: the {handle.provider} job may still be "
                  "running, and billed; collect it with:\n")
        for line in resume_lines(handle, base_url):
            err.write(f"  {line}\n")
        raise
    except BridgeError as error:  # the cancel itself could not be sent (configuration ...)
        from .jobs import CancelOutcome

        outcomes = tuple(CancelOutcome(provider=handle.provider, request_id=request_id, state="failed",
                                       message=str(error)) for request_id in handle.request_ids)
    if job is not None:
        job.finish(_row_state(outcomes), why)
    board.close()
    err.write(f"{why}: the {handle.provider} job was stopped where the provider allows it:\n")
    report_outcomes(handle, outcomes, base_url, err)


def command_cancel(arguments: argparse.Namespace, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """``photomaker-bridge cancel``: cancel a job by its provider and request id(s); one line per id."""
    from ._cli_options import base_url_for, configured_providers
    from .client import Bridge

    with Bridge(providers=configured_providers(arguments)) as bridge:
        handle = bridge.provider(arguments.provider).handle_for(arguments.request_id)
        outcomes = bridge.cancel(handle, timeout=arguments.timeout)
    if arguments.json:
        out.write(json.dumps([attrs.asdict(outcome) for outcome in outcomes], indent=2) + "\n")
    else:
        report_outcomes(handle, outcomes, base_url_for(arguments, handle.provider), out)
    return 0 if all(outcome.state in _SETTLED for outcome in outcomes) else EXIT_CANCEL_FAILED
