"""Client CPU per job and wall time: the bridge against the rawest client doing the same work.

The emulators run in a child process (``_emulator_process``), so ``time.process_time()`` of this process is the
client's CPU alone. Each round measures every contender once, in an order that alternates between rounds (the
machine's two cores are shared: interleaving spreads the noise over all of them); the figures are the medians
of the rounds and their min–max.

Contenders, all on one event loop with ``--requests`` jobs, ``--concurrency`` in flight, every job
``--run-time`` seconds in the emulator, uploads done once before the rounds:

* Runware: ``AsyncBridge.generate`` vs. a plain aiohttp ``POST /v1`` of the task array, and for reference vs.
  Runware's own current SDK (``runware-sdk``, REST transport, ``deliveryMethod: "sync"``), which also takes and
  gives plain dicts but checks each answer item for errors;
* fal: ``AsyncBridge.generate`` vs. ``fal_client.AsyncClient`` submit/status/result polling every
  ``--fal-poll`` s (default 0.1 s, ``fal_client``'s own interval), and vs. ``AsyncClient.subscribe``;
* Eachlabs: ``AsyncBridge.generate`` vs. a plain aiohttp create-then-poll loop every ``--eachlabs-poll`` s
  (default 0.1 s).

Goals (issue 10): CPU per job bridge ÷ raw ≤ 1.10, wall bridge ÷ raw ≤ 1.05.

    python benchmarks/client_overhead.py --requests 100 --concurrency 20 --rounds 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import fal_client
from _emulator_process import KEY, EmulatorProcess, adapters, eachlabs_photo_url, median_range

from photomaker_bridge import AsyncBridge, PhotoMakerRequest
from photomaker_bridge.emulators import point_fal_client_at
from photomaker_bridge.images import build_data_uri, zip_images
from photomaker_bridge.samples import sample_faces

FACE = sample_faces()[0].read_bytes()
PROMPT = "a photo of a man img in a spacesuit"
Job = Callable[[], Awaitable[Any]]


async def measure(count: int, concurrency: int, job: Job) -> tuple[float, float]:
    """(CPU seconds per job, wall seconds) for ``count`` jobs, ``concurrency`` at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate:
            await job()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return (time.process_time() - cpu) / count, time.perf_counter() - wall


def runware_task(image: str) -> dict[str, Any]:
    """The task the bridge sends for the benchmark's request (its taskUUID comes per job)."""
    return {"taskType": "imageInference", "model": "civitai:139562@344487",
            "positivePrompt": "a photo of a man rwre in a spacesuit", "width": 1024, "height": 1024,
            "numberResults": 1, "outputType": "URL", "includeCost": True,
            "photoMaker": {"images": [image], "style": "No style", "strength": 20}}


