"""start_emulators(): both context-manager forms, loopback only, handles, reset, clean shutdown, HTTP faults."""

from __future__ import annotations

import asyncio
import base64
import io
import itertools
import json
import logging
import random
import re
import socket
import textwrap
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests
from PIL import Image

from photomaker_bridge.emulators import (
    EmulatorHandle,
    Emulators,
    EmulatorSettings,
    Fault,
    LoggedRequest,
    RunwareEmulatorHandle,
    _runner,
    start_emulators,
)

THREAD_NAME = "photomaker-bridge-emulators"


def auth_request(handle: EmulatorHandle, key: str) -> dict[str, Any]:
    """Keyword arguments for ``requests.request`` sending ``key`` the way ``handle``'s provider expects it, on
    the route where that provider creates jobs."""
    if handle.name == "runware":
        return {"method": "POST", "url": f"{handle.url}/v1", "headers": {"Authorization": f"Bearer {key}"},
                "json": [{"taskType": "ping", "ping": True}]}
    if handle.name == "fal":
        return {"method": "POST", "url": f"{handle.url}/fal-ai/photomaker",
                "headers": {"Authorization": f"Key {key}"}, "json": {}}
    return {"method": "POST", "url": f"{handle.url}/v1/prediction/", "headers": {"X-API-Key": key},
            "json": {"model": "photomaker-style"}}


def send(handle: EmulatorHandle, key: str = "wrong-key") -> requests.Response:
    return requests.request(**auth_request(handle, key), timeout=5)


def address(handle: EmulatorHandle) -> tuple[str, int]:
    parts = urlsplit(handle.url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def assert_refused(addresses: list[tuple[str, int]]) -> None:
    for host, port in addresses:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=2).close()


def emulator_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == THREAD_NAME]


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators(seed=11) as running:
        yield running


@pytest.fixture(autouse=True)
def _fresh(request: pytest.FixtureRequest) -> None:
    if "emulators" in request.fixturenames:
        request.getfixturevalue("emulators").reset()


# --- shape of what start_emulators yields ----------------------------------------------------------------


def test_handles_name_url_and_runware_endpoints(emulators: Emulators) -> None:
    assert [handle.name for handle in emulators] == ["runware", "fal", "eachlabs"]
    assert isinstance(emulators.runware, RunwareEmulatorHandle)
    ports = set()
    for handle in emulators:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", handle.url), handle.url
        ports.add(address(handle)[1])
        assert emulators[handle.name] is handle
        assert handle.settings is handle.state.settings
        assert handle.api_key == handle.settings.api_key
        assert handle.log is handle.state.log and handle.counters is handle.state.counters
    assert len(ports) == 3
    port = address(emulators.runware)[1]
    assert emulators.runware.ws_url == f"ws://127.0.0.1:{port}/v1"
    assert emulators.runware.rest_url == f"http://127.0.0.1:{port}/v1"
    with pytest.raises(KeyError, match="runware, fal, eachlabs"):
        emulators["replicate"]


def test_each_emulator_accepts_its_key_and_refuses_another(emulators: Emulators) -> None:
    for handle in emulators:
        assert send(handle, "wrong-key").status_code == 401, handle.name
        assert send(handle, handle.api_key).status_code != 401, handle.name
    keys = {handle.api_key for handle in emulators}
    assert len(keys) == 3 and all(key.startswith("emulator-") for key in keys)


def test_api_key_never_in_a_repr(emulators: Emulators) -> None:
    for handle in emulators:
        send(handle, handle.api_key)
        for text in (repr(emulators), repr(handle), repr(handle.settings), repr(handle.state), str(handle)):
            assert handle.api_key not in text
    assert repr(emulators.fal) == f"EmulatorHandle(name='fal', url='{emulators.fal.url}')"


def test_request_log_and_counters(emulators: Emulators) -> None:
    eachlabs = emulators.eachlabs
    send(eachlabs, "key-one")
    send(eachlabs, "key-two")
    assert [entry.method for entry in eachlabs.log] == ["POST", "POST"]
    entry = eachlabs.log[0]
    assert isinstance(entry, LoggedRequest)
    assert entry.path == "/v1/prediction/" and entry.headers["X-API-Key"] == "key-one"
    assert entry.json() == {"model": "photomaker-style"}
    assert eachlabs.counters["requests"] == 2
    assert eachlabs.counters["route:POST /v1/prediction/"] == 2
    assert emulators.fal.counters["requests"] == 0


def test_given_settings_are_live_and_seed_applies_to_all() -> None:
    fal_settings = EmulatorSettings(api_key="emulator-chosen", seed=1)
    with start_emulators(fal=fal_settings, seed=99) as emulators:
        assert emulators.fal.settings is fal_settings
        assert emulators.fal.api_key == "emulator-chosen"
        assert [handle.settings.seed for handle in emulators] == [99, 99, 99]
        assert send(emulators.fal, "emulator-chosen").status_code != 401


