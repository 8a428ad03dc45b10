"""The Runware emulator on the wire: REST and WebSocket envelopes, validation, jobs, images and faults.

Each test runs the emulator on loopback (``aiohttp.test_utils.TestServer``) and speaks raw HTTP or raw
WebSocket to it, so the assertions are about exactly what Runware sends (runware.md §2–§5, §9). The official
SDK's view is in ``test_runware_sdk.py``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from PIL import Image

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, Fault
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators._runware_validation import STYLES
from photomaker_bridge.emulators.runware import EMULATOR_KEY, RunwareEmulator, RunwareOptions, create_app

MODEL = "civitai:139562@344487"
FACE_PNG = render_image(seed=11, style="face", width=64, height=64)
FACE_URI = "data:image/png;base64," + base64.b64encode(FACE_PNG).decode()
REMOVE = object()
"""Marks a key to delete from a task in a test's changes."""


def encoded(image_format: str, size: tuple[int, int] = (16, 16)) -> bytes:
    """A small picture in ``image_format`` made with Pillow."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 150, 120)).save(buffer, format=image_format)
    return buffer.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    """``data`` as a data URI."""
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def with_changes(task: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``task`` with ``changes`` applied; dotted keys reach into nested objects, ``REMOVE`` deletes."""
    for key, value in changes.items():
        target = task
        *parents, name = key.split(".")
        for parent in parents:
            target = target[parent]
        if value is REMOVE:
            target.pop(name, None)
        else:
            target[name] = value
    return task


def photomaker_task(**changes: Any) -> dict[str, Any]:
    """A valid standalone ``photoMaker`` task (128×128, one image), with ``changes`` applied."""
    task = {"taskType": "photoMaker", "taskUUID": str(uuid.uuid4()), "model": MODEL, "inputImages": [FACE_URI],
            "style": "Photographic", "strength": 20, "positivePrompt": "a portrait photo, studio light",
            "width": 128, "height": 128, "numberResults": 1}
    return with_changes(task, changes)


def inference_task(**changes: Any) -> dict[str, Any]:
    """A valid ``imageInference`` task with a nested ``photoMaker`` object (runware.md §5.3)."""
    task = {"taskType": "imageInference", "taskUUID": str(uuid.uuid4()), "model": MODEL, "deliveryMethod": "sync",
            "numberResults": 1, "positivePrompt": "rwre man, cinematic", "width": 128, "height": 128,
            "photoMaker": {"style": "Photographic", "strength": 20, "images": [FACE_URI]}}
    return with_changes(task, changes)


def decode(data: bytes) -> Image.Image:
    """A decoded picture (fails the test if the bytes are not a real image)."""
    picture = Image.open(io.BytesIO(data))
    picture.load()
    return picture


