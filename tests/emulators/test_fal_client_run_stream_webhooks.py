"""fal_client 1.0.3, unchanged, against the fal emulator: ``run`` (the synchronous ``fal.run`` host), the
``status/stream`` server-sent events, ``iter_events``, and webhooks delivered to a loopback receiver, signed
and retried (fal.md §1.1, §1.5, §1.12, fal.md SEED3).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import http.server
import io
import json
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import fal_client
import fal_client.client as fal_module
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from httpx_sse import connect_sse

from photomaker_bridge.emulators import Emulators, EmulatorSettings, Fault, point_fal_client_at, start_emulators
from photomaker_bridge.emulators._images import render_image

APP = "fal-ai/photomaker"
PROMPT = "portrait photo of a man img, natural light"


def faces_zip() -> bytes:
    """A zip with one PNG face at its root."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("face.png", render_image(seed=5, style="t", width=32, height=32))
    return buffer.getvalue()


def wait_for(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait until ``condition()`` holds (a generous bound, never a timing assertion)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.01)


class Receiver:
    """A loopback webhook receiver: records each POST, answers ``statuses`` in turn, then 200."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.received.append(({name.lower(): value for name, value in self.headers.items()}, body))
                self.send_response(receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fal/webhook?token=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies received so far."""
        return [json.loads(body) for _, body in self.received]


@pytest.fixture
def emulators() -> Iterator[Emulators]:
    """Fast fal jobs, pointed at by fal_client for the test."""
    with start_emulators(fal=EmulatorSettings(run_time=0.1, seed=6)) as running, \
            point_fal_client_at(running.fal.url):
        running.fal.state.settings.allow_data_uris = True
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A running webhook receiver."""
    receiver = Receiver()
    receiver.thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


@pytest.fixture
def client(emulators: Emulators) -> fal_client.SyncClient:
    """A sync fal_client with the emulator's key."""
    return fal_client.SyncClient(key=emulators.fal.api_key)


def arguments(client: fal_client.SyncClient, **extra: Any) -> dict[str, Any]:
    """PhotoMaker input with an archive uploaded through fal storage."""
    archive_url = client.upload(faces_zip(), "application/zip", file_name="faces.zip")
    return {"image_archive_url": archive_url, "prompt": PROMPT, **extra}


# ---------------------------------------------------------------------------------------------------- run

def test_run_answers_the_output_itself(client: fal_client.SyncClient, emulators: Emulators) -> None:
    output = client.run(APP, arguments(client, num_images=2, seed=9))

    assert output["seed"] == 9 and len(output["images"]) == 2
    assert output["images"][0]["url"].startswith(emulators.fal.url)
    assert emulators.fal.counters["runs"] == 1 and emulators.fal.counters["submits"] == 0
    [entry] = [entry for entry in emulators.fal.log if entry.path.startswith("/run/")]
    assert entry.path == "/run/fal-ai/photomaker"


def test_run_surfaces_the_apps_422(client: fal_client.SyncClient) -> None:
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        client.run(APP, arguments(client, num_images=9))
    assert caught.value.status_code == 422
    assert caught.value.message[0]["loc"] == ["body", "num_images"]


def test_async_run(emulators: Emulators) -> None:
    async def go() -> dict[str, Any]:
        client = fal_client.AsyncClient(key=emulators.fal.api_key)
        archive_url = await client.upload(faces_zip(), "application/zip", file_name="faces.zip")
        return await client.run(APP, {"image_archive_url": archive_url, "prompt": PROMPT, "seed": 3})

    assert asyncio.run(go())["seed"] == 3


def test_run_respects_the_start_timeout(client: fal_client.SyncClient, emulators: Emulators) -> None:
    emulators.fal.settings.queue_time = 5.0
    with pytest.raises(fal_client.client.FalClientHTTPError) as caught:
        client.run(APP, arguments(client), start_timeout=1.5)
    assert caught.value.status_code == 504
    assert caught.value.response_headers["x-fal-request-timeout-type"] == "user"