def test_default_seed_is_zero_without_the_argument() -> None:
    with start_emulators() as emulators:
        assert [handle.settings.seed for handle in emulators] == [0, 0, 0]


# --- loopback only ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "localhost", "example.com", ""])
def test_refuses_a_host_that_is_not_loopback(host: str) -> None:
    before = threading.active_count()
    with pytest.raises(ValueError, match="loopback"):
        start_emulators(host=host)
    assert threading.active_count() == before


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback() -> None:
    with start_emulators(host="::1") as emulators:
        for handle in emulators:
            assert re.fullmatch(r"http://\[::1\]:\d+", handle.url)
            assert send(handle).status_code == 401
        assert emulators.runware.ws_url.startswith("ws://[::1]:")


# --- lifecycle -------------------------------------------------------------------------------------------


def test_sync_form_serves_on_its_own_thread_and_stops_cleanly() -> None:
    before, threads_before = threading.active_count(), emulator_threads()
    with start_emulators() as emulators:
        assert len(emulator_threads()) == len(threads_before) + 1
        assert threading.active_count() == before + 1
        session = requests.Session()  # a keep-alive connection stays open across the shutdown
        assert session.request(**auth_request(emulators.fal, "wrong"), timeout=5).status_code == 401
        addresses = [address(handle) for handle in emulators]
    session.close()
    assert threading.active_count() == before
    assert emulator_threads() == threads_before
    assert_refused(addresses)


def test_sync_form_inside_a_running_event_loop() -> None:
    async def main() -> list[int]:
        with start_emulators() as emulators:
            # A blocking call from the loop thread: fine, the emulators run elsewhere.
            return [send(handle).status_code for handle in emulators]

    assert asyncio.run(main()) == [401, 401, 401]


async def test_async_form_serves_the_callers_loop_without_blocking_it() -> None:
    loop = asyncio.get_running_loop()
    before = threading.active_count()
    async with start_emulators() as emulators:
        assert threading.active_count() == before + 1
        async with aiohttp.ClientSession() as session:
            for handle in emulators:
                arguments = auth_request(handle, "wrong")
                async with session.request(arguments["method"], arguments["url"], headers=arguments["headers"],
                                           json=arguments["json"]) as response:
                    assert response.status == 401
            # an open WebSocket must not hold up the shutdown
            websocket = await session.ws_connect(emulators.runware.ws_url)
            async with start_emulators():
                pass  # a second set can start and stop while the first one serves
            # a blocking client inside async code still gets its answer: the emulators have their own loop
            assert send(emulators.eachlabs).status_code == 401
            addresses = [address(handle) for handle in emulators]
            await websocket.close()
    assert asyncio.get_running_loop() is loop and not loop.is_closed()
    assert threading.active_count() == before
    assert_refused(addresses)


def test_a_context_is_entered_once() -> None:
    context = start_emulators()
    with context:
        pass
    with pytest.raises(RuntimeError, match="already used"), context:
        pass


def test_startup_failure_is_raised_and_nothing_is_left(monkeypatch: pytest.MonkeyPatch) -> None:
    factories = _runner._application_factories()

    def broken(state: Any) -> Any:
        raise RuntimeError("fal emulator could not be built")

    monkeypatch.setattr(_runner, "_application_factories", lambda: {**factories, "fal": broken})
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="could not be built"), start_emulators():
        pass
    assert threading.active_count() == before


async def test_async_startup_failure_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    factories = _runner._application_factories()

    def broken(state: Any) -> Any:
        raise RuntimeError("eachlabs emulator could not be built")

    monkeypatch.setattr(_runner, "_application_factories", lambda: {**factories, "eachlabs": broken})
    before = threading.active_count()
    with pytest.raises(RuntimeError, match="could not be built"):
        async with start_emulators():
            pass
    assert threading.active_count() == before


def face_data_uri() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 160, 130)).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


async def test_open_websocket_and_stuck_job_end_with_the_emulators(caplog: pytest.LogCaptureFixture) -> None:
    stuck = EmulatorSettings(faults=[Fault(kind="stuck_job")])
    before = threading.active_count()
    async with aiohttp.ClientSession() as session:
        async with start_emulators(runware=stuck) as emulators:
            runware = emulators.runware
            websocket = await session.ws_connect(runware.ws_url)
            await websocket.send_json([{"taskType": "authentication", "apiKey": runware.api_key}])
            assert "connectionSessionUUID" in (await websocket.receive_json(timeout=5))["data"][0]
            await websocket.send_json([{
                "taskType": "photoMaker", "taskUUID": str(uuid.uuid4()), "model": "civitai:139562@344487",
                "positivePrompt": "rwre, a man in a spacesuit", "inputImages": [face_data_uri()],
                "width": 512, "height": 512, "numberResults": 1,
            }])
            for _ in range(200):
                if runware.counters["jobs_created"]:
                    break
                await asyncio.sleep(0.01)
            assert runware.counters["jobs_created"] == 1
        # The emulators stopped with the socket open and the job unfinished: the socket is closed for us...
        message = await websocket.receive(timeout=5)
        assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        await websocket.close()
    # ...and nothing outlives them: no thread, no task destroyed while pending, no unretrieved exception.
    assert threading.active_count() == before
    problems = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert problems == []