class Socket:
    """A raw WebSocket to the emulator, keeping frames that arrive while waiting for others."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self.socket = socket
        self.frames: list[dict[str, Any]] = []

    async def send(self, *tasks: dict[str, Any]) -> None:
        """Send one frame holding ``tasks``."""
        await self.socket.send_str(json.dumps(list(tasks)))

    async def next(self, timeout: float = 3.0) -> dict[str, Any]:
        """The next frame."""
        if self.frames:
            return self.frames.pop(0)
        message = await self.socket.receive(timeout=timeout)
        assert message.type == WSMsgType.TEXT, message
        frame: dict[str, Any] = json.loads(message.data)
        return frame

    async def frames_for(self, task_uuid: str, count: int, timeout: float = 3.0) -> list[dict[str, Any]]:
        """The next ``count`` frames about ``task_uuid`` (others are kept for later)."""
        def about(frame: dict[str, Any]) -> bool:
            items = frame.get("data", []) + frame.get("errors", [])
            return any(item.get("taskUUID") == task_uuid for item in items)

        found = [frame for frame in self.frames if about(frame)][:count]
        self.frames = [frame for frame in self.frames if not any(frame is taken for taken in found)]
        deadline = time.monotonic() + timeout
        while len(found) < count:
            message = await self.socket.receive(timeout=max(0.01, deadline - time.monotonic()))
            assert message.type == WSMsgType.TEXT, message
            frame = json.loads(message.data)
            (found if about(frame) else self.frames).append(frame)
        return found

    async def authenticate(self, api_key: str, session_uuid: str | None = None) -> dict[str, Any]:
        """Send the authentication task and return the answer frame."""
        task: dict[str, Any] = {"taskType": "authentication", "apiKey": api_key}
        if session_uuid is not None:
            task["connectionSessionUUID"] = session_uuid
        await self.send(task)
        return await self.next()


class Api:
    """Raw REST and WebSocket access to one running emulator."""

    def __init__(self, session: aiohttp.ClientSession, server: TestServer, state: EmulatorState) -> None:
        self.session = session
        self.server = server
        self.state = state
        self.emulator: RunwareEmulator = server.app[EMULATOR_KEY]
        self.base = f"http://127.0.0.1:{server.port}"

    @property
    def auth(self) -> dict[str, str]:
        """The Bearer header with the emulator's key."""
        return {"Authorization": f"Bearer {self.state.settings.api_key}"}

    async def post(self, tasks: Any, *, headers: dict[str, str] | None = None,
                   timeout: float | None = None) -> tuple[int, Any, dict[str, str]]:
        """``POST /v1``: ``(status, JSON body or raw text, headers)``."""
        async with self.session.post(f"{self.base}/v1", data=json.dumps(tasks),
                                     headers=self.auth if headers is None else headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            text = await response.text()
            try:
                body: Any = json.loads(text)
            except ValueError:
                body = text
            return response.status, body, dict(response.headers)

    async def get(self, url: str) -> tuple[int, bytes, str]:
        """``(status, body, content type)`` of a GET."""
        async with self.session.get(url) as response:
            return response.status, await response.read(), response.content_type

    async def socket(self, *, authenticate: bool = True, path: str = "/v1") -> Socket:
        """A WebSocket on ``path``, authenticated unless told otherwise."""
        socket = Socket(await self.session.ws_connect(f"ws://127.0.0.1:{self.server.port}{path}"))
        if authenticate:
            answer = await socket.authenticate(self.state.settings.api_key)
            assert "connectionSessionUUID" in answer["data"][0]
        return socket


@pytest.fixture
def state() -> EmulatorState:
    """Fast jobs (20 ms), a fixed seed."""
    return EmulatorState("runware", EmulatorSettings(run_time=0.02, seed=3))


@pytest.fixture
def options() -> RunwareOptions:
    """The emulator's default readings; a test parametrizes ``options`` to change them."""
    return RunwareOptions()


@pytest.fixture
async def server(state: EmulatorState, options: RunwareOptions) -> AsyncIterator[TestServer]:
    """The emulator on a loopback port."""
    server = TestServer(create_app(state, options), host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()
    emulator: RunwareEmulator = server.app[EMULATOR_KEY]
    assert not emulator.background, "background tasks outlived the application"


@pytest.fixture
async def api(server: TestServer, state: EmulatorState) -> AsyncIterator[Api]:
    """A client session bound to the running emulator."""
    async with aiohttp.ClientSession() as session:
        yield Api(session, server, state)


# -- REST: auth and envelopes --------------------------------------------------------------------------


async def test_rest_photomaker_with_bearer_header(api: Api) -> None:
    task = photomaker_task()
    status, body, _ = await api.post([task])
    assert status == 200
    assert set(body) == {"data"}
    [item] = body["data"]
    assert item["taskType"] == "photoMaker" and item["taskUUID"] == task["taskUUID"]
    assert uuid.UUID(item["imageUUID"]).version == 4
    assert item["imageURL"] == f"{api.base}/image/ws/0.5/ii/{item['imageUUID']}.jpg"
    assert len(item["inputImagesUUID"]) == 1
    assert "cost" not in item and "NSFWContent" not in item
    assert isinstance(item["seed"], int) and 1 <= item["seed"] < 2**32


async def test_rest_photomaker_with_authentication_task(api: Api) -> None:
    auth = {"taskType": "authentication", "apiKey": api.state.settings.api_key}
    status, body, _ = await api.post([auth, photomaker_task()], headers={})
    assert status == 200
    assert [item["taskType"] for item in body["data"]] == ["photoMaker"]


@pytest.mark.parametrize(("headers", "tasks_prefix", "code"), [
    ({}, [], "missingApiKey"),
    ({"Authorization": "Bearer wrong-key"}, [], "invalidApiKey"),
    ({"Authorization": "Basic d3Jvbmc="}, [], "invalidApiKey"),
    ({}, [{"taskType": "authentication", "apiKey": "wrong-key"}], "invalidApiKey"),
    ({}, [{"taskType": "authentication"}], "missingApiKey"),
], ids=["no-header", "wrong-bearer", "basic-scheme", "wrong-payload-key", "payload-without-key"])
async def test_rest_auth_failures(api: Api, headers: dict[str, str], tasks_prefix: list[dict[str, Any]],
                                  code: str) -> None:
    status, body, _ = await api.post([*tasks_prefix, photomaker_task()], headers=headers)
    assert status == 401
    assert body == {"errors": [{
        "code": code, "message": body["errors"][0]["message"], "parameter": "apiKey", "type": "string",
        "taskType": "authentication"}]}
    if code == "invalidApiKey":
        assert body["errors"][0]["message"] == "Invalid API key. Get one at https://my.runware.ai/signup"
    assert api.emulator.jobs == {}
    assert api.state.counters["auth_failures"] == 1


@pytest.mark.parametrize("raw", ['{"taskType": "photoMaker"}', "[]", "not json", '["a string"]'],
                         ids=["object", "empty-array", "not-json", "non-object-task"])
async def test_rest_body_must_be_an_array_of_tasks(api: Api, raw: str) -> None:
    async with api.session.post(f"{api.base}/v1", data=raw, headers=api.auth) as response:
        body = await response.json()
    assert response.status == 400
    assert body["errors"][0]["code"] == "invalidPayload"


async def test_rest_ping(api: Api) -> None:
    status, body, _ = await api.post([{"taskType": "ping", "ping": True}])
    assert (status, body) == (200, {"data": [{"taskType": "ping", "pong": True}]})


async def test_rest_mixed_success_and_error_is_200_with_both_arrays(api: Api) -> None:
    good, bad = photomaker_task(), photomaker_task(width=1000)
    status, body, _ = await api.post([good, bad])
    assert status == 200
    assert [item["taskUUID"] for item in body["data"]] == [good["taskUUID"]]
    assert [(error["code"], error["taskUUID"]) for error in body["errors"]] == [
        ("invalidCustomWidth", bad["taskUUID"])]


async def test_rest_all_failed_takes_the_first_errors_status(api: Api) -> None:
    unknown = photomaker_task(inputImages=[str(uuid.uuid4())])
    status, body, _ = await api.post([unknown, photomaker_task(width=1000)])
    assert status == 404
    assert [error["code"] for error in body["errors"]] == ["mediaNotFound", "invalidCustomWidth"]
    assert "data" not in body
    status, body, _ = await api.post([photomaker_task(width=1000), unknown])
    assert status == 400


async def test_unknown_task_type_is_refused(api: Api) -> None:
    status, body, _ = await api.post([{"taskType": "modelTraining", "taskUUID": str(uuid.uuid4())}])
    assert status == 400
    assert body["errors"][0]["code"] == "invalidTaskType"
    assert "photoMaker" in body["errors"][0]["allowedValues"]


# -- validation (runware.md §5.1), over both transports ------------------------------------------------

GIF_URI = data_uri(encoded("GIF"), "image/gif")
PHOTOMAKER_REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("taskUUID-missing", {"taskUUID": REMOVE}, "missingTaskUUID", "taskUUID"),
    ("taskUUID-version-1", {"taskUUID": str(uuid.uuid1())}, "invalidTaskUUID", "taskUUID"),
    ("taskUUID-not-uuid", {"taskUUID": "task-1"}, "invalidTaskUUID", "taskUUID"),
    ("taskUUID-number", {"taskUUID": 12345}, "invalidTaskUUID", "taskUUID"),
    ("taskType-missing", {"taskType": REMOVE}, "missingTaskType", "taskType"),
    ("taskType-wrong-case", {"taskType": "photomaker"}, "invalidTaskType", "taskType"),
    ("model-missing", {"model": REMOVE}, "missingModel", "model"),
    ("model-null", {"model": None}, "missingModel", "model"),
    ("model-not-air", {"model": "RealVisXL"}, "invalidModel", "model"),
    ("model-not-sdxl", {"model": "runware:101@1"}, "invalidModel", "model"),
    ("inputImages-missing", {"inputImages": REMOVE}, "missingInputImages", "inputImages"),
    ("inputImages-empty", {"inputImages": []}, "invalidInputImages", "inputImages"),
    ("inputImages-five", {"inputImages": [FACE_URI] * 5}, "invalidInputImages", "inputImages"),
    ("inputImages-not-array", {"inputImages": FACE_URI}, "invalidInputImages", "inputImages"),
    ("inputImages-number", {"inputImages": [42]}, "invalidInputImages", "inputImages"),
    ("inputImages-relative-path", {"inputImages": ["face.png"]}, "invalidInputImages", "inputImages"),
    ("inputImages-gif", {"inputImages": [GIF_URI]}, "invalidInputImages", "inputImages"),
    ("inputImages-bad-base64", {"inputImages": ["data:image/png;base64,@@@@"]}, "invalidInputImages",
     "inputImages"),
    ("inputImages-not-an-image", {"inputImages": [base64.b64encode(b"plain text, no picture").decode()]},
     "invalidInputImages", "inputImages"),
    ("inputImages-unreachable-url", {"inputImages": ["https://example.com/face.jpg"]}, "invalidInputImages",
     "inputImages"),
    ("inputImages-ftp-url", {"inputImages": ["ftp://example.com/face.jpg"]}, "invalidInputImages",
     "inputImages"),
    ("inputImages-unknown-uuid", {"inputImages": ["8a7f2c3e-1d4b-4f6a-9c2e-3b5d7e9f1a2c"]}, "mediaNotFound",
     "inputImages"),
    ("style-wrong-case", {"style": "cinematic"}, "invalidStyle", "style"),
    ("style-unknown", {"style": "Anime"}, "invalidStyle", "style"),
    ("style-number", {"style": 3}, "invalidStyle", "style"),
    ("strength-low", {"strength": 14}, "invalidStrength", "strength"),
    ("strength-high", {"strength": 51}, "invalidStrength", "strength"),
    ("strength-fraction", {"strength": 20.5}, "invalidStrength", "strength"),
    ("strength-string", {"strength": "20"}, "invalidStrength", "strength"),
    ("strength-bool", {"strength": True}, "invalidStrength", "strength"),
    ("positivePrompt-missing", {"positivePrompt": REMOVE}, "missingPositivePrompt", "positivePrompt"),
    ("positivePrompt-number", {"positivePrompt": 42}, "invalidPositivePrompt", "positivePrompt"),
    ("positivePrompt-empty", {"positivePrompt": ""}, "invalidPositivePromptLength", "positivePrompt"),
    ("positivePrompt-one-char", {"positivePrompt": "a"}, "invalidPositivePromptLength", "positivePrompt"),
    ("positivePrompt-301-chars", {"positivePrompt": "x" * 301}, "invalidPositivePromptLength", "positivePrompt"),
    ("negativePrompt-one-char", {"negativePrompt": "a"}, "invalidNegativePromptLength", "negativePrompt"),
    ("negativePrompt-3001-chars", {"negativePrompt": "x" * 3001}, "invalidNegativePromptLength",
     "negativePrompt"),
    ("negativePrompt-number", {"negativePrompt": 7}, "invalidNegativePrompt", "negativePrompt"),
    ("width-missing", {"width": REMOVE}, "missingWidth", "width"),
    ("width-not-multiple-of-64", {"width": 1000}, "invalidCustomWidth", "width"),
    ("width-below-128", {"width": 64}, "invalidCustomWidth", "width"),
    ("width-above-2048", {"width": 2112}, "invalidCustomWidth", "width"),
    ("width-string", {"width": "512"}, "invalidCustomWidth", "width"),
    ("height-missing", {"height": REMOVE}, "missingHeight", "height"),
    ("height-not-multiple-of-64", {"height": 1000}, "invalidCustomHeight", "height"),
    ("height-zero", {"height": 0}, "invalidCustomHeight", "height"),
    ("steps-zero", {"steps": 0}, "invalidSteps", "steps"),
    ("steps-101", {"steps": 101}, "invalidSteps", "steps"),
    ("CFGScale-negative", {"CFGScale": -0.5}, "invalidCFGScale", "CFGScale"),
    ("CFGScale-above-50", {"CFGScale": 50.5}, "invalidCFGScale", "CFGScale"),
    ("CFGScale-string", {"CFGScale": "7"}, "invalidCFGScale", "CFGScale"),
    ("scheduler-number", {"scheduler": 5}, "invalidScheduler", "scheduler"),
    ("scheduler-blank", {"scheduler": " "}, "invalidScheduler", "scheduler"),
    ("seed-zero", {"seed": 0}, "invalidSeed", "seed"),
    ("seed-above-int64", {"seed": 2**63}, "invalidSeed", "seed"),
    ("seed-fraction", {"seed": 1.5}, "invalidSeed", "seed"),
    ("clipSkip-three", {"clipSkip": 3}, "invalidClipSkip", "clipSkip"),
    ("clipSkip-negative", {"clipSkip": -1}, "invalidClipSkip", "clipSkip"),
    ("numberResults-zero", {"numberResults": 0}, "invalidNumberResults", "numberResults"),
    ("numberResults-21", {"numberResults": 21}, "invalidNumberResults", "numberResults"),
    ("outputType-lower-case", {"outputType": "url"}, "invalidOutputType", "outputType"),
    ("outputType-unknown", {"outputType": "binary"}, "invalidOutputType", "outputType"),
    ("outputFormat-jpeg", {"outputFormat": "JPEG"}, "invalidOutputFormat", "outputFormat"),
    ("outputFormat-gif", {"outputFormat": "GIF"}, "invalidOutputFormat", "outputFormat"),
    ("outputQuality-19", {"outputQuality": 19}, "invalidOutputQuality", "outputQuality"),
    ("outputQuality-100", {"outputQuality": 100}, "invalidOutputQuality", "outputQuality"),
    ("includeCost-string", {"includeCost": "true"}, "invalidIncludeCost", "includeCost"),
    ("deliveryMethod-stream", {"deliveryMethod": "stream"}, "invalidDeliveryMethod", "deliveryMethod"),
    ("webhookURL-not-url", {"webhookURL": "my server"}, "invalidWebhookURL", "webhookURL"),
    ("uploadEndpoint-ftp", {"uploadEndpoint": "ftp://example.com/x"}, "invalidUploadEndpoint", "uploadEndpoint"),
    ("ttl-59", {"ttl": 59}, "invalidTtl", "ttl"),
    ("safety-not-object", {"safety": "on"}, "invalidSafety", "safety"),
    ("safety-mode", {"safety": {"mode": "strict"}}, "invalidSafetyMode", "safety.mode"),
    ("safety-checkContent", {"safety": {"checkContent": "yes"}}, "invalidSafetyCheckContent",
     "safety.checkContent"),
    ("safety-unknown-key", {"safety": {"level": 1}}, "unknownParameter", "safety.level"),
    ("checkNSFW-string", {"checkNSFW": "no"}, "invalidCheckNSFW", "checkNSFW"),
    ("unknown-parameter", {"num_images": 2}, "unknownParameter", "num_images"),
]
INFERENCE_REFUSALS: list[tuple[str, dict[str, Any], str, str]] = [
    ("photoMaker-not-object", {"photoMaker": "yes"}, "invalidPhotoMaker", "photoMaker"),
    ("images-missing", {"photoMaker.images": REMOVE}, "missingPhotoMakerImages", "photoMaker.images"),
    ("images-empty", {"photoMaker.images": []}, "invalidPhotoMakerImages", "photoMaker.images"),
    ("images-unreachable", {"photoMaker.images": ["https://example.com/a.jpg"]}, "invalidPhotoMakerImages",
     "photoMaker.images"),
    ("nested-inputImages-key", {"photoMaker.inputImages": [FACE_URI]}, "unknownParameter",
     "photoMaker.inputImages"),
    ("nested-style", {"photoMaker.style": "Anime"}, "invalidPhotoMakerStyle", "photoMaker.style"),
    ("nested-strength", {"photoMaker.strength": 60}, "invalidPhotoMakerStrength", "photoMaker.strength"),
    ("top-level-style", {"style": "Photographic"}, "unknownParameter", "style"),
    ("model-not-sdxl", {"model": "runware:100@1"}, "invalidModel", "model"),
    ("prompt-301-chars", {"positivePrompt": "x" * 301}, "invalidPositivePromptLength", "positivePrompt"),
    ("width", {"width": 1000}, "invalidCustomWidth", "width"),
]
REFUSALS = ([pytest.param(photomaker_task, *case[1:], id=f"photoMaker-{case[0]}") for case in PHOTOMAKER_REFUSALS]
            + [pytest.param(inference_task, *case[1:], id=f"imageInference-{case[0]}")
               for case in INFERENCE_REFUSALS])


def check_refusal(error: dict[str, Any], task: dict[str, Any], code: str, parameter: str) -> None:
    """``error`` is Runware's error item for ``task``, with ``code`` and ``parameter``."""
    assert error["code"] == code
    assert error["parameter"] == parameter
    assert isinstance(error["message"], str) and error["message"]
    if isinstance(task.get("taskType"), str):
        assert error["taskType"] == task["taskType"]
    if isinstance(task.get("taskUUID"), str):
        assert error["taskUUID"] == task["taskUUID"]


@pytest.mark.parametrize(("build", "changes", "code", "parameter"), REFUSALS)
async def test_rest_refuses_invalid_task(api: Api, build: Callable[..., dict[str, Any]], changes: dict[str, Any],
                                         code: str, parameter: str) -> None:
    task = build(**changes)
    status, body, _ = await api.post([task])
    assert status == (404 if code == "mediaNotFound" else 400)
    assert set(body) == {"errors"}
    [error] = body["errors"]
    check_refusal(error, task, code, parameter)
    assert api.emulator.jobs == {}


@pytest.mark.parametrize(("build", "changes", "code", "parameter"), REFUSALS)
async def test_websocket_refuses_invalid_task(api: Api, build: Callable[..., dict[str, Any]],
                                              changes: dict[str, Any], code: str, parameter: str) -> None:
    socket = await api.socket()
    task = build(**changes)
    await socket.send(task)
    frame = await socket.next()
    assert set(frame) == {"errors"}
    [error] = frame["errors"]
    check_refusal(error, task, code, parameter)


@pytest.mark.parametrize("changes", [
    {"style": None, "strength": None, "numberResults": None, "steps": None, "CFGScale": None, "seed": None,
     "outputType": None, "outputFormat": None, "includeCost": None, "negativePrompt": None},
    {"width": 2048, "height": 128, "strength": 15, "positivePrompt": "ab"},
    {"strength": 50.0, "positivePrompt": "x" * 300, "negativePrompt": "x" * 3000, "seed": 2**63 - 1},
    {"inputImages": [FACE_URI] * 4, "steps": 100, "CFGScale": 0, "clipSkip": 2, "outputQuality": 20},
    {"style": "No Style", "deliveryMethod": "sync", "ttl": 60, "checkNSFW": True, "scheduler": "DPM++ 2M"},
    {"safety": {"checkContent": True, "mode": "full"}, "outputType": ["URL", "dataURI"]},
], ids=["nulls-mean-defaults", "bounds-low", "bounds-high", "four-images", "documented-spellings", "safety"])
async def test_rest_accepts_valid_edge_values(api: Api, changes: dict[str, Any]) -> None:
    task = photomaker_task(**changes)
    status, body, _ = await api.post([task])
    assert status == 200, body
    assert len(body["data"]) == (task.get("numberResults") or 1)
    spec = api.emulator.jobs[task["taskUUID"]].spec
    assert spec.style in ("Photographic", "No style")
    assert spec.strength == (int(task["strength"]) if task.get("strength") is not None else 15)


@pytest.mark.parametrize("style", STYLES)
async def test_every_style_renders(api: Api, style: str) -> None:
    status, body, _ = await api.post([photomaker_task(style=style, width=512, height=384, outputFormat="PNG")])
    assert status == 200, body
    assert decode((await api.get(body["data"][0]["imageURL"]))[1]).size == (512, 384)


async def test_rwre_trigger_word_is_prepended_only_when_absent(api: Api) -> None:
    plain = photomaker_task(positivePrompt="wearing a suit, professional photo")
    placed = photomaker_task(positivePrompt="wearing a suit, rwre, professional photo")
    status, _, _ = await api.post([plain, placed])
    assert status == 200
    assert api.emulator.jobs[plain["taskUUID"]].spec.effective_prompt == "rwre, wearing a suit, professional photo"
    assert api.emulator.jobs[placed["taskUUID"]].spec.effective_prompt == "wearing a suit, rwre, professional photo"


# -- results: cost, output types, formats, seeds, images --------------------------------------------------


async def test_include_cost_reports_the_configured_price_per_image(api: Api) -> None:
    api.state.settings.cost_per_image = 0.0042
    task = photomaker_task(includeCost=True, numberResults=2)
    _, body, _ = await api.post([task])
    assert [item["cost"] for item in body["data"]] == [0.0042, 0.0042]


@pytest.mark.parametrize(("output_format", "pil_format", "extension", "mime"), [
    ("JPG", "JPEG", "jpg", "image/jpeg"), ("PNG", "PNG", "png", "image/png"), ("WEBP", "WEBP", "webp", "image/webp"),
])
async def test_output_types_carry_real_images_of_the_requested_size(
        api: Api, output_format: str, pil_format: str, extension: str, mime: str) -> None:
    results: dict[str, dict[str, Any]] = {}
    for output_type in ("URL", "base64Data", "dataURI"):
        task = photomaker_task(outputType=output_type, outputFormat=output_format, width=192, height=128, seed=9)
        _, body, _ = await api.post([task])
        results[output_type] = body["data"][0]
    url_item, base64_item, uri_item = results["URL"], results["base64Data"], results["dataURI"]
    assert "imageBase64Data" not in url_item and "imageDataURI" not in url_item
    assert "imageURL" not in base64_item and "imageURL" not in uri_item
    assert url_item["imageURL"].endswith(f".{extension}")
    status, served, content_type = await api.get(url_item["imageURL"])
    assert (status, content_type) == (200, mime)
    inline = base64.b64decode(base64_item["imageBase64Data"])
    prefix = f"data:{mime};base64,"
    assert uri_item["imageDataURI"].startswith(prefix)
    from_uri = base64.b64decode(uri_item["imageDataURI"][len(prefix):])
    for data in (served, inline, from_uri):
        picture = decode(data)
        assert (picture.format, picture.size) == (pil_format, (192, 128))
    # Same seed and style: the same picture whichever way it is delivered.
    assert served == inline == from_uri


async def test_seeds_increase_by_one_per_image(api: Api) -> None:
    _, body, _ = await api.post([photomaker_task(seed=41, numberResults=3)])
    assert [item["seed"] for item in body["data"]] == [41, 42, 43]
    _, body, _ = await api.post([photomaker_task(numberResults=2)])
    first, second = (item["seed"] for item in body["data"])
    assert second == first + 1 and 1 <= first < 2**32
    assert len({item["imageUUID"] for item in body["data"]}) == 2


async def test_check_nsfw_adds_nsfw_content(api: Api) -> None:
    _, body, _ = await api.post([photomaker_task(checkNSFW=True)])
    assert body["data"][0]["NSFWContent"] is False


async def test_image_route_serves_only_known_images(api: Api) -> None:
    _, body, _ = await api.post([photomaker_task(outputFormat="PNG")])
    url = body["data"][0]["imageURL"]
    assert (await api.get(url))[0] == 200
    assert (await api.get(url[: -len("png")] + "jpg"))[0] == 404
    assert (await api.get(f"{api.base}/image/ws/0.5/ii/{uuid.uuid4()}.png"))[0] == 404


async def test_plain_image_inference_is_text_to_image(api: Api) -> None:
    task = inference_task(photoMaker=REMOVE, positivePrompt="a lighthouse at dusk")
    status, body, _ = await api.post([task])
    assert status == 200
    [item] = body["data"]
    assert item["taskType"] == "imageInference" and "inputImagesUUID" not in item
    assert api.emulator.jobs[task["taskUUID"]].spec.effective_prompt == "a lighthouse at dusk"


async def test_nested_photomaker_results_echo_image_inference(api: Api) -> None:
    task = inference_task(numberResults=2, includeCost=True)
    status, body, _ = await api.post([task])
    assert status == 200
    assert [item["taskType"] for item in body["data"]] == ["imageInference"] * 2
    assert all(len(item["inputImagesUUID"]) == 1 for item in body["data"])


# -- input images and imageUpload --------------------------------------------------------------------------


async def test_image_upload_then_reuse_by_uuid(api: Api) -> None:
    upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": FACE_URI}
    status, body, _ = await api.post([upload])
    assert status == 200
    [item] = body["data"]
    assert set(item) == {"taskType", "taskUUID", "imageUUID", "imageURL"}
    assert item["imageURL"] == f"{api.base}/image/ws/0.5/ii/{item['imageUUID']}.png"
    assert (await api.get(item["imageURL"]))[1] == FACE_PNG
    task = photomaker_task(inputImages=[item["imageUUID"]])
    status, body, _ = await api.post([task])
    assert status == 200
    assert body["data"][0]["inputImagesUUID"] == [item["imageUUID"]]
    assert api.state.counters["uploads"] == 1


@pytest.mark.parametrize(("image", "code"), [
    (None, "missingImage"),
    ("8a7f2c3e-1d4b-4f6a-9c2e-3b5d7e9f1a2c", "invalidImage"),
    ("https://example.com/face.png", "invalidImage"),
    (data_uri(b"not an image"), "invalidImage"),
], ids=["missing", "uuid", "unreachable-url", "not-an-image"])
async def test_image_upload_refusals(api: Api, image: str | None, code: str) -> None:
    upload: dict[str, Any] = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4())}
    if image is not None:
        upload["image"] = image
    status, body, _ = await api.post([upload])
    assert status == 400
    assert body["errors"][0]["code"] == code and body["errors"][0]["parameter"] == "image"
    assert body["errors"][0]["taskType"] == "imageUpload"


