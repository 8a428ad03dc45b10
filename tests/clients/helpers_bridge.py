"""Shared helpers of the end-to-end tests of ``Bridge`` and ``AsyncBridge`` against the emulators.

The tests in this directory go through the public clients only, over real HTTP on loopback. Each test body is
written once and runs with both clients: :class:`Client` puts ``Bridge`` (sync) and ``AsyncBridge`` behind
one awaitable interface, so a test is an ``async def`` that awaits ``client.generate(...)`` whichever client
is underneath (a sync call simply blocks the test's event loop, which is harmless: the emulators run on
their own thread).

Emulator jobs run for a few hundredths of a second and the adapters poll at a matching pace
(:func:`adapters`), so the whole directory runs in seconds. Test modules import the fixtures they need from
here (``emulators``, ``emu``, ``mode``, ``provider``, ``client``).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import attrs
import pytest
import pytest_asyncio

from photomaker_bridge import AsyncBridge, Bridge, PhotoMakerRequest, ProgressEvent, RetryPolicy
from photomaker_bridge.emulators import EmulatorHandle, Emulators, EmulatorSettings, LoggedRequest, start_emulators
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers.base import Provider
from photomaker_bridge.providers.eachlabs import EachlabsProvider
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.providers.runware import RunwareProvider

__all__ = [
    "FACE",
    "FAST_RETRY",
    "JOB_COUNTER",
    "MODES",
    "OTHER_FACE",
    "PROVIDERS",
    "RUN_TIME",
    "SUBMIT_FAULT_TARGET",
    "THIRD_FACE",
    "Client",
    "adapters",
    "cancelled_ids",
    "client",
    "emu",
    "emulator_settings",
    "emulators",
    "event_kinds",
    "job_ids",
    "mode",
    "open_client",
    "photo_request",
    "provider",
    "submitted_payloads",
    "upload_requests",
]

RUN_TIME = 0.05
"""Seconds an emulator job runs (the emulators' default too): long enough to be polled, short enough to be fast."""

POLICY = attrs.evolve(EachlabsProvider().polling, first_check=0.02, min_interval=0.02, max_interval=0.1,
                      request_timeout=5.0)
"""Eachlabs' polling schedule scaled down to the emulator's job times (its defaults suit the real service)."""

FACE = render_image(seed=1, style="face", width=64, height=64)
OTHER_FACE = render_image(seed=2, style="face", width=64, height=48)
THIRD_FACE = render_image(seed=3, style="face", width=48, height=64)

PROVIDERS: tuple[str, ...] = ("runware", "fal", "eachlabs")
MODES: tuple[str, ...] = ("sync", "async")

SUBMIT_FAULT_TARGET: dict[str, dict[str, Any]] = {
    # Runware's uploads, tasks and polls share POST /v1: the body tells the photoMaker task array apart.
    "runware": {"route": r"^/v1$", "method": "POST", "body": '"taskType":"(photoMaker|imageInference)"'},
    # fal's submit: POST /fal-ai/photomaker (status, result and cancel live under .../requests/<id>).
    "fal": {"route": r"^/fal-ai/photomaker$", "method": "POST"},
    "eachlabs": {"route": r"^/v1/prediction/$", "method": "POST"},
}
"""Fault rule fields that aim an HTTP fault at the request that submits the job (not the uploads)."""

FAST_RETRY = RetryPolicy(base_delay=0.02, max_delay=0.1)
"""The default number of tries, with waits scaled down to the emulators' pace (the default suits real services)."""

_JOB_TASKS = ("photoMaker", "imageInference")
"""Runware's task types that create a PhotoMaker job (standalone, or imageInference with photoMaker settings)."""

JOB_COUNTER: dict[str, str] = {"runware": "jobs_created", "fal": "submits", "eachlabs": "predictions_created"}
"""The emulator counter of jobs it accepted."""


def emulator_settings(**settings: Any) -> EmulatorSettings:
    """Settings for one emulator: short jobs, no queue, unless told otherwise."""
    values: dict[str, Any] = {"run_time": RUN_TIME, "queue_time": 0.0}
    values.update(settings)
    return EmulatorSettings(**values)


def adapters(emulators: Emulators, **keys: str) -> list[Provider]:
    """The three adapters pointed at ``emulators``, polling at the emulators' pace.

    ``keys`` (``runware=``, ``fal=``, ``eachlabs=``) replace the emulator keys the adapters send.
    """
    return [
        RunwareProvider(api_key=keys.get("runware", emulators.runware.api_key), base_url=emulators.runware.rest_url,
                        poll_interval=0.02, max_poll_interval=0.05),
        FalProvider(key=keys.get("fal", emulators.fal.api_key), base_url=emulators.fal.url, poll_interval=0.02),
        EachlabsProvider(api_key=keys.get("eachlabs", emulators.eachlabs.api_key), base_url=emulators.eachlabs.url,
                         polling=POLICY, expected_seconds=RUN_TIME),
    ]


def photo_request(**fields: Any) -> PhotoMakerRequest:
    """A small valid request: one face, two images, a fixed seed (Runware images kept small)."""
    values: dict[str, Any] = {"prompt": "a photo of a man img in a spacesuit", "images": [FACE], "num_images": 2,
                              "seed": 42}
    values.update(fields)
    return PhotoMakerRequest(**values)


class Client:
    """``Bridge`` or ``AsyncBridge`` behind one awaitable interface: every method is awaited by the test.

    In sync mode the call must return a plain value (never an awaitable): that is checked on every call.
    """

    def __init__(self, mode: str, bridge: Bridge | AsyncBridge) -> None:
        self.mode = mode
        self.bridge = bridge

    async def _call(self, method: str, *arguments: Any, **options: Any) -> Any:
        outcome = getattr(self.bridge, method)(*arguments, **options)
        if self.mode == "async":
            assert inspect.isawaitable(outcome), f"AsyncBridge.{method} must be awaitable"
            return await outcome
        assert not inspect.isawaitable(outcome), f"Bridge.{method} must not return an awaitable"
        return outcome

    async def generate(self, request: PhotoMakerRequest, provider: Any, **options: Any) -> Any:
        return await self._call("generate", request, provider, **options)

    async def submit(self, request: PhotoMakerRequest, provider: Any, **options: Any) -> Any:
        return await self._call("submit", request, provider, **options)

    async def result(self, handle: Any, **options: Any) -> Any:
        return await self._call("result", handle, **options)

    async def resume(self, provider: str, request_id: str, **options: Any) -> Any:
        return await self._call("resume", provider, request_id, **options)

    async def generate_many(self, requests: Sequence[PhotoMakerRequest], provider: Any = "runware",
                            **options: Any) -> Any:
        return await self._call("generate_many", requests, provider, **options)

    async def download(self, result: Any, **options: Any) -> Any:
        return await self._call("download", result, **options)

    async def cancel(self, handle: Any, **options: Any) -> Any:
        return await self._call("cancel", handle, **options)


@contextlib.asynccontextmanager
async def open_client(mode: str, providers: Sequence[Provider], retry: RetryPolicy = FAST_RETRY,
                      **options: Any) -> AsyncIterator[Client]:
    """A :class:`Client` over a fresh ``Bridge`` (``with``) or ``AsyncBridge`` (``async with``); ``options`` go to
    the client (``budget=``, ``breaker=``, ``router_state=``)."""
    if mode == "sync":
        with Bridge(providers=providers, retry=retry, **options) as bridge:
            yield Client(mode, bridge)
    else:
        async with AsyncBridge(providers=providers, retry=retry, **options) as async_bridge:
            yield Client(mode, async_bridge)


# --- fixtures (imported by the test modules) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    """One set of emulators per test module (fal's base URL is process-wide: one module's clients at a time)."""
    with start_emulators(runware=emulator_settings(), fal=emulator_settings(), eachlabs=emulator_settings(),
                         seed=7) as running:
        yield running


@pytest.fixture
def emu(emulators: Emulators) -> Emulators:
    """The emulators back at their starting settings, with empty logs and counters."""
    emulators.reset()
    return emulators


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """``sync`` (Bridge) or ``async`` (AsyncBridge)."""
    value: str = request.param
    return value


@pytest.fixture(params=PROVIDERS)
def provider(request: pytest.FixtureRequest) -> str:
    """``runware``, ``fal`` or ``eachlabs``."""
    value: str = request.param
    return value


@pytest_asyncio.fixture
async def client(mode: str, emu: Emulators) -> AsyncIterator[Client]:
    """A fresh client of the given mode (empty upload cache) with the three adapters pointed at the emulators."""
    async with open_client(mode, adapters(emu)) as opened:
        yield opened


# --- reading the emulators' logs ----------------------------------------------------------------------------


def _tasks(entry: LoggedRequest) -> list[dict[str, Any]]:
    try:
        body = json.loads(entry.body)
    except ValueError:
        return []
    return [task for task in body if isinstance(task, dict)] if isinstance(body, list) else []


def submitted_payloads(handle: EmulatorHandle) -> list[Any]:
    """What each job-submitting request carried, in order: Runware's photoMaker task arrays, fal's arguments,
    Eachlabs' create bodies."""
    if handle.name == "runware":
        return [tasks for entry in handle.log if entry.method == "POST" and entry.path == "/v1"
                if (tasks := [task for task in _tasks(entry) if task.get("taskType") in _JOB_TASKS])]
    route = re.compile(SUBMIT_FAULT_TARGET[handle.name]["route"])
    return [entry.json() for entry in handle.log if entry.method == "POST" and route.search(entry.path)]


def upload_requests(handle: EmulatorHandle) -> list[LoggedRequest]:
    """The requests that uploaded reference photos (or prepared an upload)."""
    if handle.name == "runware":
        return [entry for entry in handle.log if entry.method == "POST" and entry.path == "/v1"
                and any(task.get("taskType") == "imageUpload" for task in _tasks(entry))]
    pattern = re.compile(r"^/(storage/|files/upload)" if handle.name == "fal" else r"^/(v1/upload/|storage/)")
    return [entry for entry in handle.log if pattern.search(entry.path)]


def job_ids(handle: EmulatorHandle) -> list[str]:
    """The ids of the jobs the client sent or asked about, in first-seen order: Runware taskUUIDs of photoMaker
    tasks (and getResponse polls), fal request ids and Eachlabs predictionIDs from the polled paths."""
    ids: list[str] = []
    if handle.name == "runware":
        for entry in handle.log:
            if entry.method == "POST" and entry.path == "/v1":
                ids += [str(task["taskUUID"]) for task in _tasks(entry)
                        if task.get("taskType") in (*_JOB_TASKS, "getResponse")]
    else:
        pattern = re.compile(r"/requests/([^/]+)" if handle.name == "fal" else r"^/v1/prediction/([^/]+)")
        ids = [match.group(1) for entry in handle.log if (match := pattern.search(entry.path))]
    return list(dict.fromkeys(ids))


def cancelled_ids(handle: EmulatorHandle) -> list[str]:
    """The job ids the client cancelled (fal: ``PUT .../cancel``, Eachlabs: ``POST .../cancel``)."""
    pattern = re.compile(r"/requests/([^/]+)/cancel" if handle.name == "fal" else r"^/v1/prediction/([^/]+)/cancel")
    return [match.group(1) for entry in handle.log if (match := pattern.search(entry.path))]


def event_kinds(events: Sequence[ProgressEvent]) -> list[str]:
    """The kinds of ``events``, in order."""
    return [event.kind for event in events]
