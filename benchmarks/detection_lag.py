"""How late the bridge notices that a job finished, and how many status calls it makes to notice.

Emulated jobs of about ``--durations`` seconds (default 2, 10, 21 and 73 s: short, fal-like, Eachlabs'
``photomaker-style`` and ``photomaker``), each drawn within ± ``--jitter`` s (default 0.5) so that real jobs'
lengths, which fall anywhere between two polls, are what is measured (with exact whole seconds a schedule
polling on whole seconds would look better than it is); on fal and Eachlabs, the emulators in a child process
(``_emulator_process``). The lag of one job is the time from its ``submitted`` event to its ``completed``
event, less its length as the provider reports it (fal's ``metrics.inference_time``, Eachlabs'
``metrics.predict_time``; the emulator starts the job when the submit arrives, so the lag is understated by the
submit's answer latency, about a millisecond on loopback). Status calls are counted by the emulator.

Clients measured, ``--jobs`` jobs per provider and length, all lengths at once:

* **new**: a new client per job with default settings (as every CLI run is): it knows only the adapter's
  typical time (fal 15 s, Eachlabs ``photomaker-style`` 21 s);
* **new + cache** (when the package has the learned-lengths cache): a new client whose adapter reads the lengths
  a previous client saved (``--cache`` file, written by the learned clients below);
* **learned**: one client per provider and length that has completed one such job first;
* **1 s loop**: a plain loop polling every second, for the poll counts to compare with.

Goals (issue 10): new client median lag ≤ 0.5 s and max ≤ 1.5 s at ≤ the 1 s loop's poll count; learned no
worse than before.

    python benchmarks/detection_lag.py --jobs 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import aiohttp
from _emulator_process import KEY, EmulatorProcess, adapters, eachlabs_photo_url

from photomaker_bridge import AsyncBridge, PhotoMakerRequest, ProgressEvent
from photomaker_bridge.images import build_data_uri, zip_images
from photomaker_bridge.samples import sample_faces

FACE = sample_faces()[0].read_bytes()
PROMPT = "a photo of a man img in a spacesuit"
PROVIDERS = ("fal", "eachlabs")


class Job:
    """One measured job: its request id and lag."""

    def __init__(self, mode: str, provider: str, duration: float) -> None:
        self.mode, self.provider, self.duration = mode, provider, duration
        self.request_id: str | None = None
        self.submitted = self.completed = 0.0
        self.ran: float | None = None
        """The job's length as the provider reported it."""

    def on_event(self, event: ProgressEvent) -> None:
        if event.kind == "submitted" and self.request_id is None:
            self.request_id, self.submitted = event.request_id, time.monotonic()
        elif event.kind == "completed":
            self.completed = time.monotonic()

    @property
    def lag(self) -> float:
        return self.completed - self.submitted - (self.duration if self.ran is None else self.ran)


def caching_adapters(urls: dict[str, str], cache: str | None) -> list[Any]:
    """Adapters with the learned-lengths cache file when this version of the package has one."""
    if cache is None:
        return adapters(urls)
    return adapters(urls, duration_cache=cache)


def supports_cache() -> bool:
    import attrs

    from photomaker_bridge.providers.fal import FalProvider

    return any(field.name == "duration_cache" for field in attrs.fields(FalProvider))


async def bridge_job(job: Job, bridge: AsyncBridge) -> Job:
    request = PhotoMakerRequest(prompt=PROMPT, images=[FACE])
    result = await bridge.generate(request, job.provider, on_event=job.on_event, timeout=600)
    job.ran = result.timings.run_seconds
    return job


async def new_client_job(job: Job, make: Callable[[], list[Any]]) -> Job:
    async with AsyncBridge(providers=make()) as bridge:
        return await bridge_job(job, bridge)


async def loop_job(job: Job, urls: dict[str, str], archive: str, photo: str, session: aiohttp.ClientSession) -> Job:
    if job.provider == "fal":
        # plain HTTP (fal.md §1.3-1.4): fal_client's hosts are process-wide, and each length has its own emulator
        queue, headers = f"{urls['fal']}/fal-ai/photomaker", {"Authorization": f"Key {KEY}"}
        async with session.post(queue, json={"image_archive_url": archive, "prompt": PROMPT},
                                headers=headers) as response:
            job.request_id, job.submitted = (await response.json())["request_id"], time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            async with session.get(f"{queue}/requests/{job.request_id}/status", headers=headers) as response:
                status = await response.json()
            if status["status"] == "COMPLETED":
                job.completed, job.ran = time.monotonic(), status["metrics"]["inference_time"]
                return job
    base = urls["eachlabs"]
    body = {"model": "photomaker-style", "version": "0.0.1",
            "input": {"input_image": photo, "prompt": PROMPT, "num_outputs": 1}}
    async with session.post(f"{base}/v1/prediction/", json=body) as response:
        job.request_id, job.submitted = (await response.json())["predictionID"], time.monotonic()
    while True:
        await asyncio.sleep(1.0)
        async with session.get(f"{base}/v1/prediction/{job.request_id}") as response:
            prediction = await response.json()
        if prediction["status"] in ("success", "error", "cancelled"):
            job.completed, job.ran = time.monotonic(), prediction["metrics"]["predict_time"]
            return job


