"""Runware's error objects, the HTTP status of each error family, and the answers to injected HTTP faults.

Every Runware error, over REST and WebSocket alike, is an item of an ``errors`` array (runware.md §2.3):
``{code, message, parameter, type, taskType, taskUUID, documentation}`` plus, for range checks, the constraint
metadata ``min``/``max``/``multiplier``/``allowedValues`` seen in the official CLI's fixtures.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from ._common import Fault

__all__ = [
    "INVALID_API_KEY_MESSAGE",
    "TaskError",
    "error_item",
    "errors_response",
    "fault_error_response",
    "status_for_code",
]

INVALID_API_KEY_MESSAGE = "Invalid API key. Get one at https://my.runware.ai/signup"
"""The exact text Runware sends for a bad key (runware.md §2.3, §6: D-ERR, CLI fixtures, SDK)."""

# The HTTP status that goes with each error family. D-ERR documents 400/401/402/403/404 and SKILLS adds
# 429/500/503/504 (runware.md §2.4); which individual code lands in which family is [UNVERIFIED] beyond
# the documented invalidApiKey → 401 and insufficientCredits → 402, so the table follows the code names'
# meaning. Every code not listed here (the ``invalid<Param>``/``missing<Param>`` validation family,
# ``unknownParameter`` ...) is a 400 Bad Request.
_STATUS_BY_CODE: dict[str, int] = {
    "invalidApiKey": 401,
    "missingApiKey": 401,
    "insufficientCredits": 402,
    "forbidden": 403,
    "taskNotFound": 404,
    "mediaNotFound": 404,
    "conflictTaskUUID": 409,
    "rateLimitExceeded": 429,
    "inferenceError": 500,
    "internalServerError": 500,
    "serviceUnavailable": 503,
    "timeoutProvider": 504,
}


def status_for_code(code: str) -> int:
    """The HTTP status of the family an error code belongs to (400 for validation errors)."""
    return _STATUS_BY_CODE.get(code, 400)


def error_item(code: str, message: str, *, parameter: str | None = None, value_type: str | None = None,
               task_type: str | None = None, task_uuid: str | None = None, documentation: str | None = None,
               **constraints: Any) -> dict[str, Any]:
    """One item of Runware's ``errors`` array, with only the fields that apply.

    ``value_type`` goes on the wire as ``type`` (the parameter's JSON type, as in the real capture of
    runware.md §2.3); ``constraints`` are extra fields such as ``min``, ``max``, ``multiplier`` or
    ``allowedValues``.
    """
    item: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        item["parameter"] = parameter
    if value_type is not None:
        item["type"] = value_type
    if task_type is not None:
        item["taskType"] = task_type
    if task_uuid is not None:
        item["taskUUID"] = task_uuid
    if documentation is not None:
        item["documentation"] = documentation
    item.update({key: value for key, value in constraints.items() if value is not None})
    return item


class TaskError(Exception):
    """A task was refused: carries the ``errors`` item Runware would send for it."""

    def __init__(self, item: dict[str, Any]) -> None:
        super().__init__(item.get("message", ""))
        self.item = item

    @property
    def code(self) -> str:
        """The error code, e.g. ``invalidCustomWidth``."""
        return str(self.item["code"])

    @property
    def status(self) -> int:
        """The HTTP status this error alone would be answered with over REST."""
        return status_for_code(self.code)

    def for_task(self, task_type: str | None, task_uuid: str | None) -> TaskError:
        """The same error, stamped with the task it belongs to (without overriding fields already set)."""
        item = dict(self.item)
        if task_type is not None:
            item.setdefault("taskType", task_type)
        if task_uuid is not None:
            item.setdefault("taskUUID", task_uuid)
        return TaskError(item)


def errors_response(errors: list[dict[str, Any]], status: int | None = None,
                    data: list[dict[str, Any]] | None = None) -> web.Response:
    """A REST answer holding ``errors`` (and ``data`` when some tasks succeeded)."""
    body: dict[str, Any] = {}
    if data:
        body["data"] = data
    body["errors"] = errors
    if status is None:
        status = status_for_code(str(errors[0]["code"])) if errors else 200
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


# What Runware says for each injectable HTTP status (runware.md §2.4, §6). Messages other than the
# invalid-key text are [UNVERIFIED]; the codes come from the official SDKs' error tables.
_FAULT_ERRORS: dict[int, tuple[str, str]] = {
    401: ("invalidApiKey", INVALID_API_KEY_MESSAGE),
    402: ("insufficientCredits", "Insufficient credits. Top up your balance at https://my.runware.ai/wallet"),
    408: ("timeoutProvider", "The request timed out before the provider answered."),
    409: ("conflictTaskUUID", "A task with this taskUUID is already being processed."),
    429: ("rateLimitExceeded", "Too many requests: the queue capacity is exceeded. Retry later."),
    500: ("internalServerError", "Internal server error."),
    502: ("serviceUnavailable", "Bad gateway: the upstream service did not answer."),
    503: ("serviceUnavailable", "Service temporarily unavailable. Retry later."),
    504: ("timeoutProvider", "The provider timed out."),
}


def fault_error_response(status: int, fault: Fault) -> web.Response:
    """Runware's own error answer for an injected HTTP status (the ``error_response`` of fault_middleware)."""
    code, message = _FAULT_ERRORS.get(status, ("internalServerError", "Internal server error."))
    extra: dict[str, Any] = {}
    if code == "invalidApiKey":
        # The auth failure names the apiKey parameter and the authentication task (runware.md §2.3).
        extra = {"parameter": "apiKey", "value_type": "string", "task_type": "authentication"}
    item = error_item(code, fault.message or message, **extra)
    return errors_response([item], status=status)