async def test_image_upload_takes_gif_and_bare_base64(api: Api) -> None:
    tasks = [{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": GIF_URI},
             {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()),
              "image": base64.b64encode(encoded("JPEG")).decode()}]
    status, body, _ = await api.post(tasks)
    assert status == 200
    assert [item["imageURL"].rsplit(".", 1)[1] for item in body["data"]] == ["gif", "jpg"]
    # A GIF can be uploaded, but PhotoMaker takes only PNG, JPG and WEBP (runware.md §5.1).
    status, body, _ = await api.post([photomaker_task(inputImages=[body["data"][0]["imageUUID"]])])
    assert (status, body["errors"][0]["code"]) == (400, "invalidInputImages")


async def test_every_input_form_is_accepted(api: Api) -> None:
    _, generated, _ = await api.post([photomaker_task(outputFormat="WEBP")])
    own_url = generated["data"][0]["imageURL"]
    bare = base64.b64encode(encoded("JPEG")).decode()
    task = photomaker_task(inputImages=[FACE_URI, bare, own_url, generated["data"][0]["imageUUID"]])
    status, body, _ = await api.post([task])
    assert status == 200, body
    input_uuids = body["data"][0]["inputImagesUUID"]
    assert len(set(input_uuids)) == 4 and input_uuids[3] == generated["data"][0]["imageUUID"]
    # Inline inputs are stored and served like uploads.
    assert (await api.get(f"{api.base}/image/ws/0.5/ii/{input_uuids[0]}.png"))[1] == FACE_PNG


