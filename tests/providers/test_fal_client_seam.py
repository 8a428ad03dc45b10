"""The seam with fal_client (``providers/_fal_client.py``) rests on fal_client 1.0's internals: these tests fail
first if an upgrade moves them, and show what the seam promises — one try per request, failures as the bridge's
errors, and hosts rewritten for this client only."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator

import fal_client
import fal_client.client as fal_module
import pytest

from photomaker_bridge import ProviderUnavailableError, RateLimitedError
from photomaker_bridge.emulators import EmulatorHandle, Emulators, Fault, start_emulators
from photomaker_bridge.providers._fal_client import (
    AsyncFalClient,
    FalAnswered,
    FalUnreachable,
    SyncFalClient,
    mapped_errors,
)

APP = "fal-ai/photomaker"


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators(seed=17) as running:
        yield running


@pytest.fixture
def fal(emulators: Emulators) -> EmulatorHandle:
    emulators.fal.reset()
    return emulators.fal


def test_the_internals_the_seam_overrides_are_there() -> None:
    for name in ("_client", "_token_manager", "_get_cdn_client", "get_handle"):
        assert hasattr(fal_client.SyncClient, name), name
    for name in ("_client", "_token_manager", "_cdn_client", "get_handle"):
        assert hasattr(fal_client.AsyncClient, name), name
    for name in ("BackupDomainTransport", "AsyncBackupDomainTransport", "CDNTokenManager", "AsyncCDNTokenManager",
                 "CDNToken", "QUEUE_POLL_TIMEOUT", "USER_AGENT", "MAX_ATTEMPTS"):
        assert hasattr(fal_module, name), name
    assert "transport" in inspect.signature(fal_module.BackupDomainTransport).parameters
    manager = fal_module.CDNTokenManager(fal_module.AuthCredentials("Key", "id:secret"))
    assert hasattr(manager, "_refresh_token") and {"_url", "_headers"} <= set(vars(manager))
    for handle in (fal_client.SyncRequestHandle, fal_client.AsyncRequestHandle):
        fields = {field.name for field in handle.__dataclass_fields__.values()}
        assert {"client", "response_url", "cancel_url", "request_id"} <= fields


def test_a_failure_comes_back_after_one_try(fal: EmulatorHandle) -> None:
    # fal_client alone would send this submit up to ten times (MAX_ATTEMPTS, docs/protocols/fal.md §1.9).
    assert fal_module.MAX_ATTEMPTS > 1
    fal.settings.faults.append(Fault("status", status=429, retry_after=1, route=f"^/{APP}$"))
    client = SyncFalClient(fal.api_key, fal.url)
    try:
        with pytest.raises(FalAnswered) as caught:
            client.submit(APP, {"prompt": "a man img"})
        assert caught.value.status == 429 and caught.value.headers.get("retry-after") == "1"
        with pytest.raises(RateLimitedError) as mapped, mapped_errors(None, reads=False):
            raise caught.value
        assert mapped.value.retry_after == 1.0 and mapped.value.status == 429
    finally:
        client.close()
    assert fal.counters["fault:status"] == 1


def test_no_server_is_a_refused_connection_before_anything_was_sent() -> None:
    client = SyncFalClient("key:secret", "http://127.0.0.1:9")  # the discard port: nothing listens
    try:
        with pytest.raises(FalUnreachable) as caught:
            client.status(APP, "some-id")
        with pytest.raises(ProviderUnavailableError) as mapped, mapped_errors("some-id", reads=True):
            raise caught.value
        assert mapped.value.code == "connection_refused" and mapped.value.request_id == "some-id"
    finally:
        client.close()


def test_only_this_client_goes_to_the_base_url(fal: EmulatorHandle) -> None:
    before = (fal_module.QUEUE_URL_FORMAT, fal_module.RUN_URL_FORMAT, fal_module.REST_URL, fal_module.CDN_URL)

    async def upload() -> str:
        client = AsyncFalClient(fal.api_key, fal.url)
        try:
            url: str = await client.upload(b"PK\x05\x06" + bytes(18), "application/zip", "empty.zip")
            return url
        finally:
            await client.aclose()

    sync = SyncFalClient(fal.api_key, fal.url)
    try:
        assert sync.upload(b"PK\x05\x06" + bytes(18), "application/zip", "empty.zip").startswith(fal.url)
    finally:
        sync.close()
    assert asyncio.run(upload()).startswith(fal.url)
    assert before == (fal_module.QUEUE_URL_FORMAT, fal_module.RUN_URL_FORMAT, fal_module.REST_URL, fal_module.CDN_URL)
    assert fal.counters["upload_tokens"] >= 1  # the CDN token came from the emulator too
