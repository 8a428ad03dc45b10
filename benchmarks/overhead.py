"""Wall time of the bridge against a bare client doing the same work, on the local emulators.

For each provider, ``--requests`` generations at ``--concurrency`` in flight, through ``AsyncBridge`` and
through the plainest client a user would write instead:

* fal: ``fal_client.AsyncClient.subscribe`` (its default 0.1 s polling), the archive uploaded once;
* Eachlabs: a plain aiohttp create-then-poll loop (``--eachlabs-poll`` seconds between polls, default 1 s as
  on Eachlabs' own page), the photo uploaded once;
* Runware: a plain aiohttp ``POST /v1`` of the task array, the photo uploaded once.

Prints bridge seconds / baseline seconds per provider (goal: at most 1.10). Every job runs ``--run-time``
seconds in the emulator, so the ratio measures the bridge's own overhead and polling, not the provider.

    python benchmarks/overhead.py --requests 200 --concurrency 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import fal_client
from _emulator_process import eachlabs_photo_url

from photomaker_bridge import AsyncBridge, PhotoMakerRequest
from photomaker_bridge.emulators import EmulatorSettings, point_fal_client_at, start_emulators
from photomaker_bridge.images import build_data_uri, zip_images
from photomaker_bridge.samples import sample_faces


async def timed(count: int, concurrency: int, job: Callable[[int], Awaitable[Any]]) -> float:
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await job(index)

    started = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(count)))
    return time.perf_counter() - started


FACE = sample_faces()[0].read_bytes()
PROMPT = "a photo of a man img in a spacesuit"


async def fal_baseline(emulators: Any, count: int, concurrency: int) -> float:
    with point_fal_client_at(emulators.fal.url):
        client = fal_client.AsyncClient(key=emulators.fal.api_key)
        archive = await client.upload(zip_images([("jpeg", FACE)]), "application/zip", "faces.zip")
        arguments = {"image_archive_url": archive, "prompt": PROMPT, "style": "(No style)", "num_images": 1}
        return await timed(count, concurrency, lambda index: client.subscribe("fal-ai/photomaker", arguments))


async def eachlabs_baseline(emulators: Any, count: int, concurrency: int, poll: float) -> float:
    base, headers = emulators.eachlabs.url, {"X-API-Key": emulators.eachlabs.api_key}
    async with aiohttp.ClientSession(headers=headers) as session:
        photo = await eachlabs_photo_url(session, base, FACE)
        body = {"model": "photomaker-style", "version": "0.0.1",
                "input": {"input_image": photo, "prompt": PROMPT, "num_outputs": 1}}

        async def job(index: int) -> None:
            async with session.post(f"{base}/v1/prediction/", json=body) as response:
                prediction = (await response.json())["predictionID"]
            while True:
                async with session.get(f"{base}/v1/prediction/{prediction}") as response:
                    if (await response.json())["status"] in ("success", "error", "cancelled"):
                        return
                await asyncio.sleep(poll)

        return await timed(count, concurrency, job)


async def runware_baseline(emulators: Any, count: int, concurrency: int) -> float:
    url, headers = emulators.runware.rest_url, {"Authorization": f"Bearer {emulators.runware.api_key}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        upload = [{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()),
                   "image": build_data_uri(FACE, "image/jpeg")}]
        async with session.post(url, json=upload) as response:
            image = (await response.json())["data"][0]["imageUUID"]

        async def job(index: int) -> None:
            task = [{"taskType": "photoMaker", "taskUUID": str(uuid.uuid4()), "model": "civitai:139562@344487",
                     "positivePrompt": "a photo of a man rwre in a spacesuit", "inputImages": [image],
                     "style": "No style", "strength": 20, "width": 1024, "height": 1024, "numberResults": 1,
                     "includeCost": True, "outputType": "URL"}]
            async with session.post(url, json=task) as response:
                await response.read()
                response.raise_for_status()

        return await timed(count, concurrency, job)


async def bridge_run(emulators: Any, provider: str, count: int, concurrency: int) -> float:
    request = PhotoMakerRequest(prompt=PROMPT, images=[FACE])
    async with AsyncBridge(providers=emulators.providers()) as bridge:
        await bridge.generate(request, provider)  # the upload (cached afterwards), as the baselines do first
        return await timed(count, concurrency, lambda index: bridge.generate(request, provider))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--run-time", type=float, default=0.5, help="seconds each emulated job runs")
    parser.add_argument("--eachlabs-poll", type=float, default=1.0, help="the baseline loop's poll interval")
    parser.add_argument("--repeat", type=int, default=1, help="runs per measurement; the median is printed")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    settings = {name: EmulatorSettings(run_time=arguments.run_time, max_in_flight=10_000)
                for name in ("runware", "fal", "eachlabs")}
    count, concurrency = arguments.requests, arguments.concurrency
    figures: dict[str, dict[str, float]] = {}
    async with start_emulators(**settings) as emulators:
        baselines: dict[str, Callable[[], Awaitable[float]]] = {
            "fal": lambda: fal_baseline(emulators, count, concurrency),
            "eachlabs": lambda: eachlabs_baseline(emulators, count, concurrency, arguments.eachlabs_poll),
            "runware": lambda: runware_baseline(emulators, count, concurrency),
        }
        for provider, baseline in baselines.items():
            bare = statistics.median([await baseline() for _ in range(arguments.repeat)])
            bridged = statistics.median([await bridge_run(emulators, provider, count, concurrency)
                                         for _ in range(arguments.repeat)])
            figures[provider] = {"bridge_seconds": round(bridged, 3), "baseline_seconds": round(bare, 3),
                                 "ratio": round(bridged / bare, 3)}
    if arguments.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"{count} requests, {concurrency} in flight, {arguments.run_time} s per emulated job")
    print(f"{'provider':10} {'bridge s':>9} {'baseline s':>11} {'ratio':>6}")
    for provider, figure in figures.items():
        print(f"{provider:10} {figure['bridge_seconds']:9.2f} {figure['baseline_seconds']:11.2f} "
              f"{figure['ratio']:6.3f}")


if __name__ == "__main__":
    asyncio.run(main())