# ------------------------------------------------------------------------------------------- status stream

def test_status_stream_sends_each_status_then_closes(client: fal_client.SyncClient, emulators: Emulators) -> None:
    emulators.fal.settings.queue_time = 0.1
    handle = client.submit(APP, arguments(client))

    # fal_client's own SSE machinery (httpx_sse.connect_sse, what fal_client.stream uses) on the documented GET.
    with connect_sse(client._client, "GET", handle.status_url + "/stream", params={"logs": "1"}) as events:
        statuses = [event.json() for event in events.iter_sse()]

    assert statuses[0]["status"] == "IN_QUEUE"
    assert statuses[-1]["status"] == "COMPLETED" and statuses[-1]["logs"]
    assert "IN_PROGRESS" in [status["status"] for status in statuses]
    assert all(status["request_id"] == handle.request_id for status in statuses)
    assert emulators.fal.counters["status_streams"] == 1


def test_fal_client_stream_on_a_status_stream(client: fal_client.SyncClient, emulators: Emulators,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    handle = client.submit(APP, arguments(client))
    # fal_client.stream() always goes to RUN_URL_FORMAT: point it at the queue for this call.
    monkeypatch.setattr(fal_module, "RUN_URL_FORMAT", emulators.fal.url + "/")
    events = list(client.stream(f"{APP}/requests/{handle.request_id}", {}, path="/status/stream"))
    assert events[-1]["status"] == "COMPLETED"


def test_status_stream_of_an_unknown_request_is_404(client: fal_client.SyncClient, emulators: Emulators) -> None:
    response = client._client.get(f"{emulators.fal.url}/{APP}/requests/00000000-0000-4000-8000-000000000000"
                                  "/status/stream")
    assert response.status_code == 404


def test_status_stream_sends_keep_alive_comments(client: fal_client.SyncClient, emulators: Emulators) -> None:
    emulators.fal.options.stream_keepalive_seconds = 0.05
    emulators.fal.settings.queue_time = 0.5
    handle = client.submit(APP, arguments(client))
    with client._client.stream("GET", handle.status_url + "/stream") as response:
        lines = list(response.iter_lines())
    assert response.headers["content-type"].startswith("text/event-stream")
    assert ": keep-alive" in lines  # an SSE comment, which SSE clients skip
    assert json.loads(lines[-2].removeprefix("data: "))["status"] == "COMPLETED"


def test_iter_events_with_logs(client: fal_client.SyncClient) -> None:
    handle = client.submit(APP, arguments(client))
    events = list(handle.iter_events(with_logs=True, interval=0.01))
    assert isinstance(events[-1], fal_client.Completed) and events[-1].logs


# ------------------------------------------------------------------------------------------------ webhooks

def verify(headers: dict[str, str], body: bytes, jwks: dict[str, Any]) -> bool:
    """fal's documented verification: Ed25519 over request id, user id, timestamp and the body's SHA-256."""
    message = "\n".join([headers["x-fal-webhook-request-id"], headers["x-fal-webhook-user-id"],
                         headers["x-fal-webhook-timestamp"], hashlib.sha256(body).hexdigest()]).encode()
    signature = bytes.fromhex(headers["x-fal-webhook-signature"])
    for key in jwks["keys"]:
        public = Ed25519PublicKey.from_public_bytes(base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4)))
        try:
            public.verify(signature, message)
        except Exception:
            continue
        return True
    return False


