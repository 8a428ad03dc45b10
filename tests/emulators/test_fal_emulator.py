"""The fal emulator on the wire: queue protocol, auth, storage, archive checks and fault injection.

Each test runs the emulator on loopback (``aiohttp.test_utils.TestServer``) and speaks raw HTTP to it, so
the assertions are about exactly what fal sends (fal.md §1, §3, §7). Input validation has its own file.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import struct
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from PIL import Image

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, Fault
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.fal import FAL_EMULATOR_KEY, FalEmulator, FalOptions, create_app

API_KEY = "test-key-id:test-key-secret"
AUTH = {"Authorization": f"Key {API_KEY}"}
PROMPT = "portrait photo of a woman img, natural light"


def png_face(seed: int = 1) -> bytes:
    """A small PNG standing in for a face photo."""
    return render_image(seed=seed, style="test", width=16, height=16)


def jpeg_face() -> bytes:
    """A small JPEG standing in for a face photo."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 150, 120)).save(buffer, format="JPEG")
    return buffer.getvalue()


def webp_face() -> bytes:
    """A small WEBP picture (not an accepted face format)."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 150, 120)).save(buffer, format="WEBP")
    return buffer.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    """A zip holding ``members`` (name -> content)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


class Api:
    """Raw HTTP calls to the emulator, with fal's API key unless told otherwise."""

    def __init__(self, session: aiohttp.ClientSession, base: str, app: web.Application) -> None:
        self.session = session
        self.base = base
        self.emulator: FalEmulator = app[FAL_EMULATOR_KEY]

    async def call(self, method: str, url: str, *, headers: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        """``(status, JSON body or text, headers)``."""
        if not url.startswith("http"):
            url = self.base + url
        async with self.session.request(method, url, headers=AUTH if headers is None else headers,
                                        **kwargs) as response:
            raw = await response.read()
            try:
                body: Any = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            return response.status, body, dict(response.headers)

    async def upload(self, data: bytes, content_type: str = "application/zip", name: str = "faces.zip") -> str:
        """Upload through the CDN flow (token, then ``/files/upload``); the access URL."""
        status, token, _ = await self.call("POST", "/storage/auth/token?storage_type=fal-cdn-v3", json={})
        assert status == 200
        headers = {"Authorization": f"Bearer {token['token']}", "Content-Type": content_type,
                   "X-Fal-File-Name": name}
        status, body, _ = await self.call("POST", "/files/upload", headers=headers, data=data)
        assert status == 200, body
        return str(body["access_url"])

    async def submit(self, payload: Any, path: str = "/fal-ai/photomaker", **kwargs: Any) -> dict[str, Any]:
        """Submit and return the submit answer (asserting it was accepted)."""
        status, body, headers = await self.call("POST", path, json=payload, **kwargs)
        assert status == 200, body
        assert headers["x-fal-request-id"] == body["request_id"]
        return dict(body)

    async def status(self, submitted: dict[str, Any], logs: str | None = None) -> tuple[int, dict[str, Any]]:
        """Status code and body of the request's status."""
        url = submitted["status_url"] + ("" if logs is None else f"?logs={logs}")
        status, body, _ = await self.call("GET", url)
        return status, body

    async def wait_completed(self, submitted: dict[str, Any], timeout: float = 3.0) -> dict[str, Any]:
        """Poll the status until COMPLETED; the final status body."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            _, body = await self.status(submitted)
            if body["status"] == "COMPLETED":
                return body
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.01)

    async def result(self, submitted: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        """Wait for completion, then fetch the result."""
        await self.wait_completed(submitted)
        return await self.call("GET", submitted["response_url"])

    async def valid_payload(self, **overrides: Any) -> dict[str, Any]:
        """A payload that passes every check, with an uploaded archive."""
        url = await self.upload(make_zip({"face.png": png_face()}))
        return {"image_archive_url": url, "prompt": PROMPT, **overrides}


@pytest.fixture
def state() -> EmulatorState:
    return EmulatorState("fal", EmulatorSettings(api_key=API_KEY, queue_time=0.0, run_time=0.0, seed=7))


@pytest.fixture
def options() -> FalOptions:
    return FalOptions()


@pytest.fixture
async def api(state: EmulatorState, options: FalOptions) -> AsyncIterator[Api]:
    app = create_app(state, options=options)
    async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
        yield Api(session, str(server.make_url("")).rstrip("/"), app)


# -- submit -------------------------------------------------------------------------------------------------


async def test_submit_answers_in_queue_with_urls_on_the_emulator_origin(api: Api, state: EmulatorState) -> None:
    submitted = await api.submit({"anything": "is accepted at submit"})
    request_id = submitted["request_id"]
    base = f"{api.base}/fal-ai/photomaker/requests/{request_id}"
    assert submitted == {"status": "IN_QUEUE", "request_id": request_id, "response_url": base,
                         "status_url": base + "/status", "cancel_url": base + "/cancel", "queue_position": 0}
    assert state.counters["submits"] == 1


async def test_submit_accepts_a_subpath_and_a_trailing_slash(api: Api) -> None:
    slashed = await api.submit(await api.valid_payload(), path="/fal-ai/photomaker/")
    status, body, _ = await api.result(slashed)
    assert status == 200 and len(body["images"]) == 1
    # Status/result URLs never carry the sub-path (fal.md §1.1); the app has no such route: FastAPI's 404.
    subpath = await api.submit(await api.valid_payload(), path="/fal-ai/photomaker/some/route?fal_webhook=x")
    assert subpath["status_url"].endswith(f"/fal-ai/photomaker/requests/{subpath['request_id']}/status")
    assert api.emulator.jobs[subpath["request_id"]].webhook_url == "x"
    assert (await api.result(subpath))[:2] == (404, {"detail": "Not Found"})


async def test_queue_routes_accept_trailing_slashes(api: Api) -> None:
    submitted = await api.submit(await api.valid_payload())
    await api.wait_completed(submitted)
    status, body, _ = await api.call("GET", submitted["status_url"] + "/")
    assert (status, body["status"]) == (200, "COMPLETED")
    status, body, _ = await api.call("GET", submitted["response_url"] + "/")
    assert status == 200 and body["images"]
    status, body, _ = await api.call("PUT", submitted["cancel_url"] + "/")
    assert (status, body) == (400, {"status": "ALREADY_COMPLETED"})


async def test_unknown_application_is_404(api: Api) -> None:
    status, body, _ = await api.call("POST", "/fal-ai/flux", json={})
    assert status == 404 and "fal-ai/flux" in body["detail"]


@pytest.mark.parametrize("header", ["", "Key wrong:key", f"Bearer {API_KEY}", API_KEY, "Key"])
async def test_every_api_route_requires_the_key(api: Api, header: str) -> None:
    submitted = await api.submit({"prompt": PROMPT})
    headers = {"Authorization": header} if header else {}
    calls = [("POST", "/fal-ai/photomaker"), ("GET", submitted["status_url"]), ("GET", submitted["response_url"]),
             ("PUT", submitted["cancel_url"]), ("POST", "/storage/auth/token"),
             ("POST", "/storage/upload/initiate")]
    for method, url in calls:
        status, body, _ = await api.call(method, url, headers=headers, json={})
        assert (status, body) == (401, {"detail": "Unauthorized"}), (method, url)


async def test_invalid_request_timeout_header_is_bad_request(api: Api) -> None:
    status, body, headers = await api.call("POST", "/fal-ai/photomaker", json={},
                                           headers={**AUTH, "X-Fal-Request-Timeout": "soon"})
    assert (status, body) == (400, {"detail": "Invalid X-Fal-Request-Timeout header", "error_type": "bad_request"})
    assert headers["X-Fal-Error-Type"] == "bad_request"


async def test_request_timeout_expires_in_the_queue(api: Api, state: EmulatorState) -> None:
    state.settings.queue_time = 10.0
    submitted = await api.submit(await api.valid_payload(), headers={**AUTH, "X-Fal-Request-Timeout": "0.05"})
    final = await api.wait_completed(submitted)
    assert (final["error"], final["error_type"], final["metrics"]) == ("Request timed out", "request_timeout", {})
    status, body, headers = await api.call("GET", submitted["response_url"])
    assert (status, body) == (504, {"detail": "Request timed out", "error_type": "request_timeout"})
    assert headers["X-Fal-Request-Timeout-Type"] == "user" and headers["X-Fal-Error-Type"] == "request_timeout"


# -- status -------------------------------------------------------------------------------------------------


async def test_status_goes_queued_then_running_then_completed(api: Api, state: EmulatorState) -> None:
    state.settings.queue_time = 0.15
    state.settings.run_time = 0.3
    submitted = await api.submit(await api.valid_payload())
    seen: dict[str, tuple[int, dict[str, Any]]] = {}
    while "COMPLETED" not in seen:
        code, body = await api.status(submitted, logs="1")
        seen.setdefault(body["status"], (code, body))
        await asyncio.sleep(0.02)
    code, queued = seen["IN_QUEUE"]
    assert code == 202 and queued["queue_position"] == 0 and "logs" not in queued
    code, running = seen["IN_PROGRESS"]
    assert code == 202 and "queue_position" not in running and "metrics" not in running
    assert all(set(entry) == {"message", "level", "source", "timestamp"} for entry in running["logs"])
    code, completed = seen["COMPLETED"]
    assert code == 200 and completed["metrics"] == {"inference_time": 0.3}
    assert "error" not in completed and len(completed["logs"]) > len(running["logs"])
    for body in (queued, running, completed):
        assert body["request_id"] == submitted["request_id"]
        assert {body["response_url"], body["status_url"], body["cancel_url"]} == {
            submitted["response_url"], submitted["status_url"], submitted["cancel_url"]}
    timestamp = datetime.fromisoformat(completed["logs"][0]["timestamp"]).replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - timestamp).total_seconds()) < 60
    assert state.counters["status_polls"] >= 3


async def test_queue_position_counts_down(api: Api, state: EmulatorState) -> None:
    submitted = []
    for queue_time in (0.15, 0.3, 0.45):  # drawn at submit: the three leave the queue 0.15 s apart
        state.settings.queue_time = queue_time
        submitted.append(await api.submit({"prompt": PROMPT}))
    assert [answer["queue_position"] for answer in submitted] == [0, 1, 2]
    last = submitted[-1]
    observed = []
    while True:
        _, body = await api.status(last)
        if body["status"] != "IN_QUEUE":
            break
        observed.append(body["queue_position"])
        await asyncio.sleep(0.02)
    assert observed[0] == 2 and sorted(set(observed), reverse=True) == [2, 1, 0]
    assert observed == sorted(observed, reverse=True)


@pytest.mark.parametrize(("value", "logs_expected"), [
    (None, False), ("1", True), ("true", True), ("True", True), ("0", False), ("false", False)])
async def test_logs_query_parameter(api: Api, value: str | None, logs_expected: bool) -> None:
    submitted = await api.submit(await api.valid_payload())
    await api.wait_completed(submitted)
    code, body = await api.status(submitted, logs=value)
    assert code == 200
    if logs_expected:
        assert body["logs"] and body["logs"][-1]["message"].startswith("Generated 1 image(s)")
    else:
        assert body["logs"] is None


async def test_unparsable_logs_parameter_is_422(api: Api) -> None:
    code, body = await api.status(await api.submit({}), logs="maybe")
    assert code == 422 and body["detail"][0]["loc"] == ["query", "logs"]


async def test_unknown_request_ids(api: Api) -> None:
    base = f"{api.base}/fal-ai/photomaker/requests/00000000-0000-4000-8000-000000000000"
    assert (await api.call("GET", base + "/status"))[:2] == (404, {"detail": "Request not found"})
    assert (await api.call("GET", base))[:2] == (404, {"detail": "Request not found"})
    assert (await api.call("PUT", base + "/cancel"))[:2] == (404, {"status": "NOT_FOUND"})
    # A known id under another app is unknown there.
    submitted = await api.submit({})
    other = submitted["status_url"].replace("/fal-ai/photomaker/", "/fal-ai/other/")
    assert (await api.call("GET", other))[0] == 404


# -- result -------------------------------------------------------------------------------------------------


async def test_result_before_completion_is_400(api: Api, state: EmulatorState) -> None:
    state.settings.queue_time = 5.0
    submitted = await api.submit({})
    status, body, _ = await api.call("GET", submitted["response_url"])
    assert (status, body) == (400, {"detail": "Request is still in progress"})


async def test_success_result_serves_real_pngs(api: Api, state: EmulatorState) -> None:
    submitted = await api.submit(await api.valid_payload(num_images=3, seed=42, style="Neonpunk"))
    status, body, headers = await api.result(submitted)
    assert status == 200 and body["seed"] == 42 and headers["x-fal-request-id"] == submitted["request_id"]
    assert len(body["images"]) == 3
    for index, image in enumerate(body["images"]):
        assert image["url"] == f"{api.base}/files/emulator/{image['file_name']}"
        assert (image["content_type"], image["width"], image["height"]) == ("image/png", 1024, 1024)
        async with api.session.get(image["url"]) as response:
            assert response.status == 200 and response.content_type == "image/png"
            data = await response.read()
        assert data == render_image(seed=42 + index, style="Neonpunk", width=1024, height=1024)
        assert image["file_size"] == len(data) and png_size(data) == (1024, 1024)
    assert len({image["url"] for image in body["images"]}) == 3
    assert state.counters["results"] == 1


async def test_seed_is_drawn_reproducibly_when_absent() -> None:
    seeds = []
    for _ in range(2):
        state = EmulatorState("fal", EmulatorSettings(api_key=API_KEY, queue_time=0.0, run_time=0.0, seed=99))
        app = create_app(state)
        async with TestServer(app, host="127.0.0.1") as server, aiohttp.ClientSession() as session:
            api = Api(session, str(server.make_url("")).rstrip("/"), app)
            _, body, _ = await api.result(await api.submit(await api.valid_payload()))
            seeds.append(body["seed"])
    assert seeds[0] == seeds[1] and isinstance(seeds[0], int)


# -- cancel -------------------------------------------------------------------------------------------------


async def test_cancel_while_queued(api: Api, state: EmulatorState) -> None:
    state.settings.queue_time = 10.0
    submitted = await api.submit(await api.valid_payload())
    status, body, _ = await api.call("PUT", submitted["cancel_url"])
    assert (status, body) == (202, {"status": "CANCELLATION_REQUESTED"})
    code, final = await api.status(submitted)
    assert code == 200 and (final["status"], final["error_type"], final["metrics"]) == (
        "COMPLETED", "client_cancelled", {})
    status, body, headers = await api.call("GET", submitted["response_url"])
    assert (status, body["error_type"], headers["X-Fal-Error-Type"]) == (499, "client_cancelled", "client_cancelled")
    assert (await api.call("PUT", submitted["cancel_url"]))[:2] == (400, {"status": "ALREADY_COMPLETED"})
    assert state.counters["cancels"] == 1


async def test_cancel_while_running(api: Api, state: EmulatorState) -> None:
    state.settings.run_time = 10.0
    submitted = await api.submit(await api.valid_payload())
    assert (await api.status(submitted))[1]["status"] == "IN_PROGRESS"
    await asyncio.sleep(0.02)
    assert (await api.call("PUT", submitted["cancel_url"]))[:2] == (202, {"status": "CANCELLATION_REQUESTED"})
    code, final = await api.status(submitted)
    assert (code, final["error_type"]) == (200, "client_cancelled")
    assert 0.02 <= final["metrics"]["inference_time"] < 10.0
    assert (await api.call("GET", submitted["response_url"]))[0] == 499


async def test_cancel_while_running_can_be_ignored_by_the_app(api: Api, state: EmulatorState,
                                                             options: FalOptions) -> None:
    options.honour_cancel_in_progress = False
    state.settings.run_time = 0.1
    submitted = await api.submit(await api.valid_payload())
    assert (await api.status(submitted))[1]["status"] == "IN_PROGRESS"
    assert (await api.call("PUT", submitted["cancel_url"]))[0] == 202
    assert (await api.status(submitted))[1]["status"] == "IN_PROGRESS"
    status, body, _ = await api.result(submitted)
    assert status == 200 and len(body["images"]) == 1


async def test_cancel_after_completion(api: Api) -> None:
    submitted = await api.submit(await api.valid_payload())
    await api.wait_completed(submitted)
    assert (await api.call("PUT", submitted["cancel_url"]))[:2] == (400, {"status": "ALREADY_COMPLETED"})


# -- storage ------------------------------------------------------------------------------------------------


async def test_storage_token(api: Api) -> None:
    status, body, _ = await api.call("POST", "/storage/auth/token?storage_type=fal-cdn-v3", json={})
    assert status == 200 and body["token_type"] == "Bearer" and body["base_url"] == api.base and body["token"]
    expires_at = datetime.fromisoformat(body["expires_at"])
    assert expires_at.tzinfo is not None and expires_at > datetime.now(UTC)


async def test_cdn_upload_and_serving(api: Api, state: EmulatorState) -> None:
    data = make_zip({"face.png": png_face()})
    url = await api.upload(data, name="../../my faces.zip")
    assert url.startswith(api.base + "/files/emulator/") and url.endswith("_my_faces.zip")
    async with api.session.get(url) as response:  # public: no key
        assert response.status == 200 and response.content_type == "application/zip"
        assert await response.read() == data
    assert state.counters["uploads"] == 1
    assert (await api.call("GET", api.base + "/files/emulator/missing.zip", headers={}))[0] == 404


@pytest.mark.parametrize("authorization", ["", "Bearer not-a-token", f"Key {API_KEY}"])
async def test_cdn_upload_requires_a_token(api: Api, authorization: str) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    status, body, _ = await api.call("POST", "/files/upload", headers=headers, data=b"zip")
    assert (status, body) == (401, {"detail": "Unauthorized"})


async def test_cdn_token_expires(api: Api, options: FalOptions) -> None:
    options.token_lifetime_seconds = 0.02
    _, token, _ = await api.call("POST", "/storage/auth/token", json={})
    await asyncio.sleep(0.05)
    status, _, _ = await api.call("POST", "/files/upload", headers={"Authorization": f"Bearer {token['token']}"},
                                  data=b"zip")
    assert status == 401


async def test_initiate_and_signed_put(api: Api, state: EmulatorState) -> None:
    status, body, _ = await api.call("POST", "/storage/upload/initiate?storage_type=gcs",
                                     json={"file_name": "faces.zip", "content_type": "application/zip"})
    assert status == 200 and body["file_url"].startswith(api.base + "/files/emulator/")
    assert body["upload_url"].startswith(api.base + "/")
    assert (await api.call("GET", body["file_url"], headers={}))[0] == 404
    data = make_zip({"face.jpg": jpeg_face()})
    # fal_client's queue client sends its Authorization: Key here; a signed URL needs none.
    status, _, _ = await api.call("PUT", body["upload_url"], headers={"Content-Type": "application/zip"}, data=data)
    assert status == 200 and state.counters["uploads"] == 1
    async with api.session.get(body["file_url"]) as response:
        assert await response.read() == data
    status, _, _ = await api.call("PUT", api.base + "/storage/upload/signed/forged", headers={}, data=data)
    assert status == 403
    submitted = await api.submit({"image_archive_url": body["file_url"], "prompt": PROMPT})
    assert (await api.result(submitted))[0] == 200


async def test_initiate_needs_a_content_type(api: Api) -> None:
    status, body, _ = await api.call("POST", "/storage/upload/initiate", json={"file_name": "faces.zip"})
    assert status == 422 and body["detail"][0]["loc"] == ["body"]


# -- the archive --------------------------------------------------------------------------------------------


async def archive_error(api: Api, url: str) -> dict[str, Any]:
    """The single 422 detail entry a request with this archive URL ends with."""
    status, body, _ = await api.result(await api.submit({"image_archive_url": url, "prompt": PROMPT}))
    assert status == 422, body
    (entry,) = body["detail"]
    assert entry["loc"] == ["body", "image_archive_url"]
    return dict(entry)


@pytest.mark.parametrize(("content", "message"), [
    (b"\x89PNG\r\n\x1a\n not a zip", "not a valid zip"),
    (make_zip({}), "no PNG or JPEG"),
    (make_zip({"notes.txt": b"hello", "face.png.txt": b"\x00\x01"}), "no PNG or JPEG"),
    (make_zip({"faces/a.png": png_face(), "faces/b.jpg": jpeg_face()}), "no PNG or JPEG"),
    (make_zip({"__MACOSX/._a.png": png_face(), ".hidden.png": png_face(), "dir/": b""}), "no PNG or JPEG"),
    (make_zip({"face.webp": webp_face()}), "no PNG or JPEG"),
], ids=["not-a-zip", "empty-zip", "non-images", "nested-only", "hidden-only", "webp-only"])
async def test_unusable_archives_are_rejected(api: Api, content: bytes, message: str) -> None:
    entry = await archive_error(api, await api.upload(content))
    assert message in entry["msg"] and entry["type"] == "value_error"


@pytest.mark.parametrize("members", [
    {"face.png": png_face()},
    {"face.jpg": jpeg_face()},
    {"a.png": png_face(1), "b.jpeg": jpeg_face(), "faces/ignored.txt": b"x", "__MACOSX/._a.png": b"x"},
], ids=["png", "jpeg", "mixed-with-extras"])
async def test_usable_archives_are_accepted(api: Api, members: dict[str, bytes]) -> None:
    submitted = await api.submit({"image_archive_url": await api.upload(make_zip(members)), "prompt": PROMPT})
    assert (await api.result(submitted))[0] == 200
    images = sum(1 for name in members if "/" not in name and not name.endswith(".txt"))
    logs = (await api.status(submitted, logs="true"))[1]["logs"]
    assert f"Loaded {images} reference image(s)" in " ".join(entry["message"] for entry in logs)


async def test_data_uri_archives(api: Api, state: EmulatorState) -> None:
    data_uri = "data:application/zip;base64," + base64.b64encode(make_zip({"face.png": png_face()})).decode()
    submitted = await api.submit({"image_archive_url": data_uri, "prompt": PROMPT})
    assert (await api.result(submitted))[0] == 200
    state.settings.allow_data_uris = False
    entry = await archive_error(api, data_uri)
    assert entry["type"] == "file_download_error" and "Data URIs are not accepted" in entry["msg"]
    state.settings.allow_data_uris = True
    assert "not valid base64" in (await archive_error(api, "data:application/zip;base64,@@@"))["msg"]


async def test_external_archive_urls(api: Api, state: EmulatorState) -> None:
    url = "https://storage.googleapis.com/falserverless/model_tests/photomaker/elon.zip"
    entry = await archive_error(api, url)
    assert entry["type"] == "file_download_error" and entry["url"].endswith("#file_download_error")
    state.settings.external_urls_reachable = True
    assert (await api.result(await api.submit({"image_archive_url": url, "prompt": PROMPT})))[0] == 200


@pytest.mark.parametrize("url", ["not a url", "ftp://127.0.0.1/faces.zip", ""])
async def test_non_http_archive_urls_are_rejected(api: Api, url: str) -> None:
    assert (await archive_error(api, url))["type"] == "file_download_error"


async def test_missing_file_on_the_emulator_is_a_download_error(api: Api) -> None:
    entry = await archive_error(api, api.base + "/files/emulator/never-uploaded.zip")
    assert entry["type"] == "file_download_error" and "404" in entry["msg"]


async def test_initial_image_is_downloaded_and_checked(api: Api) -> None:
    payload = await api.valid_payload(initial_image_url=await api.upload(png_face(), "image/png", "start.png"))
    assert (await api.result(await api.submit(payload)))[0] == 200
    payload["initial_image_url"] = await api.upload(b"plain text", "text/plain", "start.txt")
    status, body, _ = await api.result(await api.submit(payload))
    assert status == 422 and body["detail"][0]["type"] == "image_load_error"
    payload["initial_image_url"] = "https://example.invalid/start.png"
    status, body, _ = await api.result(await api.submit(payload))
    assert (status, body["detail"][0]["loc"]) == (422, ["body", "initial_image_url"])


# -- job faults ---------------------------------------------------------------------------------------------


async def test_fail_job(api: Api, state: EmulatorState) -> None:
    state.settings.run_time = 0.05
    state.settings.faults.append(Fault("fail_job", message="CUDA out of memory"))
    submitted = await api.submit(await api.valid_payload())
    final = await api.wait_completed(submitted)
    assert (final["error"], final["error_type"]) == ("CUDA out of memory", "runner_server_error")
    assert final["metrics"] == {"inference_time": 0.05}
    status, body, headers = await api.call("GET", submitted["response_url"])
    assert (status, body) == (500, {"detail": "CUDA out of memory", "error_type": "runner_server_error"})
    assert headers["X-Fal-Error-Type"] == "runner_server_error"
    # A rule that fires on the first matching job only: the job after it succeeds.
    state.settings.faults[0] = Fault("fail_job", nth=1)
    assert (await api.result(await api.submit(await api.valid_payload())))[0] == 500
    assert (await api.result(await api.submit(await api.valid_payload())))[0] == 200


async def test_stuck_job_never_finishes_until_cancelled(api: Api, state: EmulatorState) -> None:
    state.settings.faults.append(Fault("stuck_job"))
    submitted = await api.submit(await api.valid_payload())
    for _ in range(3):
        await asyncio.sleep(0.03)
        code, body = await api.status(submitted, logs="1")
        assert (code, body["status"]) == (202, "IN_PROGRESS")
    assert (await api.call("GET", submitted["response_url"]))[0] == 400
    assert (await api.call("PUT", submitted["cancel_url"]))[0] == 202
    assert (await api.wait_completed(submitted))["error_type"] == "client_cancelled"


@pytest.mark.parametrize(("fault", "delivered"), [(Fault("partial"), 2), (Fault("partial", images=0), 0),
                                                  (Fault("partial", images=1), 1)])
async def test_partial_results(api: Api, state: EmulatorState, fault: Fault, delivered: int) -> None:
    state.settings.faults.append(fault)
    status, body, _ = await api.result(await api.submit(await api.valid_payload(num_images=3)))
    assert status == 200 and len(body["images"]) == delivered


# -- HTTP faults --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "error_type"), [
    (401, None), (402, None), (408, "request_timeout"), (409, None), (429, None), (500, "internal_error"),
    (502, "runner_incomplete_response"), (503, "runner_scheduling_failure"), (504, "request_timeout")])
async def test_injected_statuses_answer_in_fal_shape(api: Api, state: EmulatorState, status: int,
                                                     error_type: str | None) -> None:
    state.settings.faults.append(Fault("status", status=status, route="^/fal-ai/", retry_after=2))
    code, body, headers = await api.call("POST", "/fal-ai/photomaker", json={})
    assert code == status and isinstance(body["detail"], str) and headers["Retry-After"] == "2"
    assert body.get("error_type") == error_type and headers.get("X-Fal-Error-Type") == error_type
    # fal's own 5xx answers carry a request id, which stops fal_client's ingress retries (fal.md §1.9).
    assert ("x-fal-request-id" in headers) == (status >= 500)
    assert state.counters["submits"] == 0


async def test_injected_status_message_and_ingress_variant(api: Api, state: EmulatorState,
                                                           options: FalOptions) -> None:
    state.settings.faults.append(Fault("status", status=503, message="Runner pool drained"))
    assert (await api.call("GET", "/fal-ai/photomaker/requests/x/status"))[1]["detail"] == "Runner pool drained"
    options.ingress_gateway_errors = True
    code, body, headers = await api.call("GET", "/fal-ai/photomaker/requests/x/status")
    assert code == 503 and "nginx" in body and "x-fal-request-id" not in headers


async def test_dropped_connection(api: Api, state: EmulatorState) -> None:
    state.settings.faults.append(Fault("drop", route="^/fal-ai/photomaker$", nth=1))
    with pytest.raises(aiohttp.ClientError):
        await api.call("POST", "/fal-ai/photomaker", json={})
    assert (await api.call("POST", "/fal-ai/photomaker", json={}))[0] == 200
    assert state.counters["submits"] == 1


async def test_malformed_answer(api: Api, state: EmulatorState) -> None:
    state.settings.faults.append(Fault("malformed", method="GET"))
    submitted = await api.submit({})
    async with api.session.get(submitted["status_url"], headers=AUTH) as response:
        assert response.status == 200
        with pytest.raises(ValueError):
            await response.json()


async def test_served_files_are_never_faulted_but_uploads_are(api: Api, state: EmulatorState) -> None:
    url = await api.upload(make_zip({"face.png": png_face()}))
    state.settings.faults.append(Fault("status", status=503))
    assert (await api.call("GET", url, headers={}))[0] == 200
    status, _, _ = await api.call("POST", "/files/upload", headers={"Authorization": "Bearer x"}, data=b"z")
    assert status == 503