async def test_external_urls_are_valid_only_when_declared_reachable(api: Api) -> None:
    task = photomaker_task(inputImages=["https://example.com/face.jpg"])
    assert (await api.post([task]))[0] == 400
    api.state.settings.external_urls_reachable = True
    status, body, _ = await api.post([dict(task, taskUUID=str(uuid.uuid4()))])
    assert status == 200 and len(body["data"][0]["inputImagesUUID"]) == 1


async def test_own_url_of_unknown_image_is_unreachable(api: Api) -> None:
    task = photomaker_task(inputImages=[f"{api.base}/image/ws/0.5/ii/{uuid.uuid4()}.jpg"])
    status, body, _ = await api.post([task])
    assert (status, body["errors"][0]["code"]) == (400, "invalidInputImages")


# -- taskUUID conflicts, async delivery and getResponse ----------------------------------------------------


async def test_conflict_for_a_task_uuid_in_flight(api: Api) -> None:
    api.state.settings.run_time = 0.3
    task = photomaker_task(deliveryMethod="async")
    assert (await api.post([task]))[0] == 200
    status, body, _ = await api.post([task])
    assert status == 409
    assert body["errors"][0]["code"] == "conflictTaskUUID" and body["errors"][0]["taskUUID"] == task["taskUUID"]
    # Twice in one request: the second copy conflicts with the first.
    twin = photomaker_task(deliveryMethod="async")
    status, body, _ = await api.post([twin, twin])
    assert status == 200 and [error["code"] for error in body["errors"]] == ["conflictTaskUUID"]
    assert api.state.counters["conflicts"] == 2