# --- reset -----------------------------------------------------------------------------------------------


def test_reset_restores_the_starting_settings_and_clears_log_and_counters() -> None:
    initial = Fault(kind="status", status=500, route="^/never$")
    with start_emulators(eachlabs=EmulatorSettings(faults=[initial], seed=4)) as emulators:
        eachlabs = emulators.eachlabs
        eachlabs.settings.faults.append(Fault(kind="status", status=503))
        eachlabs.settings.latency = 0.5
        eachlabs.settings.seed = 8
        assert send(eachlabs).status_code == 503
        eachlabs.reset()
        assert eachlabs.settings.faults == [initial]
        assert (eachlabs.settings.latency, eachlabs.settings.seed) == (0.0, 4)
        assert eachlabs.log == [] and eachlabs.counters == {}
        assert send(eachlabs).status_code == 401
        eachlabs.settings.seed = 8
        eachlabs.state.random.random()
        eachlabs.reset()
        assert eachlabs.settings.seed == 4
        assert eachlabs.state.random.random() == random.Random(4).random()  # re-seeded with 4, not 8


def test_emulators_reset_resets_every_handle(emulators: Emulators) -> None:
    for handle in emulators:
        handle.settings.faults.append(Fault(kind="status", status=502))
        assert send(handle).status_code == 502
    emulators.reset()
    for handle in emulators:
        assert handle.settings.faults == [] and handle.log == []
        assert send(handle).status_code == 401


# --- HTTP faults through the running servers ---------------------------------------------------------------


def test_status_429_with_retry_after_on_the_second_request(emulators: Emulators) -> None:
    for handle in emulators:
        handle.settings.faults.append(Fault.parse("status:429,retry_after=2,nth=2"))
        statuses = []
        for _ in range(3):
            response = send(handle)
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["Retry-After"] == "2"
                response.json()  # the provider's own error shape: JSON
        assert statuses == [401, 429, 401], handle.name
        assert handle.counters["fault:status"] == 1


def test_status_fault_for_a_fraction_of_requests_is_repeatable(emulators: Emulators) -> None:
    fal = emulators.fal
    fal.settings.faults.append(Fault.parse("status:503,rate=0.1"))
    with requests.Session() as session:
        first = [session.request(**auth_request(fal, "wrong"), timeout=5).status_code for _ in range(60)]
        fal.reset()
        fal.settings.faults.append(Fault.parse("status:503,rate=0.1"))
        second = [session.request(**auth_request(fal, "wrong"), timeout=5).status_code for _ in range(60)]
    assert set(first) == {401, 503}
    assert 1 <= first.count(503) <= 15
    assert first == second
    assert fal.counters["fault:status"] == first.count(503)


def test_drop_closes_the_connection_without_an_answer(emulators: Emulators) -> None:
    runware = emulators.runware
    runware.settings.faults.append(Fault.parse("drop,nth=1"))
    with pytest.raises(requests.ConnectionError):
        send(runware)
    assert send(runware).status_code == 401
    assert runware.counters["fault:drop"] == 1


def test_malformed_answers_200_with_a_body_that_is_not_json(emulators: Emulators) -> None:
    eachlabs = emulators.eachlabs
    eachlabs.settings.faults.append(Fault(kind="malformed", times=1))
    response = send(eachlabs)
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    assert send(eachlabs).status_code == 401


def test_fault_filters_by_route_and_method(emulators: Emulators) -> None:
    eachlabs = emulators.eachlabs
    eachlabs.settings.faults.append(Fault(kind="status", status=500, route=r"^/v1/prediction/$", method="GET"))
    assert send(eachlabs).status_code == 401  # POST: not matched
    response = requests.get(f"{eachlabs.url}/v1/prediction/", headers={"X-API-Key": "wrong"}, timeout=5)
    assert response.status_code == 500


async def test_faults_reach_an_async_client(emulators: Emulators) -> None:
    runware = emulators.runware
    runware.settings.faults.append(Fault.parse("status:402,nth=1"))
    async with aiohttp.ClientSession() as session:
        arguments = auth_request(runware, runware.api_key)
        async with session.post(arguments["url"], headers=arguments["headers"], json=arguments["json"]) as response:
            assert response.status == 402
            body = await response.json()
    assert body["errors"][0]["code"]


def test_the_package_docstring_example_runs() -> None:
    import photomaker_bridge.emulators as package

    assert package.__doc__ is not None
    lines = package.__doc__.split("::\n", 1)[1].splitlines()
    block = itertools.takewhile(lambda line: not line or line.startswith("    "), lines)
    code = textwrap.dedent("\n".join(block))
    assert "start_emulators(" in code and "assert" in code
    exec(compile(code, "photomaker_bridge/emulators/__init__.py", "exec"), {})