def test_webhook_is_delivered_signed_when_the_request_completes(client: fal_client.SyncClient,
                                                                emulators: Emulators,
                                                                receiver: Receiver) -> None:
    handle = client.submit(APP, arguments(client, seed=4), webhook_url=receiver.url)
    assert emulators.fal.log[-1].query["fal_webhook"] == receiver.url

    wait_for(lambda: emulators.fal.counters["webhooks_delivered"] == 1)
    [(headers, body)] = receiver.received
    delivered = json.loads(body)
    assert delivered["request_id"] == delivered["gateway_request_id"] == handle.request_id
    assert delivered["status"] == "OK" and delivered["payload"] == handle.get()
    jwks = httpx.get(f"{emulators.fal.url}/.well-known/jwks.json").json()
    assert verify(headers, body, jwks)
    assert abs(int(headers["x-fal-webhook-timestamp"]) - time.time()) < 300
    tampered = body.replace(b'"OK"', b'"ERROR"')
    assert not verify(headers, tampered, jwks)


def test_webhook_reports_an_error_result(client: fal_client.SyncClient, emulators: Emulators,
                                         receiver: Receiver) -> None:
    client.submit(APP, arguments(client, num_images=9), webhook_url=receiver.url)
    wait_for(lambda: emulators.fal.counters["webhooks_delivered"] == 1)
    [delivered] = receiver.bodies()
    assert delivered["status"] == "ERROR" and delivered["error"] == "Invalid status code: 422"
    assert delivered["payload"]["detail"][0]["loc"] == ["body", "num_images"]


def test_webhook_is_retried_until_the_receiver_accepts_it(client: fal_client.SyncClient, emulators: Emulators,
                                                          receiver: Receiver) -> None:
    emulators.fal.options.webhook_retry_delays = (0.01, 0.01, 0.01)
    receiver.statuses = [500, 503]
    client.submit(APP, arguments(client), webhook_url=receiver.url)
    wait_for(lambda: emulators.fal.counters["webhooks_delivered"] == 1)
    assert emulators.fal.counters["webhooks_attempts_failed"] == 2
    assert len(receiver.received) == 3 and len({body for _, body in receiver.received}) == 1


def test_webhook_gives_up_after_the_last_retry(client: fal_client.SyncClient, emulators: Emulators,
                                               receiver: Receiver) -> None:
    emulators.fal.options.webhook_retry_delays = (0.01,)
    receiver.statuses = [500, 500, 500]
    client.submit(APP, arguments(client), webhook_url=receiver.url)
    wait_for(lambda: emulators.fal.counters["webhooks_failures"] == 1)
    assert len(receiver.received) == 2


def test_default_retries_are_ten_within_two_hours(emulators: Emulators) -> None:
    delays = emulators.fal.options.webhook_retry_delays
    assert len(delays) == 10 and sum(delays) <= 2 * 3600


def test_webhook_off_the_machine_is_never_contacted(client: fal_client.SyncClient, emulators: Emulators) -> None:
    client.submit(APP, arguments(client), webhook_url="https://url.to.your.app/api/fal/webhook")
    wait_for(lambda: emulators.fal.counters["webhooks_undeliverable"] == 1)


def test_webhook_of_a_cancelled_request(client: fal_client.SyncClient, emulators: Emulators,
                                        receiver: Receiver) -> None:
    emulators.fal.settings.faults = [Fault("stuck_job", times=1)]
    handle = client.submit(APP, arguments(client), webhook_url=receiver.url)
    wait_for(lambda: isinstance(handle.status(), fal_client.InProgress))
    handle.cancel()
    wait_for(lambda: emulators.fal.counters["webhooks_delivered"] == 1)
    [delivered] = receiver.bodies()
    assert delivered["status"] == "ERROR" and delivered["payload"]["error_type"] == "client_cancelled"


def test_async_submit_with_webhook(emulators: Emulators, receiver: Receiver) -> None:
    async def go() -> str:
        client = fal_client.AsyncClient(key=emulators.fal.api_key)
        archive_url = await client.upload(faces_zip(), "application/zip", file_name="faces.zip")
        handle = await client.submit(APP, {"image_archive_url": archive_url, "prompt": PROMPT},
                                     webhook_url=receiver.url)
        return handle.request_id

    request_id = asyncio.run(go())
    wait_for(lambda: emulators.fal.counters["webhooks_delivered"] == 1)
    assert receiver.bodies()[0]["request_id"] == request_id
