"""The official ``runware`` SDK 0.5.24, unchanged, against the Runware emulator over WebSocket.

In this suite the legacy SDK is imported as ``runware_legacy`` (tests/conftest.py explains why); ``Runware`` is
its ``RunwareServer``, which is what its own ``__init__`` exports under that name.

The SDK is Runware's own client, so whatever it accepts here is what the real service looks like to it
(runware.md §1.1, §5.2). Every test disconnects the SDK and checks that no task of its is left running.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from PIL import Image
from runware_legacy.server import RunwareServer as Runware
from runware_legacy.types import IImageInference, IPhotoMaker, IPhotoMakerSettings
from runware_legacy.utils import RunwareAPIError

from photomaker_bridge.emulators._common import EmulatorState, Fault
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.runware import EMULATOR_KEY, RunwareEmulator

MODEL = "civitai:139562@344487"
FACE_PNG = render_image(seed=21, style="face", width=64, height=64)
FACE_URI = "data:image/png;base64," + base64.b64encode(FACE_PNG).decode()


@pytest.fixture
async def client(runware_server: TestServer, runware_state: EmulatorState) -> AsyncIterator[Runware]:
    """A connected SDK client, disconnected afterwards with none of its tasks left behind."""
    before = asyncio.all_tasks()
    sdk = Runware(api_key=runware_state.settings.api_key, url=f"ws://127.0.0.1:{runware_server.port}/v1")
    await sdk.connect()
    yield sdk
    await sdk.disconnect()
    await asyncio.sleep(0)
    left = [task for task in asyncio.all_tasks() - before if not task.done() and task is not asyncio.current_task()]
    assert not left, f"SDK tasks still running after disconnect: {left}"


def emulator_of(server: TestServer) -> RunwareEmulator:
    """The emulator object behind the running app."""
    return server.app[EMULATOR_KEY]


async def fetch(url: str) -> bytes:
    """The body of a GET on loopback."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read()


async def test_sdk_upload_image_from_a_local_file(client: Runware, tmp_path: Path) -> None:
    face = tmp_path / "face.png"
    face.write_bytes(FACE_PNG)
    uploaded = await client.uploadImage(str(face))
    assert uploaded is not None
    assert uploaded.imageURL.endswith(f"/image/ws/0.5/ii/{uploaded.imageUUID}.png")
    assert await fetch(uploaded.imageURL) == FACE_PNG


async def test_sdk_photomaker_with_uploaded_and_inline_faces(client: Runware, runware_server: TestServer,
                                                            tmp_path: Path) -> None:
    face = tmp_path / "face.png"
    face.write_bytes(FACE_PNG)
    uploaded = await client.uploadImage(str(face))
    assert uploaded is not None
    images = await client.photoMaker(IPhotoMaker(
        model=MODEL, positivePrompt="a portrait photo, studio light", width=256, height=128, numberResults=2,
        inputImages=[uploaded.imageUUID, FACE_URI], style="Photographic", strength=20, includeCost=True, seed=100,
        outputFormat="PNG"))
    assert isinstance(images, list)
    assert sorted(image.seed for image in images) == [100, 101]
    assert all(image.cost == 0.0013 and image.taskType == "photoMaker" for image in images)
    for image in images:
        assert image.imageURL is not None
        picture = Image.open(io.BytesIO(await fetch(image.imageURL)))
        assert (picture.format, picture.size) == ("PNG", (256, 128))
    # The SDK sent style and strength, and the emulator kept the prompt's trigger rule (runware.md §5.1).
    [job] = emulator_of(runware_server).jobs.values()
    assert job.spec.effective_prompt == "rwre, a portrait photo, studio light"
    assert job.input_uuids[0] == uploaded.imageUUID


async def test_sdk_photomaker_defaults_sent_as_null(client: Runware, runware_server: TestServer) -> None:
    # Without style and strength the SDK sends JSON null for both (runware.md §5.2): null means "default".
    images = await client.photoMaker(IPhotoMaker(model=MODEL, positivePrompt="rwre in a garden", width=128,
                                                 height=128, inputImages=[FACE_URI]))
    assert isinstance(images, list) and len(images) == 1
    [job] = emulator_of(runware_server).jobs.values()
    assert (job.spec.style, job.spec.strength) == ("No style", 15)


async def test_sdk_gets_runware_api_error_for_invalid_width(client: Runware) -> None:
    with pytest.raises(RunwareAPIError) as caught:
        await client.photoMaker(IPhotoMaker(model=MODEL, positivePrompt="a portrait", width=1000, height=1024,
                                            inputImages=[FACE_URI]))
    assert caught.value.code == "invalidCustomWidth"
    assert caught.value.error_data["parameter"] == "width"
    assert caught.value.error_data["taskType"] == "photoMaker"


async def test_sdk_gets_runware_api_error_for_a_failed_job(client: Runware, runware_state: EmulatorState) -> None:
    runware_state.settings.faults = [Fault("fail_job")]
    with pytest.raises(RunwareAPIError) as caught:
        await client.photoMaker(IPhotoMaker(model=MODEL, positivePrompt="a portrait", width=128, height=128,
                                            inputImages=[FACE_URI]))
    assert caught.value.code == "inferenceError"


async def test_sdk_image_inference_with_nested_photomaker(client: Runware, runware_server: TestServer) -> None:
    images = await client.imageInference(IImageInference(
        model=MODEL, positivePrompt="rwre man, natural light", width=128, height=128, numberResults=2,
        photoMaker=IPhotoMakerSettings(images=[FACE_URI], style="Neonpunk", strength=30)))
    assert isinstance(images, list)
    assert [image.taskType for image in images] == ["imageInference", "imageInference"]
    [job] = emulator_of(runware_server).jobs.values()
    assert (job.spec.input_parameter, job.spec.style, job.spec.strength) == ("photoMaker.images", "Neonpunk", 30)
