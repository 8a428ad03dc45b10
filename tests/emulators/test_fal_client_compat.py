"""The official fal_client 1.0.3, unchanged, against the fal emulator (fal.md §2 option B).

fal_client is pointed at the emulator by patching its four module constants (it reads them at call time).
Every AsyncClient is created inside the test, so it belongs to that test's event loop (fal.md §6). The sync
client blocks, so its tests serve the emulator from a thread with its own loop.
"""

from __future__ import annotations

import asyncio
import io
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import fal_client
import fal_client.client as fal_module
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, Fault
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.fal import FAL_EMULATOR_KEY, create_app

API_KEY = "test-key-id:test-key-secret"
APP = "fal-ai/photomaker"
PROMPT = "instagram photo, portrait photo of a man img, colorful, perfect face, natural skin"


def faces_zip() -> bytes:
    """A zip with one PNG face photo at its root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("face.png", render_image(seed=5, style="test", width=32, height=32))
    return buffer.getvalue()


def point_fal_client_at(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    """Send every fal_client call to ``base`` for this test (restored by monkeypatch)."""
    monkeypatch.setattr(fal_module, "QUEUE_URL_FORMAT", base + "/")
    monkeypatch.setattr(fal_module, "RUN_URL_FORMAT", base + "/run/")
    monkeypatch.setattr(fal_module, "REST_URL", base)
    monkeypatch.setattr(fal_module, "CDN_URL", base)


class ThreadedServer:
    """An aiohttp application served on 127.0.0.1 from a thread running its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        self._thread = threading.Thread(target=self._loop.run_forever, name="fal-emulator", daemon=True)
        self.base = ""

    def start(self) -> None:
        """Start the loop thread and the site; returns once the server listens."""
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=5)

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        """Shut the server down, stop the loop and join the thread."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState("fal", EmulatorSettings(api_key=API_KEY, queue_time=0.03, run_time=0.08, seed=3))


@pytest.fixture
def app(state: EmulatorState) -> web.Application:
    return create_app(state)


@pytest.fixture
async def base(app: web.Application, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    async with TestServer(app, host="127.0.0.1") as server:
        url = str(server.make_url("")).rstrip("/")
        point_fal_client_at(monkeypatch, url)
        yield url


@pytest.fixture
def threaded_base(state: EmulatorState, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    server = ThreadedServer(create_app(state))
    server.start()
    point_fal_client_at(monkeypatch, server.base)
    try:
        yield server.base
    finally:
        server.stop()


@pytest.fixture
async def client(base: str) -> AsyncIterator[fal_client.AsyncClient]:
    async_client = fal_client.AsyncClient(key=API_KEY)
    yield async_client
    # fal_client has no close(); close its httpx client on this loop so nothing is left for the GC.
    if "_client" in vars(async_client):
        await (await async_client._client).aclose()


async def test_async_upload_and_subscribe(client: fal_client.AsyncClient, base: str,
                                          state: EmulatorState) -> None:
    url = await client.upload(faces_zip(), "application/zip", "faces.zip")
    assert url.startswith(base + "/files/")
    updates: list[fal_client.Status] = []
    result = await client.subscribe(APP, {"image_archive_url": url, "prompt": PROMPT, "num_images": 2,
                                          "seed": 11},
                                    with_logs=True, on_queue_update=updates.append, interval=0.01)
    assert result["seed"] == 11
    assert [image["width"] for image in result["images"]] == [1024, 1024]
    kinds = [type(update).__name__ for update in updates]
    assert kinds[0] == "Queued" and "InProgress" in kinds and kinds[-1] == "Completed"
    completed = updates[-1]
    assert isinstance(completed, fal_client.Completed)
    assert completed.metrics == {"inference_time": 0.08}
    assert completed.logs and all(entry["source"] == "USER" for entry in completed.logs)
    assert state.counters["uploads"] == 1 and state.counters["submits"] == 1


async def test_async_out_of_range_input_fails_at_result_time(client: fal_client.AsyncClient) -> None:
    url = await client.upload(faces_zip(), "application/zip", "faces.zip")
    handle = await client.submit(APP, {"image_archive_url": url, "prompt": PROMPT, "num_images": 5})
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        await handle.get(interval=0.01)
    assert caught.value.status_code == 422
    # fal_client types message as str, but for a 422 it is the detail list (fal.md §1.6).
    message: Any = caught.value.message
    assert message == [{"loc": ["body", "num_images"],
                                     "msg": "ensure this value is less than or equal to 4",
                                     "type": "value_error.number.not_le", "ctx": {"limit_value": 4}}]


async def test_async_status_result_and_cancel_by_request_id(client: fal_client.AsyncClient,
                                                            state: EmulatorState) -> None:
    state.settings.run_time = 0.2
    url = await client.upload(faces_zip(), "application/zip", "faces.zip")
    handle = await client.submit(APP, {"image_archive_url": url, "prompt": PROMPT})
    # client.status/result/cancel build URLs from QUEUE_URL_FORMAT instead of using the submit answer's.
    assert isinstance(await client.status(APP, handle.request_id), fal_client.Queued | fal_client.InProgress)
    while not isinstance(status := await client.status(APP, handle.request_id, with_logs=True),
                         fal_client.Completed):
        await asyncio.sleep(0.01)
    assert status.logs and status.metrics == {"inference_time": 0.2}
    assert len((await client.result(APP, handle.request_id))["images"]) == 1
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        await client.cancel(APP, handle.request_id)
    assert caught.value.status_code == 400


async def test_async_cancel_while_queued(client: fal_client.AsyncClient, state: EmulatorState) -> None:
    state.settings.queue_time = 30.0
    handle = await client.submit(APP, {"image_archive_url": "unused", "prompt": PROMPT})
    assert isinstance(await handle.status(), fal_client.Queued)
    await handle.cancel()
    status = await handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "client_cancelled"
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        await handle.get(interval=0.01)
    assert (caught.value.status_code, caught.value.error_type) == (499, "client_cancelled")


async def test_async_failed_job_surfaces_error_type(client: fal_client.AsyncClient, state: EmulatorState) -> None:
    state.settings.faults.append(Fault("fail_job"))
    url = await client.upload(faces_zip(), "application/zip", "faces.zip")
    handle = await client.submit(APP, {"image_archive_url": url, "prompt": PROMPT})
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        await handle.get(interval=0.01)
    assert (caught.value.status_code, caught.value.error_type) == (500, "runner_server_error")
    status = await handle.status()
    assert isinstance(status, fal_client.Completed) and status.error_type == "runner_server_error"


async def test_async_upload_falls_back_to_initiate_and_put(client: fal_client.AsyncClient, base: str,
                                                           app: web.Application, state: EmulatorState) -> None:
    # A 500 from fal's own servers is not retried, so fal_client falls back to the "fal" repository.
    state.settings.faults.append(Fault("status", status=500, route="^/files/upload$"))
    data = faces_zip()
    url = await client.upload(data, "application/zip", "faces.zip")
    assert state.counters["route:POST /files/upload"] == 1
    assert state.counters["route:POST /storage/upload/initiate"] == 1
    assert url.startswith(base + "/files/")
    assert app[FAL_EMULATOR_KEY].store.files[urlsplit(url).path].data == data
    result = await client.subscribe(APP, {"image_archive_url": url, "prompt": PROMPT}, interval=0.01)
    assert len(result["images"]) == 1


async def test_async_retries_429_and_dropped_connections(client: fal_client.AsyncClient,
                                                         state: EmulatorState) -> None:
    state.settings.faults += [Fault("status", status=429, retry_after=0, route="^/fal-ai/photomaker$", nth=1),
                              Fault("drop", route="/status$", nth=1)]
    url = await client.upload(faces_zip(), "application/zip", "faces.zip")
    result = await client.subscribe(APP, {"image_archive_url": url, "prompt": PROMPT}, interval=0.01)
    assert len(result["images"]) == 1
    assert state.counters["fault:status"] == 1 and state.counters["fault:drop"] == 1
    assert state.counters["route:POST /fal-ai/photomaker"] == 2


async def test_async_client_timeout_cancels_a_stuck_job(client: fal_client.AsyncClient,
                                                        state: EmulatorState) -> None:
    state.settings.faults.append(Fault("stuck_job"))
    url = await client.upload(faces_zip(), "application/zip", "faces.zip")
    with pytest.raises(fal_client.client.FalClientTimeoutError):
        # fal_client refuses a start timeout of 1 s or less, and client_timeout sets it.
        await client.subscribe(APP, {"image_archive_url": url, "prompt": PROMPT}, interval=0.02,
                               client_timeout=1.05)
    assert state.counters["cancels"] == 1


@pytest.fixture
def sync_client(threaded_base: str) -> Iterator[fal_client.SyncClient]:
    client = fal_client.SyncClient(key=API_KEY)
    yield client
    # fal_client has no close(); close the httpx client behind its queue calls.
    if "_client" in vars(client):
        client._client.close()


def test_sync_client_upload_subscribe_and_422(sync_client: fal_client.SyncClient, threaded_base: str) -> None:
    url = sync_client.upload(faces_zip(), "application/zip", "faces.zip")
    assert url.startswith(threaded_base + "/files/")
    result = sync_client.subscribe(APP, {"image_archive_url": url, "prompt": PROMPT, "num_images": 3},
                                   interval=0.01)
    assert len(result["images"]) == 3
    assert all(image["url"].startswith(threaded_base + "/files/") for image in result["images"])
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        sync_client.subscribe(APP, {"image_archive_url": url, "prompt": PROMPT, "num_images": 5}, interval=0.01)
    assert caught.value.status_code == 422
    message: Any = caught.value.message
    assert message[0]["loc"] == ["body", "num_images"]


def test_sync_client_wrong_key_is_401(threaded_base: str) -> None:
    client = fal_client.SyncClient(key="someone:else")
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        client.submit(APP, {"image_archive_url": "x", "prompt": PROMPT})
    assert (caught.value.status_code, caught.value.message) == (401, "Unauthorized")