async def test_finished_task_uuid_may_be_reused_unless_configured(api: Api) -> None:
    task = photomaker_task()
    assert (await api.post([task]))[0] == 200
    assert (await api.post([task]))[0] == 200
    api.emulator.options.reject_reused_task_uuid = True
    assert (await api.post([task]))[0] == 409


async def test_get_response_lifecycle(api: Api) -> None:
    api.state.settings.queue_time = 0.05
    api.state.settings.run_time = 0.2
    task = photomaker_task(deliveryMethod="async", numberResults=2, includeCost=True, seed=7)
    status, body, _ = await api.post([task])
    assert (status, body) == (200, {"data": [{"taskType": "photoMaker", "taskUUID": task["taskUUID"]}]})
    poll = {"taskType": "getResponse", "taskUUID": task["taskUUID"]}
    _, body, _ = await api.post([poll])
    assert [item["status"] for item in body["data"]] == ["processing", "processing"]
    assert all(item["taskUUID"] == task["taskUUID"] and item["taskType"] == "photoMaker" for item in body["data"])
    await asyncio.sleep(0.35)
    status, body, _ = await api.post([poll])
    assert status == 200
    assert [(item["status"], item["seed"], item["cost"]) for item in body["data"]] == [
        ("success", 7, 0.0013), ("success", 8, 0.0013)]
    # Cumulative: polling again returns the same items.
    assert (await api.post([poll]))[1] == body
    assert decode((await api.get(body["data"][0]["imageURL"]))[1]).size == (128, 128)
    assert api.state.counters["jobs_completed"] == 1


