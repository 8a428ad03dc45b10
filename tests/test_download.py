"""Downloading images: a failed download is a typed error, and never costs the caller a paid result."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from photomaker_bridge import AsyncBridge, GeneratedImage, PhotoMakerResult, ProviderUnavailableError


@pytest.fixture
async def image_host() -> TestServer:
    async def good(request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\nfake", content_type="image/png")

    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=403, text="<Error>AccessDenied</Error>")

    application = web.Application()
    application.router.add_get("/good.png", good)
    application.router.add_get("/gone.png", gone)
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    yield server
    await server.close()


def result_with(server: TestServer) -> PhotoMakerResult:
    base = f"http://127.0.0.1:{server.port}"
    return PhotoMakerResult(images=[GeneratedImage(url=f"{base}/good.png"),
                                    GeneratedImage(url=f"{base}/gone.png?X-Amz-Signature=secret")],
                            provider="runware", request_ids=["t1"])


async def test_fetch_failures_are_typed_and_leave_out_the_query(image_host: TestServer) -> None:
    image = result_with(image_host).images[1]
    with pytest.raises(ProviderUnavailableError) as caught:
        await image.afetch(timeout=5)
    assert caught.value.status == 403 and caught.value.code == "download_failed"
    assert "secret" not in str(caught.value)


async def test_download_keeps_the_result_when_an_image_fails(image_host: TestServer) -> None:
    async with AsyncBridge() as bridge:
        downloaded = await bridge.download(result_with(image_host), timeout=5)
    good, gone = downloaded.images
    assert good.data == b"\x89PNG\r\n\x1a\nfake"
    assert gone.data is None and gone.url is not None
    assert [warning.field for warning in downloaded.warnings] == ["images[1]"]
    assert "HTTP 403" in downloaded.warnings[0].reason
