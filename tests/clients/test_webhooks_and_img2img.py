"""Issue 8 end to end, through ``Bridge`` and ``AsyncBridge`` against the emulators: image-to-image on every
provider, fal's submit settings, ``webhook_url`` on ``submit``/``generate`` (delivered by the emulators to a
loopback receiver, parsed and verified with ``photomaker_bridge.webhooks``), and Runware's ``webhookURL`` set
through ``provider_options``."""

from __future__ import annotations

import json
import time
from typing import Any

import helpers_bridge
import pytest
import requests
from helpers_bridge import (
    OTHER_FACE,
    Client,
    adapters,
    open_client,
    photo_request,
    submitted_payloads,
    upload_requests,
)
from helpers_webhook import Receiver, receiver

from photomaker_bridge import (
    ConfigurationError,
    ContentPolicyError,
    InvalidRequestError,
    PhotoMakerResult,
    WebhookVerificationError,
)
from photomaker_bridge.emulators import Emulators
from photomaker_bridge.providers.fal import FalProvider
from photomaker_bridge.webhooks import fetch_fal_jwks, parse_webhook, verify_fal_signature

emulators, emu, mode, client = (helpers_bridge.emulators, helpers_bridge.emu, helpers_bridge.mode,
                                helpers_bridge.client)
__all__ = ["client", "emu", "emulators", "mode", "receiver"]

def _urls(result: PhotoMakerResult) -> list[str | None]:
    return [image.url for image in result.images]


# --- image-to-image ---------------------------------------------------------------------------------------


async def test_fal_uploads_a_local_initial_image_once_and_sends_its_url(client: Client, emu: Emulators) -> None:
    request = photo_request(initial_image=OTHER_FACE, initial_image_strength=0.3)
    first = await client.generate(request, "fal")
    second = await client.generate(request, "fal")

    assert len(first.images) == 2 and len(second.images) == 2
    # The zip and the initial image, each uploaded once (after one CDN token request, fal.md §3.2).
    [archive, start] = [entry for entry in upload_requests(emu.fal) if entry.path.endswith("/files/upload")]
    payloads = submitted_payloads(emu.fal)
    assert len(payloads) == 2 and payloads[0] == payloads[1]
    assert payloads[0]["initial_image_strength"] == 0.3
    assert payloads[0]["initial_image_url"].startswith(emu.fal.url)
    assert payloads[0]["initial_image_url"] != payloads[0]["image_archive_url"]
    assert OTHER_FACE in start.body and archive.body != start.body  # the initial image went up as is


async def test_fal_passes_an_initial_image_url_as_given(client: Client, emu: Emulators) -> None:
    emu.fal.settings.external_urls_reachable = True
    url = "https://example.com/start.png"
    result = await client.generate(photo_request(initial_image=url), "fal")

    assert result.images
    assert submitted_payloads(emu.fal)[0]["initial_image_url"] == url
    assert "initial_image_strength" not in submitted_payloads(emu.fal)[0]  # fal's default (0.5) applies
    assert len([entry for entry in upload_requests(emu.fal) if entry.path.endswith("/files/upload")]) == 1


@pytest.mark.parametrize("provider", ["runware", "eachlabs"])
async def test_providers_without_img2img_leave_it_out_with_a_warning(client: Client, emu: Emulators,
                                                                     provider: str) -> None:
    result = await client.generate(photo_request(initial_image=OTHER_FACE, initial_image_strength=0.4), provider)

    assert result.images
    assert [warning.field for warning in result.warnings if warning.field.startswith("initial_image")] == [
        "initial_image", "initial_image_strength"]
    assert "initial" not in json.dumps(submitted_payloads(getattr(emu, provider)))
    prompt = "rwre, a photo of a man in a spacesuit" if provider == "runware" else "a photo of a man img"
    with pytest.raises(InvalidRequestError) as caught:
        await client.generate(photo_request(prompt=prompt, initial_image=OTHER_FACE), provider, strict=True)
    assert caught.value.field == "initial_image"


# --- fal's submit settings ---------------------------------------------------------------------------------


async def test_fal_priority_hint_and_start_timeout_reach_fal_as_its_headers(mode: str, emu: Emulators) -> None:
    providers = adapters(emu)
    providers[1] = FalProvider(key=emu.fal.api_key, base_url=emu.fal.url, poll_interval=0.02, priority="low",
                               hint="face-runner-1", start_timeout=30)
    async with open_client(mode, providers) as opened:
        result = await opened.generate(photo_request(), "fal")

    assert result.images
    [submit] = [entry for entry in emu.fal.log if entry.method == "POST" and entry.path == "/fal-ai/photomaker"]
    headers = {name.lower(): value for name, value in submit.headers.items()}
    assert headers["x-fal-queue-priority"] == "low"
    assert headers["x-fal-runner-hint"] == "face-runner-1"
    assert float(headers["x-fal-request-timeout"]) == 30


@pytest.mark.parametrize(("setting", "value"), [("priority", "high"), ("hint", " "), ("start_timeout", 1),
                                                ("start_timeout", float("inf"))])
def test_fal_settings_are_checked_when_the_adapter_is_made(setting: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=setting):
        FalProvider(key="k", **{setting: value})


# --- webhooks ----------------------------------------------------------------------------------------------