async def test_get_response_reports_images_as_they_are_ready(api: Api) -> None:
    api.state.settings.run_time = 0.6
    task = photomaker_task(deliveryMethod="async", numberResults=2)
    await api.post([task])
    await asyncio.sleep(0.4)
    _, body, _ = await api.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert [item["status"] for item in body["data"]] == ["success", "processing"]
    assert 50 <= body["data"][1]["progress"] < 100


async def test_get_response_for_unknown_task(api: Api) -> None:
    missing = str(uuid.uuid4())
    status, body, _ = await api.post([{"taskType": "getResponse", "taskUUID": missing}])
    assert status == 404
    assert body["errors"][0] == {
        "code": "taskNotFound", "message": body["errors"][0]["message"], "parameter": "taskUUID",
        "type": "string", "taskType": "getResponse", "taskUUID": missing}


# -- job faults --------------------------------------------------------------------------------------------


async def test_fail_job_over_rest_and_get_response(api: Api) -> None:
    api.state.settings.faults = [Fault("fail_job", message="GPU fell over")]
    status, body, _ = await api.post([photomaker_task()])
    assert status == 500
    assert body["errors"][0]["code"] == "inferenceError" and body["errors"][0]["message"] == "GPU fell over"
    task = photomaker_task(deliveryMethod="async")
    assert (await api.post([task]))[0] == 200
    await asyncio.sleep(0.05)
    _, body, _ = await api.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert body["data"] == [{"taskType": "photoMaker", "taskUUID": task["taskUUID"], "status": "error",
                             "error": {"code": "inferenceError", "message": "GPU fell over"}}]
    assert api.state.counters["jobs_failed"] == 2


async def test_stuck_job_hangs_rest_and_stays_processing(api: Api) -> None:
    api.state.settings.faults = [Fault("stuck_job")]
    with pytest.raises(asyncio.TimeoutError):
        await api.post([photomaker_task()], timeout=0.3)
    task = photomaker_task(deliveryMethod="async")
    await api.post([task])
    await asyncio.sleep(0.1)
    _, body, _ = await api.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
    assert [item["status"] for item in body["data"]] == ["processing"]
    # Still in flight, so the same taskUUID conflicts.
    assert (await api.post([task]))[0] == 409


@pytest.mark.parametrize(("fault", "delivered"), [(Fault("partial"), 2), (Fault("partial", images=1), 1)])
async def test_partial_job_delivers_fewer_images(api: Api, fault: Fault, delivered: int) -> None:
    api.state.settings.faults = [fault]
    status, body, _ = await api.post([photomaker_task(numberResults=3, seed=5)])
    assert status == 200
    assert [item["seed"] for item in body["data"]] == [5, 6, 7][:delivered]


async def test_job_faults_apply_over_websocket(api: Api) -> None:
    api.state.settings.faults = [Fault("fail_job", nth=1), Fault("partial", nth=1), Fault("stuck_job", nth=1)]
    socket = await api.socket()
    failing, partial, stuck = (photomaker_task(numberResults=2) for _ in range(3))
    await socket.send(failing)
    await socket.send(partial)
    await socket.send(stuck)
    [frame] = await socket.frames_for(failing["taskUUID"], 1)
    assert frame["errors"][0]["code"] == "inferenceError"
    [frame] = await socket.frames_for(partial["taskUUID"], 1)
    assert len(frame["data"]) == 1
    with pytest.raises(asyncio.TimeoutError):
        await socket.frames_for(partial["taskUUID"], 1, timeout=0.2)
    with pytest.raises(asyncio.TimeoutError):
        await socket.frames_for(stuck["taskUUID"], 1, timeout=0.1)