async def run(emulators: EmulatorProcess, durations: list[float], count: int, cache: str | None) -> list[Job]:
    tasks: list[asyncio.Task[Job]] = []
    archive = build_data_uri(zip_images([("jpeg", FACE)]), "application/zip")
    learned: list[tuple[AsyncBridge, Job]] = []
    async with aiohttp.ClientSession(headers={"X-API-Key": KEY}) as session:
        for group, duration in enumerate(durations):
            urls = emulators.urls[group]
            photo = await eachlabs_photo_url(session, urls["eachlabs"], FACE)
            for provider in PROVIDERS:
                for _ in range(count):
                    tasks.append(asyncio.create_task(new_client_job(Job("new", provider, duration),
                                                                    lambda urls=urls: adapters(urls))))
                    tasks.append(asyncio.create_task(loop_job(Job("1 s loop", provider, duration), urls, archive,
                                                              photo, session)))
                bridge = AsyncBridge(providers=caching_adapters(urls, None if cache is None else f"{cache}.{group}"))
                learned.append((bridge, Job("learned", provider, duration)))
        # The learned clients complete one job each while the new clients run.
        warmups = [asyncio.create_task(bridge_job(job, bridge)) for bridge, job in learned]
        jobs = list(await asyncio.gather(*tasks, *warmups))[: len(tasks)]
        print("new clients and 1 s loops done; learned clients now", flush=True)
        tasks = []
        for bridge, first in learned:
            for _ in range(count):
                tasks.append(asyncio.create_task(bridge_job(Job("learned", first.provider, first.duration),
                                                            bridge)))
        if cache is not None:  # the learned clients saved their lengths: new clients start from them
            for group, duration in enumerate(durations):
                for provider in PROVIDERS:
                    # one cache file per length, since each length is a different "model" here
                    tasks += [asyncio.create_task(new_client_job(
                        Job("new + cache", provider, duration),
                        partial(caching_adapters, emulators.urls[group], f"{cache}.{group}"))) for _ in range(count)]
        jobs += await asyncio.gather(*tasks)
        for bridge, _ in learned:
            await bridge.aclose()
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=[2, 10, 21, 73])
    parser.add_argument("--jobs", type=int, default=5, help="jobs per provider, length and client kind")
    parser.add_argument("--jitter", type=float, default=0.5, help="each job's length is drawn within ± this")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    groups = [{"run_time": [duration - arguments.jitter, duration + arguments.jitter] if arguments.jitter else duration}
              for duration in arguments.durations]
    with tempfile.TemporaryDirectory() as folder, EmulatorProcess(groups) as emulators:
        cache = os.path.join(folder, "lengths.json") if supports_cache() else None
        jobs = asyncio.run(run(emulators, arguments.durations, arguments.jobs, cache))
        polls = {(group, provider): emulators.polls(group, provider)
                 for group in range(len(arguments.durations)) for provider in PROVIDERS}
    index = {duration: group for group, duration in enumerate(arguments.durations)}
    rows: dict[tuple[str, str, float], dict[str, list[float]]] = {}
    for job in jobs:
        row = rows.setdefault((job.mode, job.provider, job.duration), {"lag": [], "polls": [], "spare": []})
        row["lag"].append(job.lag)
        row["polls"].append(polls[(index[job.duration], job.provider)].get(job.request_id or "", 0))
        # What a 1 s loop needs for this very job (its first poll at 1 s, then every second until one finds it
        # done): the rows' medians compare different random lengths, this compares like with like.
        row["spare"].append(math.floor(job.ran or 0.0) + 1 - row["polls"][-1])
    if arguments.json:
        print(json.dumps([{"mode": mode, "provider": provider, "duration": duration, **row}
                          for (mode, provider, duration), row in rows.items()], indent=2))
        return
    print(f"\n{arguments.jobs} jobs per row, lengths within ± {arguments.jitter} s; lag = noticed − finished, seconds; "
          "polls = status calls per job")
    print(f"{'client':12} {'provider':9} {'job s':>6} {'lag median':>11} {'lag max':>8} {'polls median':>13}")
    for (mode, provider, duration), row in sorted(rows.items(), key=lambda item: (item[0][1], item[0][2],
                                                                                  item[0][0])):
        print(f"{mode:12} {provider:9} {duration:6.0f} {statistics.median(row['lag']):11.3f} {max(row['lag']):8.3f} "
              f"{statistics.median(row['polls']):13.1f}")
    for mode in ("new", "new + cache", "learned"):
        lags = [lag for (kind, _, _), row in rows.items() if kind == mode for lag in row["lag"]]
        if not lags:
            continue
        within = all(statistics.median(row["polls"]) <= statistics.median(rows[("1 s loop", provider, duration)]
                                                                           ["polls"])
                     for (kind, provider, duration), row in rows.items() if kind == mode)
        spare = [value for (kind, _, _), row in rows.items() if kind == mode for value in row["spare"]]
        print(f"{mode}: lag median {statistics.median(lags):.3f} s (goal ≤ 0.5), max {max(lags):.3f} s "
              f"(goal ≤ 1.5); polls ≤ the 1 s loop's in every row: {within}; jobs with no more polls than a 1 s "
              f"loop needs for the same length: {sum(value >= 0 for value in spare)} of {len(spare)} "
              f"(fewest spare {min(spare)})")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
