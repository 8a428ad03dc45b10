"""Runware's current official Python SDK (``runware-sdk``), unchanged, against the Runware emulator.

Both transports (REST and WebSocket) and both PhotoMaker task shapes: the standalone ``photoMaker`` task and
``imageInference`` with ``photoMaker: {images, style, strength}``, which is the only shape this SDK's typed
parameters know (runware.md §1.1, §5.3). The SDK delivers ``async`` by default: an ACK, then ``getResponse``
polls until every image arrived (runware.md §4.1, §4.2). The SDK is imported as ``runware`` from its own files
(tests/conftest.py explains why).
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from runware.client import Runware
from runware.errors import RunwareError

from photomaker_bridge.emulators._common import EmulatorState, Fault
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.runware import EMULATOR_KEY, RunwareEmulator

MODEL = "civitai:139562@344487"
FACE_URI = "data:image/png;base64," + base64.b64encode(render_image(seed=9, style="f", width=64, height=64)).decode()
TRANSPORTS = ["rest", "websocket"]


def shapes() -> dict[str, dict[str, Any]]:
    """The two PhotoMaker task shapes, as a user of the SDK writes them."""
    common = {"model": MODEL, "positivePrompt": "rwre, a man in a spacesuit", "width": 256, "height": 256,
              "numberResults": 2, "includeCost": True, "seed": 40}
    return {
        "imageInference": {"taskType": "imageInference", **common,
                           "photoMaker": {"images": [FACE_URI], "style": "Cinematic", "strength": 20}},
        "photoMaker": {"taskType": "photoMaker", **common, "inputImages": [FACE_URI], "style": "Cinematic",
                       "strength": 20},
    }


def sdk(server: TestServer, state: EmulatorState, transport: str, **config: Any) -> Runware:
    """An SDK client pointed at the emulator (``http_base_url`` / ``ws_base_url`` are its config fields)."""
    return Runware(api_key=state.settings.api_key, transport=transport, max_retries=0,
                   http_base_url=str(server.make_url("/v1")), ws_base_url=f"ws://127.0.0.1:{server.port}/v1",
                   **config)


def emulator_of(server: TestServer) -> RunwareEmulator:
    """The emulator object behind the running app."""
    return server.app[EMULATOR_KEY]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("shape", ["imageInference", "photoMaker"])
async def test_default_async_delivery_polls_get_response(runware_server: TestServer, runware_state: EmulatorState,
                                                        transport: str, shape: str) -> None:
    async with sdk(runware_server, runware_state, transport) as client:
        results = await client.run(shapes()[shape])

    assert sorted(result["seed"] for result in results) == [40, 41]
    assert all(result["taskType"] == shape and result["cost"] == 0.0013 for result in results)
    [job] = emulator_of(runware_server).jobs.values()
    assert job.spec.delivery_method == "async" and job.spec.style == "Cinematic" and job.spec.strength == 20
    assert runware_state.counters["polls"] >= 1  # the results came through getResponse
    sent = [entry.json() for entry in runware_state.log if entry.method in ("POST", "WS")]
    [task] = [item for frame in sent if isinstance(frame, list) for item in frame if item.get("taskType") == shape]
    assert task["deliveryMethod"] == "async"
    if shape == "imageInference":
        assert task["photoMaker"] == {"images": [FACE_URI], "style": "Cinematic", "strength": 20}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sync_delivery(runware_server: TestServer, runware_state: EmulatorState, transport: str) -> None:
    async with sdk(runware_server, runware_state, transport) as client:
        results = await client.run({**shapes()["imageInference"], "deliveryMethod": "sync"})
    assert len(results) == 2 and all("imageURL" in result for result in results)
    assert runware_state.counters["polls"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_fields_of_the_generated_sdxl_params(runware_server: TestServer, runware_state: EmulatorState,
                                                   transport: str) -> None:
    # Fields the SDK's StabilityaiStableDiffusionXlV10VaeFixParams declare beside photoMaker.
    params = {**shapes()["imageInference"], "routing": {"provider": "runware"}, "hiresFix": True,
              "outputFormat": "WEBP", "outputQuality": 80, "ttl": 3600, "safety": {"checkContent": True}}
    async with sdk(runware_server, runware_state, transport) as client:
        results = await client.run(params)
    assert all(result["imageURL"].endswith(".webp") and result["NSFWContent"] is False for result in results)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_task_raises_runware_error(runware_server: TestServer, runware_state: EmulatorState,
                                                   transport: str) -> None:
    async with sdk(runware_server, runware_state, transport) as client:
        with pytest.raises(RunwareError) as caught:
            await client.run({**shapes()["imageInference"], "width": 1000})
    assert caught.value.parameter == "width"
    assert "width" in str(caught.value)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_failed_job_raises_through_get_response(runware_server: TestServer, runware_state: EmulatorState,
                                                        transport: str) -> None:
    runware_state.settings.faults = [Fault("fail_job", message="CUDA out of memory")]
    async with sdk(runware_server, runware_state, transport) as client:
        with pytest.raises(RunwareError, match="CUDA out of memory"):
            await client.run(shapes()["imageInference"])


async def test_get_response_utility_after_a_finished_task(runware_server: TestServer,
                                                         runware_state: EmulatorState) -> None:
    async with sdk(runware_server, runware_state, "rest") as client:
        results = await client.run(shapes()["photoMaker"])
        polled = await client.get_response({"taskUUID": results[0]["taskUUID"]})
    assert sorted(item["imageUUID"] for item in polled) == sorted(result["imageUUID"] for result in results)
    assert {item["status"] for item in polled} == {"success"}


async def test_image_upload_then_photomaker_by_uuid(runware_server: TestServer,
                                                    runware_state: EmulatorState) -> None:
    async with sdk(runware_server, runware_state, "websocket") as client:
        [uploaded] = await client.image_upload({"image": FACE_URI})
        results = await client.run({**shapes()["imageInference"],
                                    "photoMaker": {"images": [uploaded["imageUUID"]], "strength": 15}})
    assert all(result["inputImagesUUID"] == [uploaded["imageUUID"]] for result in results)