# -- HTTP faults -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [
    (401, "invalidApiKey"), (402, "insufficientCredits"), (408, "timeoutProvider"), (409, "conflictTaskUUID"),
    (429, "rateLimitExceeded"), (500, "internalServerError"), (502, "serviceUnavailable"),
    (503, "serviceUnavailable"), (504, "timeoutProvider"),
])
async def test_status_fault_answers_in_runware_shape(api: Api, status: int, code: str) -> None:
    api.state.settings.faults = [Fault("status", status=status, retry_after=2, times=1)]
    answer, body, headers = await api.post([photomaker_task()])
    assert answer == status
    assert headers["Retry-After"] == "2"
    [error] = body["errors"]
    assert error["code"] == code and error["message"]
    assert (await api.post([photomaker_task()]))[0] == 200


async def test_status_fault_uses_the_fault_message(api: Api) -> None:
    api.state.settings.faults = [Fault("status", status=402, message="Balance is zero")]
    _, body, _ = await api.post([photomaker_task()])
    assert body["errors"][0] == {"code": "insufficientCredits", "message": "Balance is zero"}


async def test_drop_fault_resets_the_connection(api: Api) -> None:
    api.state.settings.faults = [Fault("drop", times=1)]
    with pytest.raises(aiohttp.ClientError):
        await api.post([photomaker_task()])
    assert (await api.post([photomaker_task()]))[0] == 200


async def test_malformed_fault_answers_broken_json(api: Api) -> None:
    api.state.settings.faults = [Fault("malformed", times=1)]
    status, body, _ = await api.post([photomaker_task()])
    assert status == 200 and isinstance(body, str)
    with pytest.raises(ValueError):
        json.loads(body)


async def test_faults_never_touch_served_images(api: Api) -> None:
    _, body, _ = await api.post([photomaker_task()])
    api.state.settings.faults = [Fault("status", status=503)]
    assert (await api.get(body["data"][0]["imageURL"]))[0] == 200


async def test_status_fault_on_the_websocket_upgrade(api: Api) -> None:
    api.state.settings.faults = [Fault("status", status=429, method="GET", times=1)]
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await api.socket()
    assert caught.value.status == 429
    await api.socket()


# -- WebSocket ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/v1"])
async def test_websocket_handshake_and_photomaker(api: Api, path: str) -> None:
    socket = await api.socket(authenticate=False, path=path)
    answer = await socket.authenticate(api.state.settings.api_key)
    assert answer == {"data": [{"taskType": "authentication",
                                "connectionSessionUUID": answer["data"][0]["connectionSessionUUID"]}]}
    task = photomaker_task(numberResults=3, includeCost=True)
    await socket.send(task)
    frames = await socket.frames_for(task["taskUUID"], 3)
    # One frame per image (runware.md §3.2).
    assert [len(frame["data"]) for frame in frames] == [1, 1, 1]
    assert len({frame["data"][0]["imageUUID"] for frame in frames}) == 3
    assert api.state.counters["tasks:photoMaker"] == 1
    await asyncio.sleep(0.05)
    assert api.state.counters["jobs_completed"] == 1
    logged = [json.loads(entry.body) for entry in api.state.log if entry.method == "WS"]
    assert [frame[0]["taskType"] for frame in logged] == ["authentication", "photoMaker"]


@pytest.mark.parametrize(("api_key", "code"), [("wrong-key", "invalidApiKey"), (None, "missingApiKey")])
async def test_websocket_auth_failure_then_retry(api: Api, api_key: str | None, code: str) -> None:
    socket = await api.socket(authenticate=False)
    task: dict[str, Any] = {"taskType": "authentication"}
    if api_key is not None:
        task["apiKey"] = api_key
    await socket.send(task)
    answer = await socket.next()
    assert answer == {"errors": [{"code": code, "message": answer["errors"][0]["message"], "parameter": "apiKey",
                                  "type": "string", "taskType": "authentication"}]}
    # The socket stays open (RunwareOptions.close_after_auth_failure) and a good key then works.
    answer = await socket.authenticate(api.state.settings.api_key)
    assert "connectionSessionUUID" in answer["data"][0]


@pytest.mark.parametrize("options", [RunwareOptions(close_after_auth_failure=True)])
async def test_websocket_can_close_after_auth_failure(api: Api) -> None:
    socket = await api.socket(authenticate=False)
    await socket.send({"taskType": "authentication", "apiKey": "wrong-key"})
    assert (await socket.next())["errors"][0]["code"] == "invalidApiKey"
    message = await socket.socket.receive(timeout=2)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)


async def test_websocket_ping_before_and_after_auth(api: Api) -> None:
    socket = await api.socket(authenticate=False)
    await socket.send({"taskType": "ping", "ping": True})
    assert await socket.next() == {"data": [{"taskType": "ping", "pong": True}]}
    # The legacy SDK's order: auth and ping back to back, before the auth reply (runware.md §3.3).
    await socket.send({"taskType": "authentication", "apiKey": api.state.settings.api_key})
    await socket.send({"taskType": "ping", "ping": True})
    first, second = await socket.next(), await socket.next()
    assert "connectionSessionUUID" in first["data"][0] and second == {"data": [{"taskType": "ping", "pong": True}]}


async def test_websocket_task_before_auth_is_refused(api: Api) -> None:
    socket = await api.socket(authenticate=False)
    task = photomaker_task()
    await socket.send(task)
    frame = await socket.next()
    assert frame["errors"][0]["code"] == "missingApiKey" and frame["errors"][0]["taskUUID"] == task["taskUUID"]
    assert api.emulator.jobs == {}


async def test_websocket_rejects_frames_that_are_not_task_arrays(api: Api) -> None:
    socket = await api.socket()
    await socket.socket.send_str("not json")
    assert (await socket.next())["errors"][0]["code"] == "invalidPayload"
    await socket.socket.send_str('{"taskType": "ping"}')
    assert (await socket.next())["errors"][0]["code"] == "invalidPayload"