async def runware_raw(session: aiohttp.ClientSession, url: str) -> tuple[Job, str]:
    upload = [{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": build_data_uri(FACE, "image/jpeg")}]
    async with session.post(url, json=upload) as response:
        image: str = (await response.json())["data"][0]["imageUUID"]

    async def job() -> None:
        task = [{**runware_task(image), "taskUUID": str(uuid.uuid4())}]
        async with session.post(url, json=task) as response:
            body = await response.json()
            response.raise_for_status()
            assert body["data"][0]["imageURL"]

    return job, image


def runware_sdk_client(url: str) -> Any:
    """Runware's current SDK (``runware-sdk``) on its REST transport, pointed at the emulator."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from runware_sdks import install_runware_importer

    install_runware_importer()  # runware-sdk and the legacy SDK share one folder: import each from its own files
    from runware.client import Runware

    return Runware(api_key=KEY, transport="rest", http_base_url=url)


def runware_sdk(client: Any, image: str) -> Job:
    """One job through Runware's own SDK, as its README shows, with the bridge's sync delivery."""
    async def job() -> None:
        items = await client.run({**runware_task(image), "deliveryMethod": "sync"})
        assert items[0]["imageURL"]

    return job


async def fal_raw(client: fal_client.AsyncClient, poll: float) -> tuple[Job, Job]:
    archive = await client.upload(zip_images([("jpeg", FACE)]), "application/zip", "faces.zip")
    arguments = {"image_archive_url": archive, "prompt": PROMPT, "style": "(No style)", "num_images": 1}

    async def polled() -> None:
        handle = await client.submit("fal-ai/photomaker", arguments)
        while not isinstance(await handle.status(), fal_client.Completed):
            await asyncio.sleep(poll)
        assert (await handle.get())["images"]

    async def subscribed() -> None:
        assert (await client.subscribe("fal-ai/photomaker", arguments))["images"]

    return polled, subscribed


async def eachlabs_raw(session: aiohttp.ClientSession, base: str, poll: float) -> Job:
    photo = await eachlabs_photo_url(session, base, FACE)
    body = {"model": "photomaker-style", "version": "0.0.1",
            "input": {"input_image": photo, "prompt": PROMPT, "num_outputs": 1}}

    async def job() -> None:
        async with session.post(f"{base}/v1/prediction/", json=body) as response:
            prediction = (await response.json())["predictionID"]
        while True:
            await asyncio.sleep(poll)
            async with session.get(f"{base}/v1/prediction/{prediction}") as response:
                answer = await response.json()
            if answer["status"] in ("success", "error", "cancelled"):
                assert answer["status"] == "success"
                return

    return job


async def run(urls: dict[str, str], arguments: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    count, concurrency = arguments.requests, arguments.concurrency
    request = PhotoMakerRequest(prompt=PROMPT, images=[FACE])
    samples: dict[str, dict[str, list[float]]] = {}
    with point_fal_client_at(urls["fal"]):
        fal = fal_client.AsyncClient(key=KEY)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {KEY}"}) as runware_session, \
                aiohttp.ClientSession(headers={"X-API-Key": KEY}) as eachlabs_session, \
                runware_sdk_client(urls["runware"] + "/v1") as sdk, \
                AsyncBridge(providers=adapters(urls, expected_seconds=arguments.run_time)) as bridge:
            polled, subscribed = await fal_raw(fal, arguments.fal_poll)
            runware_post, image = await runware_raw(runware_session, urls["runware"] + "/v1")
            contenders: dict[str, Job] = {
                "runware raw": runware_post,
                "runware SDK": runware_sdk(sdk, image),
                "fal submit/status/result": polled,
                "fal subscribe": subscribed,
                "eachlabs raw": await eachlabs_raw(eachlabs_session, urls["eachlabs"], arguments.eachlabs_poll),
            }
            for provider in ("runware", "fal", "eachlabs"):
                contenders[f"{provider} bridge"] = lambda provider=provider: bridge.generate(request, provider)
            for job in contenders.values():  # warm up: connections, uploads, learned job lengths
                await measure(concurrency, concurrency, job)
            names = list(contenders)
            for round_number in range(arguments.rounds):
                order = names if round_number % 2 == 0 else names[::-1]
                for name in order:
                    cpu, wall = await measure(count, concurrency, contenders[name])
                    samples.setdefault(name, {"cpu": [], "wall": []})
                    samples[name]["cpu"].append(cpu * 1000)
                    samples[name]["wall"].append(wall)
                print(f"round {round_number + 1}/{arguments.rounds} done", flush=True)
    return samples


PAIRS = (("runware", "runware raw"), ("fal", "fal submit/status/result"), ("fal", "fal subscribe"),
         ("eachlabs", "eachlabs raw"), ("runware", "runware SDK"))
REFERENCE = {"runware SDK"}
"""Pairs printed for reference, with no goal: the goals are against the rawest clients."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--run-time", type=float, default=0.3, help="seconds each emulated job runs")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--fal-poll", type=float, default=0.1)
    parser.add_argument("--eachlabs-poll", type=float, default=0.1)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    with EmulatorProcess([{"run_time": arguments.run_time}]) as emulators:
        samples = asyncio.run(run(emulators.urls[0], arguments))
    ratios: dict[str, dict[str, list[float]]] = {}
    for provider, raw in PAIRS:
        bridge = samples[f"{provider} bridge"]
        ratios[f"{provider} ÷ {raw}"] = {
            key: [ours / theirs for ours, theirs in zip(bridge[key], samples[raw][key], strict=True)]
            for key in ("cpu", "wall")}
    if arguments.json:
        print(json.dumps({"samples": samples, "ratios": ratios}, indent=2))
        return
    print(f"\n{arguments.requests} jobs per measurement, {arguments.concurrency} in flight, {arguments.run_time} s "
          f"per emulated job, {arguments.rounds} interleaved rounds; median (min–max)")
    print(f"{'contender':28} {'CPU ms/job':>24} {'wall s':>24}")
    for name, figures in samples.items():
        print(f"{name:28} {median_range(figures['cpu']):>24} {median_range(figures['wall']):>24}")
    print(f"\n{'ratio (per round)':44} {'CPU (goal ≤ 1.10)':>24} {'wall (goal ≤ 1.05)':>24}")
    for name, figures in ratios.items():
        cpu, wall = statistics.median(figures["cpu"]), statistics.median(figures["wall"])
        verdict = ("(reference)" if name.split(" ÷ ")[1] in REFERENCE else
                   f"{'ok' if cpu <= 1.10 else 'MISS'}/{'ok' if wall <= 1.05 else 'MISS'}")
        print(f"{name:44} {median_range(figures['cpu']):>24} {median_range(figures['wall']):>24}  {verdict}")


if __name__ == "__main__":
    main()