async def test_fal_submit_with_a_webhook_returns_the_handle_and_fal_delivers_a_signed_result(
        client: Client, emu: Emulators, receiver: Receiver) -> None:
    handle = await client.submit(photo_request(), "fal", webhook_url=receiver.url)
    [submit] = [entry for entry in emu.fal.log if entry.method == "POST" and entry.path == "/fal-ai/photomaker"]
    assert submit.query["fal_webhook"] == receiver.url

    [(headers, body)] = receiver.wait_for(1)
    verify_fal_signature(body, headers, fetch_fal_jwks(f"{emu.fal.url}/.well-known/jwks.json"))
    delivered = parse_webhook("fal", body)
    collected = await client.result(handle)
    assert delivered.request_ids == collected.request_ids == tuple(handle.request_ids)
    assert _urls(delivered) == _urls(collected) and delivered.seed == collected.seed == 42


async def test_fal_generate_with_a_webhook_still_waits_for_the_images(client: Client, emu: Emulators,
                                                                      receiver: Receiver) -> None:
    result = await client.generate(photo_request(), "fal", webhook_url=receiver.url)
    [(_, body)] = receiver.wait_for(1)
    assert _urls(parse_webhook("fal", body)) == _urls(result) and len(result.images) == 2


def test_a_tampered_or_stale_fal_delivery_fails_verification(emu: Emulators, receiver: Receiver) -> None:
    with helpers_bridge.Bridge(providers=adapters(emu)) as bridge:
        bridge.submit(photo_request(), "fal", webhook_url=receiver.url)
    [(headers, body)] = receiver.wait_for(1)
    jwks = fetch_fal_jwks(f"{emu.fal.url}/.well-known/jwks.json")
    verify_fal_signature(body, headers, jwks)
    with pytest.raises(WebhookVerificationError, match="no key"):
        verify_fal_signature(body.replace(b'"OK"', b'"ERROR"'), headers, jwks)
    with pytest.raises(WebhookVerificationError, match="tolerance"):
        verify_fal_signature(body, headers, jwks, now=time.time() + 3600)
    with pytest.raises(WebhookVerificationError, match="x-fal-webhook-signature"):
        verify_fal_signature(body, {k: v for k, v in headers.items() if k != "x-fal-webhook-signature"}, jwks)


async def test_runware_webhook_delivers_each_image_and_result_still_collects(client: Client, emu: Emulators,
                                                                            receiver: Receiver) -> None:
    handle = await client.submit(photo_request(), "runware", webhook_url=receiver.url)
    [tasks] = submitted_payloads(emu.runware)
    assert [task["webhookURL"] for task in tasks] == [receiver.url]

    deliveries = receiver.wait_for(2)
    delivered = [parse_webhook("runware", body) for _, body in deliveries]
    collected = await client.result(handle)
    assert sorted(url for result in delivered for url in _urls(result)) == sorted(_urls(collected))
    assert all(result.cost is not None for result in delivered)


async def test_runware_generate_with_a_webhook_in_provider_options_returns_the_images(
        client: Client, emu: Emulators, receiver: Receiver) -> None:
    request = photo_request(provider_options={"runware": {"webhookURL": receiver.url}})
    result = await client.generate(request, "runware")

    assert len(result.images) == 2  # not "answered without any image": acknowledged, then polled
    assert len(receiver.wait_for(2)) == 2


async def test_eachlabs_webhook_is_refused_before_anything_is_sent(client: Client, emu: Emulators,
                                                                  receiver: Receiver) -> None:
    with pytest.raises(ConfigurationError, match="Workflows V2"):
        await client.submit(photo_request(), "eachlabs", webhook_url=receiver.url)
    assert emu.eachlabs.log == []


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "example.com/hook", "", 42])
async def test_a_webhook_url_that_is_not_http_is_refused_before_anything_is_sent(client: Client, emu: Emulators,
                                                                                url: Any) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        await client.submit(photo_request(), "fal", webhook_url=url)
    assert caught.value.field == "webhook_url"
    assert emu.fal.log == []


def test_parse_webhook_raises_the_typed_error_of_a_failed_request() -> None:
    body = {"request_id": "r-1", "gateway_request_id": "r-1", "status": "ERROR", "error": "Invalid status code: 422",
            "payload": {"detail": [{"loc": ["body", "prompt"], "msg": "unsafe", "type": "content_policy_violation"}]}}
    with pytest.raises(ContentPolicyError) as caught:
        parse_webhook("fal", json.dumps(body).encode())
    assert caught.value.status == 422 and caught.value.request_id == "r-1" and caught.value.raw == body


def test_parse_webhook_of_a_runware_error_and_of_eachlabs() -> None:
    body = {"errors": [{"code": "invalidPositivePrompt", "message": "bad prompt", "taskUUID": "t-1",
                        "taskType": "imageInference"}]}
    with pytest.raises(Exception) as caught:
        parse_webhook("runware", body)
    assert getattr(caught.value, "request_id", None) == "t-1"
    with pytest.raises(ConfigurationError, match="Workflows V2"):
        parse_webhook("eachlabs", b"{}")


def test_fetch_fal_jwks_reports_an_unreadable_answer(emu: Emulators) -> None:
    with pytest.raises(Exception, match="without a key list"):
        fetch_fal_jwks(f"{emu.fal.url}/no/such/keys")
    assert requests  # the helper uses requests, a dependency of the package