async def test_websocket_upload_async_and_get_response(api: Api) -> None:
    socket = await api.socket()
    upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": FACE_URI}
    await socket.send(upload)
    [frame] = await socket.frames_for(upload["taskUUID"], 1)
    image_uuid = frame["data"][0]["imageUUID"]
    task = photomaker_task(inputImages=[image_uuid], deliveryMethod="async", numberResults=2)
    await socket.send(task)
    [ack] = await socket.frames_for(task["taskUUID"], 1)
    assert ack == {"data": [{"taskType": "photoMaker", "taskUUID": task["taskUUID"]}]}
    await asyncio.sleep(0.1)
    await socket.send({"taskType": "getResponse", "taskUUID": task["taskUUID"]})
    [poll] = await socket.frames_for(task["taskUUID"], 1)
    # A getResponse answer holds every item in one frame (runware.md §3.2).
    assert [item["status"] for item in poll["data"]] == ["success", "success"]
    assert poll["data"][0]["inputImagesUUID"] == [image_uuid]


async def test_websocket_conflict_for_a_resent_task(api: Api) -> None:
    api.state.settings.run_time = 0.3
    socket = await api.socket()
    task = photomaker_task()
    await socket.send(task)
    await socket.send(task)
    [frame] = await socket.frames_for(task["taskUUID"], 1)
    assert frame["errors"][0]["code"] == "conflictTaskUUID"
    [frame] = await socket.frames_for(task["taskUUID"], 1)
    assert frame["data"][0]["taskUUID"] == task["taskUUID"]


async def test_websocket_session_resume_replays_buffered_results(api: Api) -> None:
    api.state.settings.run_time = 0.15
    socket = await api.socket(authenticate=False)
    session_uuid = (await socket.authenticate(api.state.settings.api_key))["data"][0]["connectionSessionUUID"]
    task = photomaker_task(numberResults=2)
    await socket.send(task)
    await socket.socket.close()
    await asyncio.sleep(0.25)
    resumed = await api.socket(authenticate=False)
    answer = await resumed.authenticate(api.state.settings.api_key, session_uuid)
    assert answer["data"][0]["connectionSessionUUID"] == session_uuid
    frames = await resumed.frames_for(task["taskUUID"], 2)
    assert [frame["data"][0]["seed"] for frame in frames] == [
        api.emulator.jobs[task["taskUUID"]].seeds[0], api.emulator.jobs[task["taskUUID"]].seeds[1]]
    assert api.state.counters["ws_resumes"] == 1


@pytest.mark.parametrize("options", [RunwareOptions(session_buffer_seconds=0.1)])
async def test_websocket_session_buffer_expires(api: Api) -> None:
    socket = await api.socket(authenticate=False)
    session_uuid = (await socket.authenticate(api.state.settings.api_key))["data"][0]["connectionSessionUUID"]
    task = photomaker_task()
    await socket.send(task)
    await socket.socket.close()
    await asyncio.sleep(0.3)
    resumed = await api.socket(authenticate=False)
    answer = await resumed.authenticate(api.state.settings.api_key, session_uuid)
    assert answer["data"][0]["connectionSessionUUID"] == session_uuid
    with pytest.raises(asyncio.TimeoutError):
        await resumed.frames_for(task["taskUUID"], 1, timeout=0.1)
    assert api.state.counters["ws_resumes"] == 0


async def test_websocket_unknown_session_uuid_is_echoed(api: Api) -> None:
    socket = await api.socket(authenticate=False)
    wanted = str(uuid.uuid4())
    answer = await socket.authenticate(api.state.settings.api_key, wanted)
    assert answer["data"][0]["connectionSessionUUID"] == wanted
    assert api.state.counters["ws_resumes"] == 0


@pytest.mark.parametrize("options", [RunwareOptions(idle_timeout=0.2)])
async def test_websocket_closes_when_idle(api: Api) -> None:
    socket = await api.socket()
    message = await socket.socket.receive(timeout=2)
    assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
    assert api.state.counters["ws_idle_closes"] == 1


async def test_plain_get_on_the_websocket_path_asks_for_an_upgrade(api: Api) -> None:
    status, body, _ = await api.get(f"{api.base}/v1")
    assert status == 426 and json.loads(body)["errors"][0]["code"] == "invalidPayload"


# -- webhooks and shutdown ---------------------------------------------------------------------------------


async def test_webhook_posts_each_image_to_a_loopback_receiver(api: Api) -> None:
    received: list[Any] = []
    attempts: list[int] = []

    async def receive(request: web.Request) -> web.Response:
        attempts.append(1)
        if len(attempts) == 1:
            return web.Response(status=503)  # first delivery is retried with backoff
        received.append(await request.json())
        return web.Response(status=200)

    receiver_app = web.Application()
    receiver_app.router.add_post("/hook", receive)
    receiver = TestServer(receiver_app, host="127.0.0.1")
    await receiver.start_server()
    try:
        task = photomaker_task(numberResults=2, webhookURL=f"http://127.0.0.1:{receiver.port}/hook?token=t")
        status, body, _ = await api.post([task])
        assert (status, body) == (200, {"data": [{"taskType": "photoMaker", "taskUUID": task["taskUUID"]}]})
        deadline = time.monotonic() + 3
        while len(received) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert [item["seed"] for item in received] == sorted(item["seed"] for item in received)
        assert all(item["taskUUID"] == task["taskUUID"] and "imageURL" in item for item in received)
        assert len(attempts) == 3
    finally:
        await receiver.close()


async def test_webhook_to_a_public_host_is_never_sent(api: Api) -> None:
    task = photomaker_task(webhookURL="https://hooks.example.com/runware")
    status, _, _ = await api.post([task])
    assert status == 200
    await asyncio.sleep(0.05)
    assert api.state.counters["webhooks_undeliverable"] == 1


async def test_shutdown_ends_stuck_requests_and_sockets(state: EmulatorState) -> None:
    state.settings.faults = [Fault("stuck_job")]
    server = TestServer(create_app(state), host="127.0.0.1")
    await server.start_server()
    emulator: RunwareEmulator = server.app[EMULATOR_KEY]
    async with aiohttp.ClientSession() as session:
        socket = Socket(await session.ws_connect(f"ws://127.0.0.1:{server.port}/v1"))
        await socket.authenticate(state.settings.api_key)
        await socket.send(photomaker_task(deliveryMethod="async", webhookURL="http://127.0.0.1:9/hook"))
        await socket.next()
        headers = {"Authorization": f"Bearer {state.settings.api_key}"}
        hanging = asyncio.ensure_future(session.post(f"http://127.0.0.1:{server.port}/v1", headers=headers,
                                                     data=json.dumps([photomaker_task()])))
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await server.close()
        assert time.monotonic() - started < 2
        assert not emulator.background and not emulator.sockets
        message = await socket.socket.receive(timeout=2)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED)
        try:
            response = await asyncio.wait_for(hanging, 2)
            response.release()
        except aiohttp.ClientError:
            pass
