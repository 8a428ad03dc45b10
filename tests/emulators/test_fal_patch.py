"""point_fal_client_at(): patches fal_client's four host constants and NO_PROXY, and restores them."""

from __future__ import annotations

import os
from collections.abc import Iterator

import fal_client
import fal_client.client as fal_module
import pytest

from photomaker_bridge.emulators import Emulators, point_fal_client_at, start_emulators

CONSTANTS = ("QUEUE_URL_FORMAT", "RUN_URL_FORMAT", "REST_URL", "CDN_URL")


def constants() -> dict[str, str]:
    return {name: getattr(fal_module, name) for name in CONSTANTS}


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators() as running:
        yield running


def test_patches_the_four_constants_and_restores_them() -> None:
    original = constants()
    assert original["REST_URL"] == "https://rest.fal.ai"
    with point_fal_client_at("http://127.0.0.1:8765/"):
        assert constants() == {
            "QUEUE_URL_FORMAT": "http://127.0.0.1:8765/",
            "RUN_URL_FORMAT": "http://127.0.0.1:8765/run/",
            "REST_URL": "http://127.0.0.1:8765",
            "CDN_URL": "http://127.0.0.1:8765",
        }
    assert constants() == original


def test_restores_after_an_exception_and_when_nested() -> None:
    original = constants()
    with pytest.raises(LookupError), point_fal_client_at("http://127.0.0.1:1"):
        with point_fal_client_at("http://127.0.0.1:2"):
            assert fal_module.REST_URL == "http://127.0.0.1:2"
        assert fal_module.REST_URL == "http://127.0.0.1:1"
        raise LookupError("inside the block")
    assert constants() == original


def test_no_proxy_covers_loopback_inside_and_is_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "corp.example, 127.0.0.1")
    monkeypatch.delenv("no_proxy", raising=False)
    with point_fal_client_at("http://[::1]:9000"):
        for name in ("NO_PROXY", "no_proxy"):
            assert os.environ[name] == "corp.example,127.0.0.1,localhost,::1", name
    assert os.environ["NO_PROXY"] == "corp.example, 127.0.0.1"
    assert "no_proxy" not in os.environ


def test_no_proxy_is_created_and_removed_when_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.setenv("no_proxy", "internal.example")
    with point_fal_client_at("http://127.0.0.1:9000"):
        assert os.environ["NO_PROXY"] == os.environ["no_proxy"] == "internal.example,127.0.0.1,localhost,::1"
    assert "NO_PROXY" not in os.environ
    assert os.environ["no_proxy"] == "internal.example"


@pytest.mark.parametrize("base_url", ["127.0.0.1:8000", "ftp://127.0.0.1", "http://", ""])
def test_refuses_what_is_not_an_http_url(base_url: str) -> None:
    original = constants()
    with pytest.raises(ValueError, match="http"), point_fal_client_at(base_url):
        pass
    assert constants() == original


def test_sync_client_submits_polls_and_uploads_against_the_emulator(emulators: Emulators) -> None:
    fal = emulators.fal
    with point_fal_client_at(fal.url):
        client = fal_client.SyncClient(key=fal.api_key)
        archive_url = client.upload(b"PK\x05\x06" + b"\x00" * 18, "application/zip", file_name="faces.zip")
        handle = client.submit("fal-ai/photomaker", {"prompt": "a photo of a man img", "image_archive_url": "x"})
        status = handle.status()
    assert archive_url.startswith(fal.url + "/")
    assert handle.status_url.startswith(fal.url + "/")
    assert isinstance(status, fal_client.Queued | fal_client.InProgress | fal_client.Completed)
    paths = [entry.path for entry in fal.log]
    assert "/files/upload" in paths and "/fal-ai/photomaker" in paths
    submit = next(entry for entry in fal.log if entry.path == "/fal-ai/photomaker")
    assert submit.headers["Authorization"] == f"Key {fal.api_key}"


async def test_async_client_is_refused_with_a_wrong_key(emulators: Emulators) -> None:
    with point_fal_client_at(emulators.fal.url):
        client = fal_client.AsyncClient(key="not-the-emulator-key")
        with pytest.raises(fal_client.FalClientHTTPError) as caught:
            await client.submit("fal-ai/photomaker", {"prompt": "a photo of a man img"})
    assert caught.value.status_code == 401
