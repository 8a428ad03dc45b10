"""What the Runware emulator does with a task's delivery options (runware.md §4.3, §5.1, §2.1).

``uploadEndpoint`` PUTs each image to a loopback receiver, ``webhookURL`` POSTs each result (retried on a
non-2xx answer), ``ttl`` deletes the image URL, ``outputQuality`` changes the JPG/WEBP bytes, the
``X-Runware-Dry-Run`` header prices a task without running it, and the ``imageInference`` features both
official SDKs send (``routing``, ``hiresFix`` ...) are accepted with their type checked.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, Fault
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.runware import EMULATOR_KEY, RunwareOptions, create_app

MODEL = "civitai:139562@344487"
FACE_URI = "data:image/png;base64," + base64.b64encode(render_image(seed=3, style="x", width=64, height=64)).decode()


def task(**fields: Any) -> dict[str, Any]:
    """A valid standalone photoMaker task with ``fields`` added."""
    return {"taskType": "photoMaker", "taskUUID": str(uuid.uuid4()), "model": MODEL, "positivePrompt": "rwre, a man",
            "inputImages": [FACE_URI], "width": 128, "height": 128, **fields}


class Receiver:
    """A loopback HTTP server recording what it receives; answers ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str, bytes]] = []
        self.statuses: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((request.method, request.headers.get("Content-Type", ""), await request.read()))
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200)


