"""The Eachlabs emulator's admission limits and its synchronous route (eachlabs.md §2.3, §2.9, §6.4).

The per-minute limit and the concurrency cap each answer 429 with ``Retry-After`` and create nothing;
``counters["peak_in_flight"]`` records the most predictions ever unfinished at once; ``POST
/v1/prediction/run`` creates, waits and answers the outcome in one call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, Fault
from photomaker_bridge.emulators.eachlabs import EMULATOR_KEY, EachlabsOptions, create_app

API_KEY = "limits-key"
HEADERS = {"Authorization": f"Bearer {API_KEY}"}
FACE_URL = "https://example.com/face.jpg"
BODY = {"model": "photomaker", "version": "0.0.1", "input": {"input_image": FACE_URL, "num_outputs": 2}}


class Client:
    """A session against one emulator on a TestServer."""

    def __init__(self, state: EmulatorState, server: TestServer, session: aiohttp.ClientSession) -> None:
        self.state = state
        self.server = server
        self.session = session

    @property
    def options(self) -> EachlabsOptions:
        """The running emulator's options."""
        return self.server.app[EMULATOR_KEY].options

    async def post(self, path: str, body: object = BODY,
                   headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """POST JSON; status, headers and parsed body."""
        async with self.session.post(self.server.make_url(path), json=body,
                                     headers=HEADERS if headers is None else headers) as response:
            return response.status, dict(response.headers), await response.json()

    async def get(self, prediction_id: str) -> dict[str, Any]:
        """One poll."""
        async with self.session.get(self.server.make_url(f"/v1/prediction/{prediction_id}"),
                                    headers=HEADERS) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """Fast jobs, external URLs reachable, Bearer auth."""
    state = EmulatorState("eachlabs", EmulatorSettings(api_key=API_KEY, seed=4, external_urls_reachable=True,
                                                       run_time=0.02))
    server = TestServer(create_app(state), host="127.0.0.1")
    await server.start_server()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Client(state, server, session)
    await server.close()


# ------------------------------------------------------------------------------------------- per minute

async def test_no_per_minute_limit_by_default_as_in_the_current_contract() -> None:
    assert EmulatorSettings().per_minute is None  # Eachlabs' current contract has no per-minute limit


async def test_creates_beyond_the_per_minute_limit_are_refused_with_retry_after(client: Client) -> None:
    client.state.settings.per_minute = 3
    for _ in range(3):
        status, _, _ = await client.post("/v1/prediction/")
        assert status == 200

    status, headers, body = await client.post("/v1/prediction/")

    assert status == 429
    wait = int(headers["Retry-After"])
    assert 1 <= wait <= 60
    assert body == {"error": f"Rate limit exceeded. Please retry after {wait} seconds."}
    assert client.state.counters["predictions_created"] == 3
    assert client.state.counters["predictions_rate_limited_per_minute"] == 1


async def test_polls_do_not_count_toward_the_per_minute_limit(client: Client) -> None:
    client.state.settings.per_minute = 1
    _, _, created = await client.post("/v1/prediction/")
    for _ in range(5):
        await client.get(created["predictionID"])
    status, _, _ = await client.post("/v1/prediction/")
    assert status == 429


async def test_the_per_minute_limit_can_be_turned_off(client: Client) -> None:
    client.state.settings.per_minute = None
    client.state.settings.max_in_flight = 1000
    statuses = [(await client.post("/v1/prediction/"))[0] for _ in range(70)]
    assert set(statuses) == {200}


async def test_the_window_slides(client: Client) -> None:
    client.state.settings.per_minute = 1
    assert (await client.post("/v1/prediction/"))[0] == 200
    assert (await client.post("/v1/prediction/"))[0] == 429
    window = client.server.app[EMULATOR_KEY].window
    window.created[API_KEY][0] -= 61.0  # the first create is now more than a minute old
    assert (await client.post("/v1/prediction/"))[0] == 200


# ------------------------------------------------------------------------------------------ concurrency

async def test_the_concurrency_429_carries_retry_after_until_a_slot_frees(client: Client) -> None:
    settings = client.state.settings
    settings.max_in_flight = 2
    settings.queue_time = 30.0
    for _ in range(2):
        assert (await client.post("/v1/prediction/"))[0] == 200

    status, headers, body = await client.post("/v1/prediction/")

    assert status == 429 and body["error"] == "too many requests"
    # The first prediction ends after its 30 s queue time plus its run time.
    assert 29 <= int(headers["Retry-After"]) <= 31


async def test_stuck_predictions_give_the_configured_retry_after(client: Client) -> None:
    settings = client.state.settings
    settings.max_in_flight = 1
    settings.faults = [Fault("stuck_job")]
    client.options.concurrency_retry_after = 7.0
    assert (await client.post("/v1/prediction/"))[0] == 200
    status, headers, _ = await client.post("/v1/prediction/")
    assert (status, headers["Retry-After"]) == (429, "7")


async def test_peak_in_flight_records_the_most_unfinished_at_once(client: Client) -> None:
    settings = client.state.settings
    settings.queue_time = 30.0
    ids = [(await client.post("/v1/prediction/"))[2]["predictionID"] for _ in range(4)]
    for prediction_id in ids[:3]:
        async with client.session.post(client.server.make_url(f"/v1/prediction/{prediction_id}/cancel"),
                                       headers=HEADERS) as response:
            assert response.status == 200
    await client.post("/v1/prediction/")
    assert client.state.counters["peak_in_flight"] == 4
    for _ in range(7):
        await client.post("/v1/prediction/")
    assert client.state.counters["peak_in_flight"] == 9
    assert (await client.post("/v1/prediction/"))[0] == 200
    assert (await client.post("/v1/prediction/"))[0] == 429  # an 11th would pass the cap of 10
    assert client.state.counters["peak_in_flight"] == 10


# --------------------------------------------------------------------------------------------------- run

async def test_run_waits_and_answers_the_outputs(client: Client) -> None:
    status, _, body = await client.post("/v1/prediction/run")

    assert status == 200
    assert list(body) == ["status", "message", "predictionID", "output", "error"]
    assert body["status"] == "success" and body["error"] == ""
    assert len(body["output"]) == 2
    polled = await client.get(body["predictionID"])
    assert polled["status"] == "success" and polled["output"] == body["output"]
    async with client.session.get(body["output"][0]) as image:
        assert image.status == 200 and (await image.read()).startswith(b"\x89PNG")
    assert client.state.counters["runs"] == 1


async def test_run_reports_a_failed_prediction(client: Client) -> None:
    status, _, body = await client.post("/v1/prediction/run", body={
        "model": "photomaker", "input": {"input_image": FACE_URL, "prompt": "a portrait without a trigger"}})
    assert status == 200
    assert body["status"] == "failed" and body["output"] is None
    assert "Cannot find the trigger word 'img'" in body["error"]


async def test_run_refuses_a_model_without_synchronous_execution(client: Client) -> None:
    client.options.synchronous_models = frozenset()
    status, _, body = await client.post("/v1/prediction/run")
    assert status == 400 and "synchronous execution" in body["error"]
    assert client.state.counters["predictions_created"] == 0


async def test_run_checks_key_body_and_limits_like_create(client: Client) -> None:
    assert (await client.post("/v1/prediction/run", headers={"Authorization": "Bearer wrong"}))[0] == 401
    async with client.session.post(client.server.make_url("/v1/prediction/run"), data=b"[1, 2",
                                   headers=HEADERS) as response:
        assert (response.status, await response.json()) == (422, {"error": "invalid request body"})
    client.state.settings.per_minute = 1
    assert (await client.post("/v1/prediction/run"))[0] == 200
    assert (await client.post("/v1/prediction/"))[0] == 429


async def test_run_of_a_stuck_prediction_ends_when_the_client_leaves(client: Client) -> None:
    client.state.settings.faults = [Fault("stuck_job", times=1)]
    with pytest.raises(asyncio.TimeoutError):
        async with client.session.post(client.server.make_url("/v1/prediction/run"), json=BODY, headers=HEADERS,
                                       timeout=aiohttp.ClientTimeout(total=0.3)):
            pass
    assert client.state.counters["predictions_created"] == 1
