"""The Eachlabs emulator driven the way Eachlabs' own API page drives Eachlabs: plain ``requests``.

The server runs on its own event loop in a background thread, since ``requests`` blocks. These tests cover
the seed page's create-then-poll flow, both auth headers, the lifecycle and its key order, cancel in each
state, the concurrency cap, and the presign → PUT → serve → reuse path for input images.
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from aiohttp import web
from PIL import Image

from photomaker_bridge.emulators._common import EmulatorSettings, EmulatorState, Fault
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.emulators.eachlabs import EMULATOR_KEY, EachlabsOptions, create_app

API_KEY = "test-eachlabs-key"
GET_KEYS = ["id", "input", "logs", "status", "output", "metrics", "urls"]
# The seed page sleeps 1 s between polls; the emulator's jobs last 50 ms, so a shorter pause keeps the
# suite fast without changing the flow.
POLL_INTERVAL = 0.02


class ThreadedEmulator:
    """An emulator app served by an AppRunner on its own event loop in a background thread."""

    def __init__(self, state: EmulatorState, options: EachlabsOptions | None = None) -> None:
        self.state = state
        self.app = create_app(state, options)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="eachlabs-emulator", daemon=True)
        self.runner = web.AppRunner(self.app)
        self.base_url = ""

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    def start(self) -> None:
        """Start the loop thread and serve on a free loopback port."""
        self.thread.start()
        self._run(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self._run(site.start())
        host, port = self.runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"

    def stop(self) -> None:
        """Shut the server down, stop the loop and join its thread."""
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        assert not self.thread.is_alive()
        self.loop.close()

    @property
    def options(self) -> EachlabsOptions:
        """The running emulator's options (mutable)."""
        return self.app[EMULATOR_KEY].options


@pytest.fixture
def settings() -> EmulatorSettings:
    """Settings the test may change while the emulator runs."""
    return EmulatorSettings(api_key=API_KEY, seed=7)


@pytest.fixture
def emulator(settings: EmulatorSettings) -> Iterator[ThreadedEmulator]:
    """The emulator serving in a background thread, stopped and joined at teardown."""
    server = ThreadedEmulator(EmulatorState("eachlabs", settings))
    server.start()
    try:
        yield server
    finally:
        server.stop()


HEADERS = {"X-API-Key": API_KEY, "Content-Type": "application/json"}


def seed_payload(image_url: str) -> dict[str, Any]:
    """The seed page's request body, with its placeholder file values replaced by a real image URL."""
    return {
        "model": "photomaker-style",
        "version": "0.0.1",
        "input": {
            "seed": None,
            "prompt": "A photo of a person img",
            "num_steps": "20",
            "style_name": "(No style)",
            "input_image": image_url,
            "num_outputs": "1",
            "input_image2": image_url,
            "input_image3": image_url,
            "input_image4": image_url,
            "guidance_scale": "5",
            "negative_prompt": "nsfw, lowres, bad anatomy, bad hands, text, error, missing fingers, extra "
                               "digit, fewer digits, cropped, worst quality, low quality, normal quality, jpeg "
                               "artifacts, signature, watermark, username, blurry",
            "style_strength_ratio": "20",
            "disable_safety_checker": False,
        },
    }


def upload_face(base_url: str, headers: dict[str, str] | None = None) -> str:
    """Presign, PUT a PNG and return its public URL, the way Eachlabs' upload docs describe."""
    presign = requests.post(f"{base_url}/v1/upload/presign", headers=headers or HEADERS,
                            json={"content_type": "image/png", "file_type": "image",
                                  "expires_in_seconds": 604800}, timeout=5)
    assert presign.status_code == 200, presign.text
    slot = presign.json()
    face = render_image(seed=1, style="(No style)", width=64, height=64)
    put = requests.put(slot["presigned_url"], data=face,
                       headers={"Content-Type": "image/png", **slot["required_headers"]}, timeout=5)
    assert put.status_code == 200, put.text
    return str(slot["public_url"])