class Api:
    """The emulator, a receiver and a client session."""

    def __init__(self, state: EmulatorState, server: TestServer, receiver: Receiver, receiver_url: str,
                 session: aiohttp.ClientSession) -> None:
        self.state = state
        self.server = server
        self.receiver = receiver
        self.receiver_url = receiver_url
        self.session = session

    async def post(self, tasks: list[dict[str, Any]], headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """POST a task array with Bearer auth; status and body."""
        async with self.session.post(self.server.make_url("/v1"), json=tasks, headers={
                "Authorization": f"Bearer {self.state.settings.api_key}", **(headers or {})}) as response:
            return response.status, await response.json()

    async def get(self, url: str) -> tuple[int, bytes]:
        """GET an image URL."""
        async with self.session.get(url) as response:
            return response.status, await response.read()


async def wait_for(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``condition()`` holds (generous bound; fails the test otherwise)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    """Emulator with fast jobs and a fast ttl clock, plus a loopback receiver."""
    state = EmulatorState("runware", EmulatorSettings(run_time=0.02, seed=8))
    server = TestServer(create_app(state, RunwareOptions(ttl_scale=0.005)), host="127.0.0.1")
    receiver = Receiver()
    receiving = web.Application()
    receiving.router.add_route("*", "/hook", receiver.handle)
    receiver_server = TestServer(receiving, host="127.0.0.1")
    await server.start_server()
    await receiver_server.start_server()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield Api(state, server, receiver, str(receiver_server.make_url("/hook?token=abc")), session)
    await server.close()
    await receiver_server.close()


# ------------------------------------------------------------------------------------------ uploadEndpoint

async def test_upload_endpoint_receives_each_image_by_put(api: Api) -> None:
    status, body = await api.post([task(numberResults=2, uploadEndpoint=api.receiver_url, outputFormat="PNG")])
    assert status == 200

    await wait_for(lambda: api.state.counters["upload_endpoint_delivered"] == 2)
    served = [(await api.get(item["imageURL"]))[1] for item in body["data"]]
    assert sorted(data for _, _, data in api.receiver.received) == sorted(served)
    assert {(method, content_type) for method, content_type, _ in api.receiver.received} == {("PUT", "image/png")}


async def test_upload_endpoint_is_retried_after_a_failure(api: Api) -> None:
    api.receiver.statuses = [503]
    await api.post([task(uploadEndpoint=api.receiver_url)])
    await wait_for(lambda: api.state.counters["upload_endpoint_delivered"] == 1)
    assert api.state.counters["upload_endpoint_attempts_failed"] == 1
    assert [method for method, _, _ in api.receiver.received] == ["PUT", "PUT"]


async def test_upload_endpoint_off_the_machine_is_never_contacted(api: Api) -> None:
    status, _ = await api.post([task(uploadEndpoint="https://bucket.example.com/out.jpg?X-Amz-Signature=1")])
    assert status == 200
    await wait_for(lambda: api.state.counters["upload_endpoint_undeliverable"] == 1)


async def test_upload_endpoint_must_be_a_url(api: Api) -> None:
    status, body = await api.post([task(uploadEndpoint="not a url")])
    assert status == 400 and body["errors"][0]["code"] == "invalidUploadEndpoint"


# -------------------------------------------------------------------------------------------------- webhook

async def test_webhook_posts_each_result_flat_and_retries(api: Api) -> None:
    api.receiver.statuses = [500]
    sent = task(numberResults=2, webhookURL=api.receiver_url, includeCost=True)
    status, body = await api.post([sent])

    assert status == 200
    assert body == {"data": [{"taskType": "photoMaker", "taskUUID": sent["taskUUID"]}]}  # the ACK
    await wait_for(lambda: api.state.counters["webhooks_delivered"] == 2)
    assert api.state.counters["webhooks_attempts_failed"] == 1
    delivered = [json.loads(data) for method, _, data in api.receiver.received]
    assert all(item["taskUUID"] == sent["taskUUID"] and "imageURL" in item and item["cost"] > 0
               for item in delivered)


# ------------------------------------------------------------------------------------------------------ ttl

async def test_ttl_deletes_the_image_url(api: Api) -> None:
    # ttl 60 at a ttl_scale of 0.005: the image is deleted 0.3 s after it was generated.
    status, body = await api.post([task(ttl=60)])
    assert status == 200
    url = body["data"][0]["imageURL"]
    assert (await api.get(url))[0] == 200
    stored = api.server.app[EMULATOR_KEY].media.get(body["data"][0]["imageUUID"])
    assert stored is not None and stored.expires_at is not None
    await wait_for(lambda: stored.expired())
    assert (await api.get(url))[0] == 404


async def test_without_ttl_images_stay(api: Api) -> None:
    _, body = await api.post([task()])
    stored = api.server.app[EMULATOR_KEY].media.get(body["data"][0]["imageUUID"])
    assert stored is not None and stored.expires_at is None


async def test_ttl_below_60_is_refused(api: Api) -> None:
    status, body = await api.post([task(ttl=59)])
    assert status == 400 and body["errors"][0]["code"] == "invalidTtl"


async def test_an_expired_image_cannot_be_an_input_any_more(api: Api) -> None:
    _, body = await api.post([task(ttl=60)])
    image_uuid = body["data"][0]["imageUUID"]
    stored = api.server.app[EMULATOR_KEY].media.get(image_uuid)
    assert stored is not None
    await wait_for(lambda: stored.expired())
    status, refused = await api.post([task(inputImages=[image_uuid])])
    assert status == 404 and refused["errors"][0]["code"] == "mediaNotFound"


# -------------------------------------------------------------------------------------------- outputQuality

@pytest.mark.parametrize("output_format", ["JPG", "WEBP"])
async def test_output_quality_changes_the_bytes(api: Api, output_format: str) -> None:
    sizes = {}
    for quality in (20, 99):
        _, body = await api.post([task(seed=5, outputFormat=output_format, outputQuality=quality)])
        sizes[quality] = (await api.get(body["data"][0]["imageURL"]))[1]
    assert sizes[20] != sizes[99] and len(sizes[20]) < len(sizes[99])


async def test_output_quality_does_not_change_a_png(api: Api) -> None:
    pictures = []
    for quality in (20, 99):
        _, body = await api.post([task(seed=5, outputFormat="PNG", outputQuality=quality)])
        pictures.append((await api.get(body["data"][0]["imageURL"]))[1])
    assert pictures[0] == pictures[1]


# ------------------------------------------------------------------------------------------------- dry run

async def test_dry_run_prices_the_task_and_runs_nothing(api: Api) -> None:
    sent = task(numberResults=3, webhookURL=api.receiver_url, uploadEndpoint=api.receiver_url)
    status, body = await api.post([sent], headers={"X-Runware-Dry-Run": "1"})

    assert status == 200
    assert body == {"data": [{"taskType": "photoMaker", "taskUUID": sent["taskUUID"], "cost": 0.0039}]}
    assert api.state.counters["dry_runs"] == 1 and api.state.counters["jobs_created"] == 0
    assert not api.server.app[EMULATOR_KEY].jobs
    await asyncio.sleep(0.1)
    assert api.receiver.received == []
    # The same taskUUID can then really run: the dry run created nothing.
    assert (await api.post([sent]))[0] == 200


async def test_dry_run_still_validates(api: Api) -> None:
    status, body = await api.post([task(width=1000)], headers={"X-Runware-Dry-Run": "1"})
    assert status == 400 and body["errors"][0]["code"] == "invalidCustomWidth"
    status, body = await api.post([task(inputImages=[str(uuid.uuid4())])], headers={"X-Runware-Dry-Run": "1"})
    assert status == 404 and body["errors"][0]["code"] == "mediaNotFound"


async def test_dry_run_header_zero_is_a_real_run(api: Api) -> None:
    status, body = await api.post([task()], headers={"X-Runware-Dry-Run": "0"})
    assert status == 200 and "imageURL" in body["data"][0]


async def test_dry_run_over_websocket_query(api: Api) -> None:
    url = api.server.make_url("/v1?sdk=js&version=1.3.1&dryRun=1")
    sent = {**task(), "taskType": "imageInference", "inputImages": None,
            "photoMaker": {"images": [FACE_URI], "style": "Cinematic", "strength": 20}}
    del sent["inputImages"]
    async with api.session.ws_connect(url) as socket:
        await socket.send_json([{"taskType": "authentication", "apiKey": api.state.settings.api_key}])
        assert "connectionSessionUUID" in (await socket.receive_json())["data"][0]
        await socket.send_json([sent])
        answer = await socket.receive_json()
    assert answer == {"data": [{"taskType": "imageInference", "taskUUID": sent["taskUUID"], "cost": 0.0013}]}
    assert api.state.counters["jobs_created"] == 0


async def test_a_dry_run_is_never_faulted_into_a_job(api: Api) -> None:
    api.state.settings.faults = [Fault("fail_job")]
    status, _ = await api.post([task()], headers={"X-Runware-Dry-Run": "1"})
    assert status == 200 and api.state.counters["fault:fail_job"] == 0


# ------------------------------------------------------------------------------- features both SDKs send

def inference(**fields: Any) -> dict[str, Any]:
    """An imageInference task with PhotoMaker settings, as runware-sdk sends it."""
    return {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": MODEL,
            "positivePrompt": "rwre man", "width": 128, "height": 128, "deliveryMethod": "sync",
            "photoMaker": {"images": [FACE_URI], "style": "Cinematic", "strength": 20}, **fields}


@pytest.mark.parametrize("fields", [
    {"routing": {"provider": "runware"}}, {"hiresFix": True}, {"hiresFix": {"upscaler": "x"}},
    {"advancedFeatures": {"hiresFix": True}}, {"promptWeighting": "compel"}, {"acceleration": "high"},
    {"lora": [{"model": "civitai:1@1", "weight": 0.5}]}, {"useCache": True}, {"strength": 0.5},
])
async def test_sdk_feature_fields_are_accepted(api: Api, fields: dict[str, Any]) -> None:
    status, body = await api.post([inference(**fields)])
    assert status == 200, body


@pytest.mark.parametrize(("fields", "code"), [
    ({"routing": "fast"}, "invalidRouting"), ({"hiresFix": False}, "invalidHiresFix"),
    ({"hiresFix": "on"}, "invalidHiresFix"), ({"lora": {"model": "x"}}, "invalidLora"),
    ({"promptWeighting": "heavy"}, "invalidPromptWeighting"), ({"useCache": 1}, "invalidUseCache"),
    ({"strength": 2}, "invalidStrength"), ({"maskMargin": 1.5}, "invalidMaskMargin"),
])
async def test_sdk_feature_fields_with_a_wrong_type_are_refused(api: Api, fields: dict[str, Any],
                                                                code: str) -> None:
    status, body = await api.post([inference(**fields)])
    assert status == 400
    error = body["errors"][0]
    assert (error["code"], error["parameter"]) == (code, next(iter(fields)))
