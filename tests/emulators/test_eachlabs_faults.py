"""Fault injection on the Eachlabs emulator: job faults (fail, stuck, partial) and HTTP faults (status,
drop, malformed), each answered in Eachlabs' own shapes (eachlabs.md §2.3, §2.6, §2.7)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, Fault
from photomaker_bridge.emulators.eachlabs import EMULATOR_KEY, create_app

API_KEY = "fault-key"
HEADERS = {"X-API-Key": API_KEY}
FACE_URL = "https://example.com/face.jpg"
CREATE_BODY = {"model": "photomaker", "version": "0.0.1", "input": {"input_image": FACE_URL, "num_outputs": 3}}


class Harness:
    """An emulator on a TestServer plus a client session, with create/poll helpers."""

    def __init__(self, state: EmulatorState, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.state = state
        self.server = server
        self.session = session

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on the emulator."""
        return str(self.server.make_url(path))

    async def create(self, input_values: dict[str, Any] | None = None) -> str:
        """Create a photomaker prediction; its id."""
        body = CREATE_BODY if input_values is None else {"model": "photomaker",
                                                         "input": {"input_image": FACE_URL, **input_values}}
        async with self.session.post(self.url("/v1/prediction/"), json=body, headers=HEADERS) as response:
            assert response.status == 200, await response.text()
            return str((await response.json())["predictionID"])

    async def get(self, prediction_id: str) -> dict[str, Any]:
        """One poll."""
        async with self.session.get(self.url(f"/v1/prediction/{prediction_id}"), headers=HEADERS) as response:
            body: dict[str, Any] = await response.json()
            return body

    async def finished(self, prediction_id: str) -> dict[str, Any]:
        """Poll until the prediction is terminal; the last body."""
        for _ in range(500):
            body = await self.get(prediction_id)
            if body["status"] in ("success", "error", "cancelled"):
                return body
            await asyncio.sleep(0.01)
        raise AssertionError("prediction did not finish")