def poll_until_done(base_url: str, prediction_id: str, headers: dict[str, str]) -> dict[str, Any]:
    """Poll until the prediction is terminal; the last body."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result: dict[str, Any] = requests.get(f"{base_url}/v1/prediction/{prediction_id}", headers=headers,
                                              timeout=5).json()
        if result["status"] in ("success", "error", "cancelled"):
            return result
        time.sleep(POLL_INTERVAL)
    raise AssertionError("prediction did not finish")


@pytest.mark.parametrize("auth_headers", [
    {"X-API-Key": API_KEY, "Content-Type": "application/json"},
    {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
], ids=["x-api-key", "bearer"])
def test_seed_page_create_then_poll_flow_completes(emulator: ThreadedEmulator,
                                                   auth_headers: dict[str, str]) -> None:
    image_url = upload_face(emulator.base_url, auth_headers)

    # --- the seed page's create_prediction(), pointed at the emulator ---
    response = requests.post(f"{emulator.base_url}/v1/prediction/", headers=auth_headers,
                             json=seed_payload(image_url))
    prediction = response.json()
    if prediction["status"] != "success":
        raise Exception(f"Prediction failed: {prediction}")
    prediction_id = prediction["predictionID"]

    # --- the seed page's get_prediction() ---
    while True:
        result = requests.get(f"{emulator.base_url}/v1/prediction/{prediction_id}",
                              headers=auth_headers).json()
        if result["status"] == "success":
            break
        elif result["status"] == "error":
            raise Exception(f"Prediction failed: {result}")
        time.sleep(POLL_INTERVAL)

    assert list(prediction) == ["status", "message", "predictionID"]
    assert prediction["message"] == "Prediction created successfully"
    assert list(result) == GET_KEYS
    assert result["input"] == seed_payload(image_url)["input"]
    assert result["logs"] is None
    assert isinstance(result["output"], list) and len(result["output"]) == 1
    assert result["metrics"]["predict_time"] == pytest.approx(0.05)
    assert result["metrics"]["cost"] == round(0.05 * 0.00108, 6)
    assert result["urls"] == {"get": f"{emulator.base_url}/v1/prediction/{prediction_id}",
                              "cancel": f"{emulator.base_url}/v1/prediction/{prediction_id}/cancel"}
    image = requests.get(result["output"][0], timeout=5)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    picture = Image.open(io.BytesIO(image.content))
    assert picture.format == "PNG" and picture.size == (1024, 1024)


def test_lifecycle_goes_created_processing_success_with_stable_key_order(
        emulator: ThreadedEmulator, settings: EmulatorSettings) -> None:
    settings.queue_time = 0.3
    settings.run_time = 0.3
    settings.external_urls_reachable = True
    payload = {"model": "photomaker", "input": {"input_image": "https://example.com/face.jpg",
                                                 "prompt": "a woman img", "seed": 11, "num_outputs": 2}}
    prediction_id = requests.post(f"{emulator.base_url}/v1/prediction", headers=HEADERS, json=payload,
                                  timeout=5).json()["predictionID"]
    seen: list[str] = []
    bodies: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        body = requests.get(f"{emulator.base_url}/v1/prediction/{prediction_id}", headers=HEADERS,
                            timeout=5).json()
        assert list(body) == GET_KEYS
        if not seen or seen[-1] != body["status"]:
            seen.append(body["status"])
        bodies[body["status"]] = body
        if body["status"] == "success":
            break
        time.sleep(POLL_INTERVAL)
    assert seen == ["created", "processing", "success"]
    for in_flight in ("created", "processing"):
        assert bodies[in_flight]["output"] is None
        assert bodies[in_flight]["metrics"] == {}
    success = bodies["success"]
    assert success["output"] == [f"{emulator.base_url}/uploads/{prediction_id}/image_{index}.png"
                                 for index in range(2)]
    assert success["metrics"] == {"predict_time": 0.3, "cost": round(0.3 * 0.00108, 6)}
    # Output i is the seed + i picture in the model's default style ("Photographic (Default)").
    for index, url in enumerate(success["output"]):
        served = requests.get(url, timeout=5).content
        assert served == render_image(seed=11 + index, style="Photographic (Default)", width=1024, height=1024)


def test_request_id_is_echoed_or_generated(emulator: ThreadedEmulator) -> None:
    echoed = requests.get(f"{emulator.base_url}/v1/prediction/nope", headers={**HEADERS, "X-Request-Id": "r-1"},
                          timeout=5)
    generated = requests.get(f"{emulator.base_url}/v1/prediction/nope", headers=HEADERS, timeout=5)
    assert echoed.headers["X-Request-Id"] == "r-1"
    assert len(generated.headers["X-Request-Id"]) >= 16
    assert generated.status_code == 404 and generated.json() == {"error": "Prediction not found"}


# ------------------------------------------------------------------------------------------------ cancel

def create(emulator: ThreadedEmulator, **input_values: Any) -> str:
    """Create a photomaker-style prediction with an example.com face; its id."""
    body = {"model": "photomaker-style", "input": {"input_image": "https://example.com/face.jpg",
                                                    **input_values}}
    response = requests.post(f"{emulator.base_url}/v1/prediction/", headers=HEADERS, json=body, timeout=5)
    assert response.status_code == 200, response.text
    return str(response.json()["predictionID"])


def cancel(emulator: ThreadedEmulator, prediction_id: str) -> requests.Response:
    """POST the cancel route."""
    return requests.post(f"{emulator.base_url}/v1/prediction/{prediction_id}/cancel", headers=HEADERS, timeout=5)


def get(emulator: ThreadedEmulator, prediction_id: str) -> dict[str, Any]:
    """One poll."""
    body: dict[str, Any] = requests.get(f"{emulator.base_url}/v1/prediction/{prediction_id}", headers=HEADERS,
                                        timeout=5).json()
    return body


@pytest.mark.parametrize(("queue_time", "run_time", "state_before"), [
    (30.0, 0.05, "created"),
    (0.0, 30.0, "processing"),
])
def test_cancel_of_unfinished_prediction_succeeds_then_polls_cancelled(
        emulator: ThreadedEmulator, settings: EmulatorSettings, queue_time: float, run_time: float,
        state_before: str) -> None:
    settings.external_urls_reachable = True
    settings.queue_time = queue_time
    settings.run_time = run_time
    prediction_id = create(emulator)
    assert get(emulator, prediction_id)["status"] == state_before

    response = cancel(emulator, prediction_id)

    assert response.status_code == 200
    assert response.json() == {"status": "success", "message": "Prediction canceled successfully",
                               "predictionID": prediction_id}
    body = get(emulator, prediction_id)
    assert list(body) == GET_KEYS
    assert body["status"] == "cancelled"
    assert body["output"] is None
    assert body["metrics"]["cost"] == 0
    assert emulator.state.counters["cancels"] == 1


@pytest.mark.parametrize("final_state", ["success", "error", "cancelled"])
def test_cancel_of_finished_prediction_is_refused(emulator: ThreadedEmulator, settings: EmulatorSettings,
                                                  final_state: str) -> None:
    settings.external_urls_reachable = True
    prompt = "a man without trigger" if final_state == "error" else "a man img"
    if final_state == "cancelled":
        settings.queue_time = 30.0
    prediction_id = create(emulator, prompt=prompt)
    if final_state == "cancelled":
        assert cancel(emulator, prediction_id).status_code == 200
    else:
        assert poll_until_done(emulator.base_url, prediction_id, HEADERS)["status"] == final_state

    response = cancel(emulator, prediction_id)

    assert response.status_code == 400
    assert set(response.json()) == {"error"} and response.json()["error"]
    assert get(emulator, prediction_id)["status"] == final_state


def test_cancel_refusal_status_is_an_option(emulator: ThreadedEmulator, settings: EmulatorSettings) -> None:
    settings.external_urls_reachable = True
    emulator.options.terminal_cancel_status = 409
    prediction_id = create(emulator)
    poll_until_done(emulator.base_url, prediction_id, HEADERS)
    assert cancel(emulator, prediction_id).status_code == 409


def test_cancel_of_unknown_prediction_is_404(emulator: ThreadedEmulator) -> None:
    response = cancel(emulator, "00000000-0000-4000-8000-000000000000")
    assert response.status_code == 404
    assert response.json() == {"error": "Prediction not found"}


# ---------------------------------------------------------------------------------------- concurrency cap

def test_concurrency_cap_answers_429_and_creates_nothing(emulator: ThreadedEmulator,
                                                         settings: EmulatorSettings) -> None:
    settings.external_urls_reachable = True
    settings.queue_time = 30.0
    settings.max_in_flight = 3
    first = [create(emulator) for _ in range(3)]

    refused = requests.post(f"{emulator.base_url}/v1/prediction/", headers=HEADERS, timeout=5, json={
        "model": "photomaker", "input": {"input_image": "https://example.com/face.jpg"}})

    assert refused.status_code == 429
    assert refused.json() == {
        "status": 429,
        "error": "too many requests",
        "details": "Account rate limited: accounts with a balance of $10.00 or less are limited to 3 concurrent "
                   "executions. Keep your balance above $10.00 for higher concurrency, or wait for an active "
                   "execution to finish.",
    }
    assert emulator.state.counters["predictions_created"] == 3
    assert len(emulator.app[EMULATOR_KEY].predictions) == 3
    # A finished (here: cancelled) prediction frees its slot.
    assert cancel(emulator, first[0]).status_code == 200
    create(emulator)


def test_default_cap_is_ten_with_the_documented_text(emulator: ThreadedEmulator,
                                                     settings: EmulatorSettings) -> None:
    settings.external_urls_reachable = True
    settings.queue_time = 30.0
    for _ in range(10):
        create(emulator)
    refused = requests.post(f"{emulator.base_url}/v1/prediction/", headers=HEADERS, timeout=5, json={
        "model": "photomaker", "input": {"input_image": "https://example.com/face.jpg"}})
    assert refused.status_code == 429
    assert refused.json()["details"] == (
        "Account rate limited: accounts with a balance of $10.00 or less are limited to 10 concurrent "
        "executions. Keep your balance above $10.00 for higher concurrency, or wait for an active execution "
        "to finish.")


def test_finished_predictions_do_not_count_toward_the_cap(emulator: ThreadedEmulator,
                                                          settings: EmulatorSettings) -> None:
    settings.external_urls_reachable = True
    settings.max_in_flight = 1
    for _ in range(3):
        prediction_id = create(emulator)
        assert poll_until_done(emulator.base_url, prediction_id, HEADERS)["status"] == "success"


def test_stuck_job_counts_toward_the_cap_until_cancelled(emulator: ThreadedEmulator,
                                                         settings: EmulatorSettings) -> None:
    settings.external_urls_reachable = True
    settings.max_in_flight = 1
    settings.faults = [Fault("stuck_job", times=1)]
    stuck = create(emulator)
    time.sleep(0.15)  # three run times
    assert get(emulator, stuck)["status"] == "processing"
    refused = requests.post(f"{emulator.base_url}/v1/prediction/", headers=HEADERS, timeout=5, json={
        "model": "photomaker", "input": {"input_image": "https://example.com/face.jpg"}})
    assert refused.status_code == 429
    assert cancel(emulator, stuck).status_code == 200
    assert poll_until_done(emulator.base_url, create(emulator), HEADERS)["status"] == "success"


# ------------------------------------------------------------------------------------------------ uploads

def test_presign_put_serve_and_reuse_as_input_image(emulator: ThreadedEmulator) -> None:
    presign = requests.post(f"{emulator.base_url}/v1/upload/presign", headers=HEADERS, timeout=5,
                            json={"content_type": "image/jpeg", "file_type": "image"})
    assert presign.status_code == 200
    slot = presign.json()
    assert list(slot) == ["id", "presigned_url", "public_url", "expires_at", "required_headers"]
    assert slot["required_headers"] == {"x-amz-meta-file-id": slot["id"]}
    assert slot["public_url"] == f"{emulator.base_url}/uploads/{slot['id']}.jpg"
    assert slot["presigned_url"].startswith(emulator.base_url + "/")
    assert requests.get(slot["public_url"], timeout=5).status_code == 404  # nothing uploaded yet

    face = render_image(seed=3, style="(No style)", width=96, height=96, image_format="JPEG")
    put = requests.put(slot["presigned_url"], data=face,
                       headers={"Content-Type": "image/jpeg", **slot["required_headers"]}, timeout=5)
    assert put.status_code == 200 and put.headers["ETag"].startswith('"')

    served = requests.get(slot["public_url"], timeout=5)
    assert served.status_code == 200
    assert served.content == face and served.headers["Content-Type"] == "image/jpeg"
    assert emulator.state.counters["uploads"] == 1

    # external_urls_reachable is False: only the emulator's own file makes this prediction succeed.
    prediction_id = create(emulator, input_image=slot["public_url"], prompt="a man img")
    assert poll_until_done(emulator.base_url, prediction_id, HEADERS)["status"] == "success"


@pytest.mark.parametrize("mistake", ["no required header", "wrong content type", "bad signature"])
def test_put_must_honour_the_presigned_terms(emulator: ThreadedEmulator, mistake: str) -> None:
    slot = requests.post(f"{emulator.base_url}/v1/upload/presign", headers=HEADERS, timeout=5,
                         json={"content_type": "image/png"}).json()
    url = slot["presigned_url"]
    headers = {"Content-Type": "image/png", **slot["required_headers"]}
    if mistake == "no required header":
        del headers["x-amz-meta-file-id"]
    elif mistake == "wrong content type":
        headers["Content-Type"] = "image/jpeg"
    else:
        url = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")

    put = requests.put(url, data=b"\x89PNG\r\n\x1a\nrest", headers=headers, timeout=5)

    assert put.status_code == 403
    assert b"<Code>SignatureDoesNotMatch</Code>" in put.content
    assert requests.get(slot["public_url"], timeout=5).status_code == 404


def test_presign_without_content_type_is_400(emulator: ThreadedEmulator) -> None:
    response = requests.post(f"{emulator.base_url}/v1/upload/presign", headers=HEADERS, json={}, timeout=5)
    assert response.status_code == 400
    assert response.json() == {"error": "content_type is required"}


def test_presign_needs_the_api_key(emulator: ThreadedEmulator) -> None:
    response = requests.post(f"{emulator.base_url}/v1/upload/presign", json={"content_type": "image/png"},
                             timeout=5)
    assert response.status_code == 401
    assert response.json() == {"error": "Invalid or missing API key"}


def test_uploaded_file_that_is_not_an_image_fails_the_prediction(emulator: ThreadedEmulator) -> None:
    slot = requests.post(f"{emulator.base_url}/v1/upload/presign", headers=HEADERS, timeout=5,
                         json={"content_type": "image/png"}).json()
    requests.put(slot["presigned_url"], data=b"not an image",
                 headers={"Content-Type": "image/png", **slot["required_headers"]}, timeout=5)
    result = poll_until_done(emulator.base_url, create(emulator, input_image=slot["public_url"]), HEADERS)
    assert result["status"] == "error"
    assert result["output"]["error_code"] == "INPUT_VALIDATION_ERROR"


def test_an_output_image_can_be_reused_as_input(emulator: ThreadedEmulator, settings: EmulatorSettings) -> None:
    settings.external_urls_reachable = True
    first = poll_until_done(emulator.base_url, create(emulator), HEADERS)
    settings.external_urls_reachable = False
    second = poll_until_done(emulator.base_url, create(emulator, input_image=first["output"][0]), HEADERS)
    assert second["status"] == "success"