def fresh_session() -> aiohttp.ClientSession:
    """A session that opens a new connection per request."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True),
                                 timeout=aiohttp.ClientTimeout(total=5))


@pytest.fixture
async def emulator() -> AsyncIterator[Harness]:
    """A fresh emulator on loopback, with external URLs counting as reachable."""
    state = EmulatorState("eachlabs", EmulatorSettings(api_key=API_KEY, seed=1, external_urls_reachable=True))
    server = TestServer(create_app(state), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield Harness(state, server, session)
    finally:
        await server.close()


# --------------------------------------------------------------------------------------------- job faults

@pytest.mark.parametrize(("message", "expected"), [("CUDA out of memory", "CUDA out of memory"),
                                                   (None, "exec_error")])
async def test_fail_job_fails_after_starting(emulator: Harness, message: str | None, expected: str) -> None:
    emulator.state.settings.faults = [Fault("fail_job", message=message)]
    emulator.state.settings.run_time = 0.2
    prediction_id = await emulator.create()
    assert (await emulator.get(prediction_id))["status"] == "processing"

    result = await emulator.finished(prediction_id)

    assert result["status"] == "error"
    assert result["output"]["error_code"] == "PROVIDER_FAILED"
    assert result["output"]["error_message"] == expected
    assert result["metrics"] == {"predict_time": 0.2, "cost": 0}
    assert emulator.state.counters["fault:fail_job"] == 1


async def test_fail_job_keeps_a_genuine_model_error(emulator: Harness) -> None:
    emulator.state.settings.faults = [Fault("fail_job", message="injected")]
    result = await emulator.finished(await emulator.create({"prompt": "no trigger"}))
    assert result["output"]["error_message"] == "Cannot find the trigger word 'img' in text prompt!"


async def test_stuck_job_stays_processing_until_cancelled(emulator: Harness) -> None:
    emulator.state.settings.faults = [Fault("stuck_job", nth=1)]
    stuck = await emulator.create()
    normal = await emulator.create()
    await asyncio.sleep(0.2)  # four run times
    assert (await emulator.get(stuck))["status"] == "processing"
    assert (await emulator.get(normal))["status"] == "success"
    async with emulator.session.post(emulator.url(f"/v1/prediction/{stuck}/cancel"), headers=HEADERS) as response:
        assert response.status == 200
    assert (await emulator.get(stuck))["status"] == "cancelled"


@pytest.mark.parametrize(("images", "expected"), [(None, 2), (1, 1), (0, 0), (9, 3)])
async def test_partial_delivers_fewer_images(emulator: Harness, images: int | None, expected: int) -> None:
    emulator.state.settings.faults = [Fault("partial", images=images)]
    result = await emulator.finished(await emulator.create())
    assert result["status"] == "success"
    assert len(result["output"]) == expected
    # Only the delivered images are served.
    async with emulator.session.get(result["output"][0] if expected else emulator.url("/")) as response:
        assert response.status == (200 if expected else 404)
    missing = emulator.url(f"/uploads/{result['id']}/image_{expected}.png")
    async with emulator.session.get(missing) as response:
        assert response.status == 404


async def test_job_fault_route_and_times_are_honoured(emulator: Harness) -> None:
    emulator.state.settings.faults = [Fault("fail_job", route=r"^/v1/prediction/?$", times=1)]
    first = await emulator.finished(await emulator.create())
    second = await emulator.finished(await emulator.create())
    assert (first["status"], second["status"]) == ("error", "success")


# -------------------------------------------------------------------------------------------- HTTP faults

EXPECTED_BODIES: dict[int, dict[str, Any]] = {
    401: {"error": "Invalid or missing API key"},
    402: {"status": 402, "error": "payment required",
          "details": "the estimated cost of your in-flight executions exceeds your current balance ($1.00). "
                     "please wait for an active execution to finish or top up your balance"},
    408: {"error": "request timeout"},
    409: {"error": "conflict"},
    429: {"status": 429, "error": "too many requests",
          "details": "Account rate limited: accounts with a balance of $10.00 or less are limited to 10 "
                     "concurrent executions. Keep your balance above $10.00 for higher concurrency, or wait for "
                     "an active execution to finish."},
    500: {"error": "Failed to create prediction"},
    502: {"error": "bad gateway"},
    503: {"error": "service unavailable"},
    504: {"error": "gateway timeout"},
}


@pytest.mark.parametrize("status", sorted(EXPECTED_BODIES))
async def test_status_fault_on_create_answers_eachlabs_body_and_creates_nothing(emulator: Harness,
                                                                               status: int) -> None:
    emulator.state.settings.faults = [Fault("status", status=status, retry_after=3, route="/v1/prediction",
                                            method="POST", times=1)]
    async with emulator.session.post(emulator.url("/v1/prediction/"), json=CREATE_BODY,
                                     headers={**HEADERS, "X-Request-Id": "abc"}) as response:
        assert response.status == status
        assert response.headers["Retry-After"] == "3"
        assert response.headers["X-Request-Id"] == "abc"
        assert await response.json() == EXPECTED_BODIES[status]
    assert emulator.state.counters["predictions_created"] == 0
    assert emulator.server.app[EMULATOR_KEY].predictions == {}
    await emulator.create()  # the fault fired once only


@pytest.mark.parametrize(("method", "path", "expected"), [
    ("GET", "/v1/prediction/{id}", "Internal server error"),
    ("POST", "/v1/prediction/{id}/cancel", "Internal server error"),
    ("POST", "/v1/upload/presign", "Failed to generate presigned URL"),
    ("POST", "/v1/prediction", "Failed to create prediction"),
])
async def test_injected_500_uses_each_routes_own_text(emulator: Harness, method: str, path: str,
                                                      expected: str) -> None:
    prediction_id = await emulator.create()
    emulator.state.settings.faults = [Fault("status", status=500)]
    async with emulator.session.request(method, emulator.url(path.format(id=prediction_id)), headers=HEADERS,
                                        json={"content_type": "image/png", **CREATE_BODY}) as response:
        assert response.status == 500
        assert await response.json() == {"error": expected}
        assert "Retry-After" not in response.headers


async def test_status_fault_message_replaces_the_text(emulator: Harness) -> None:
    # nth counts each rule's own matches; the first rule takes request 1, so the second sees request 2 first.
    emulator.state.settings.faults = [Fault("status", status=503, message="upstream overloaded", nth=1),
                                      Fault("status", status=429, message="slow down", nth=1)]
    bodies = []
    for _ in range(2):
        async with emulator.session.post(emulator.url("/v1/prediction"), json=CREATE_BODY,
                                         headers=HEADERS) as response:
            bodies.append(await response.json())
    assert bodies == [{"error": "upstream overloaded"},
                      {"status": 429, "error": "too many requests", "details": "slow down"}]


async def test_drop_fault_closes_the_connection_without_an_answer(emulator: Harness) -> None:
    prediction_id = await emulator.create()
    emulator.state.settings.faults = [Fault("drop", method="GET", times=1)]
    # A raw socket: aiohttp's client silently retries an idempotent request the server dropped, which
    # would hide the fault.
    host, port = emulator.server.host, emulator.server.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET /v1/prediction/{prediction_id} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                 f"X-API-Key: {API_KEY}\r\n\r\n".encode())
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=5)
    except ConnectionResetError:
        answer = b""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    assert answer == b""  # not a single byte of an HTTP answer
    assert emulator.state.counters["fault:drop"] == 1
    assert (await emulator.finished(prediction_id))["status"] == "success"


async def test_drop_fault_on_create_creates_nothing(emulator: Harness) -> None:
    emulator.state.settings.faults = [Fault("drop", method="POST", times=1)]
    with pytest.raises(aiohttp.ClientConnectionError):
        async with fresh_session() as session, session.post(
                emulator.url("/v1/prediction/"), json=CREATE_BODY, headers=HEADERS) as response:
            await response.read()
    assert emulator.server.app[EMULATOR_KEY].predictions == {}


async def test_malformed_fault_answers_200_with_broken_json(emulator: Harness) -> None:
    prediction_id = await emulator.create()
    emulator.state.settings.faults = [Fault("malformed", route=r"/v1/prediction/[^/]+$", times=1)]
    async with emulator.session.get(emulator.url(f"/v1/prediction/{prediction_id}"), headers=HEADERS) as response:
        assert response.status == 200
        text = await response.text()
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    assert (await emulator.finished(prediction_id))["status"] == "success"


async def test_served_files_are_never_faulted(emulator: Harness) -> None:
    result = await emulator.finished(await emulator.create())
    emulator.state.settings.faults = [Fault("status", status=503), Fault("drop")]
    async with emulator.session.get(result["output"][0]) as response:
        assert response.status == 200
        assert (await response.read()).startswith(b"\x89PNG")


async def test_counters_record_polls_and_creates(emulator: Harness) -> None:
    prediction_id = await emulator.create()
    await emulator.finished(prediction_id)
    counters = emulator.state.counters
    assert counters["predictions_created"] == 1
    assert counters["polls"] >= 1
    assert counters["route:POST /v1/prediction/"] == 1


async def test_state_reset_replays_the_generator_without_reusing_ids(emulator: Harness) -> None:
    emulator.state.settings.queue_time = 30.0
    before = await emulator.create()
    emulator.state.reset()
    after = await emulator.create()
    assert after != before
    assert (await emulator.get(before))["status"] == "created"
    assert (await emulator.get(after))["id"] == after


async def test_request_id_is_on_api_answers_only(emulator: Harness) -> None:
    async with emulator.session.get(emulator.url("/v1/no-such-route"), headers=HEADERS) as response:
        assert response.status == 404
        assert response.headers["X-Request-Id"]
    result = await emulator.finished(await emulator.create())
    async with emulator.session.get(result["output"][0]) as response:
        assert response.status == 200
        assert "X-Request-Id" not in response.headers
