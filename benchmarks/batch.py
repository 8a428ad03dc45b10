"""The batch runner's cost: wall time against plain ``asyncio.gather`` loops, and memory over a long batch.

**Overhead** (``--jobs``, default 1,000 per provider, ``--concurrency`` in flight, emulators in this process):
for each provider, the same jobs three ways, each downloading every image and writing it to disk:

* ``gather(generate)`` — a semaphore and ``AsyncBridge.generate(download=True)``, what a user writes first;
* ``gather(submit→result)`` — the same, but submit then collect by handle (what a routed job of the runner does);
* ``runner`` — :func:`photomaker_bridge.batch.arun_batch`, journal and all.

``runner / generate`` is the runner's overhead (goal ≤ 1.05): a job sent to one provider is one
``generate(keep_running=True)`` whose handle the runner journals from the ``handle`` event, so it pays no
collection by handle (Runware: the images come with the synchronous POST's answer, no ``getResponse`` polling;
``gather(submit→result)`` shows what that polling cost).

**Memory** (``--memory-jobs``, default 10,000): a fresh child process runs the runner over a JSONL file of that
many jobs against ``photomaker-bridge emulate`` in another process (so the emulators' own request logs are not
counted), and reports its resident memory every tenth of the way. The runner streams the file and the journal,
so memory must not grow with finished jobs: the slope over the second half is printed in bytes per job, and with
``--memory-trace`` the places where the Python heap grew (tracemalloc).

    python benchmarks/batch.py                       # both parts
    python benchmarks/batch.py --skip-memory --jobs 300
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from overhead import timed as gathered  # a semaphore and asyncio.gather: the plain loop to compare with

from photomaker_bridge import AsyncBridge, PhotoMakerRequest
from photomaker_bridge.batch import BatchEvent, BatchJob, BatchOptions, JobFile, arun_batch
from photomaker_bridge.batch.output import save_images
from photomaker_bridge.emulators import EmulatorSettings, start_emulators
from photomaker_bridge.providers.runware import RunwareProvider
from photomaker_bridge.samples import sample_faces

FACE = str(sample_faces()[0])
PROVIDERS = ("runware", "fal", "eachlabs")


def jobs_for(provider: str, count: int) -> list[BatchJob]:
    return [BatchJob(PhotoMakerRequest(prompt=f"a photo of a man img in a spacesuit, take {index}", images=[FACE],
                                       seed=index), provider=provider) for index in range(count)]


async def overhead(provider: str, count: int, concurrency: int, repeat: int, emulators: Any,
                   folder: Path) -> dict[str, float]:
    """Seconds of each way, the best of ``repeat`` runs, alternating the order so that none always goes first."""
    jobs = jobs_for(provider, count)
    times: dict[str, list[float]] = {"generate": [], "submit_result": [], "runner": []}
    async with AsyncBridge(providers=emulators.providers()) as bridge:
        await bridge.generate(jobs[0].request, provider)  # warm up: the photo upload is cached afterwards

        async def generate(index: int) -> None:
            result = await bridge.generate(jobs[index].request, provider, download=True)
            save_images(result.images, folder, f"g-{jobs[index].key}")

        async def submit_result(index: int) -> None:
            handle = await bridge.submit(jobs[index].request, provider)
            result = await bridge.result(handle, download=True)
            save_images(result.images, folder, f"s-{jobs[index].key}")

        async def runner(round_number: int) -> float:
            started = time.perf_counter()
            outcome = await arun_batch(jobs, folder / f"run-{round_number}", bridge=bridge,
                                       options=BatchOptions(concurrency=concurrency))
            assert outcome.succeeded == count, outcome
            return time.perf_counter() - started

        ways: dict[str, Callable[[int], Awaitable[float]]] = {
            "generate": lambda round_number: gathered(count, concurrency, generate),
            "submit_result": lambda round_number: gathered(count, concurrency, submit_result),
            "runner": runner,
        }
        for round_number in range(repeat):
            order = list(ways) if round_number % 2 == 0 else list(reversed(ways))
            for name in order:
                times[name].append(await ways[name](round_number))
    return {name: min(values) for name, values in times.items()}


def print_overhead(figures: dict[str, dict[str, float]], count: int, concurrency: int, repeat: int) -> None:
    print(f"overhead: {count} jobs per provider, {concurrency} in flight, images downloaded and saved, "
          f"best of {repeat}")
    print(f"{'provider':9} {'generate s':>10} {'submit→result s':>15} {'runner s':>9} {'runner/s→r':>10} "
          f"{'runner/gen':>10} {'ms/job over s→r':>15}")
    for provider, item in figures.items():
        extra = (item["runner"] - item["submit_result"]) / count * 1000
        print(f"{provider:9} {item['generate']:10.2f} {item['submit_result']:15.2f} {item['runner']:9.2f} "
              f"{item['runner'] / item['submit_result']:10.3f} {item['runner'] / item['generate']:10.3f} "
              f"{extra:15.2f}")


def rss_bytes() -> int:
    """Resident memory of this process (Linux /proc)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def memory_child(config: dict[str, Any]) -> None:
    """In a fresh process: run the JSONL batch, print RSS samples as JSON."""
    emulator = config["emulators"]["runware"]
    provider = RunwareProvider(api_key=emulator["api_key"], base_url=emulator["rest_url"], poll_interval=0.02,
                               max_poll_interval=0.05)
    total = config["jobs"]
    samples: list[tuple[int, int]] = [(0, rss_bytes())]
    snapshots: list[tracemalloc.Snapshot] = []
    finished = 0
    if config["trace"]:
        tracemalloc.start(4)

    def on_event(event: BatchEvent) -> None:
        nonlocal finished
        if event.kind == "finished":
            finished += 1
            if finished % max(1, total // 10) == 0:
                samples.append((finished, rss_bytes()))
            if config["trace"] and finished in (total // 4, total):
                snapshots.append(tracemalloc.take_snapshot())

    started = time.perf_counter()
    outcome = asyncio.run(arun_batch(JobFile(config["jobs_file"]), config["out"], providers=[provider],
                                     options=BatchOptions(concurrency=config["concurrency"],
                                                          download=config["download"]), on_event=on_event))
    growth = []
    if len(snapshots) == 2:  # what the Python heap gained over the last three quarters of the run, by place
        for statistic in snapshots[1].compare_to(snapshots[0], "traceback")[:3]:
            frames = [f"{frame.filename.rsplit('/', 2)[-1]}:{frame.lineno}" for frame in statistic.traceback]
            growth.append([statistic.size_diff, " < ".join(reversed(frames))])
    print(json.dumps({"samples": samples, "seconds": time.perf_counter() - started, "succeeded": outcome.succeeded,
                      "peak": _peak_bytes(), "growth": growth}))


def _peak_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def memory(count: int, concurrency: int, download: bool, trace: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="batch-memory-") as temporary:
        folder = Path(temporary)
        jobs_file = folder / "jobs.jsonl"
        with jobs_file.open("w") as stream:
            for index in range(count):
                stream.write(json.dumps({"provider": "runware", "prompt": f"a man img on a boat, take {index}",
                                         "images": [FACE], "seed": index}) + "\n")
        emulate = subprocess.Popen([sys.executable, "-m", "photomaker_bridge", "emulate", "--json", "--run-time",
                                    "0.01"], stdout=subprocess.PIPE, text=True)
        try:
            assert emulate.stdout is not None
            description = json.loads(emulate.stdout.readline())
            config = {"emulators": description["emulators"], "jobs": count, "jobs_file": str(jobs_file),
                      "out": str(folder / "out"), "concurrency": concurrency, "download": download,
                      "trace": trace}
            child = subprocess.run([sys.executable, __file__, "--memory-child", json.dumps(config)],
                                   capture_output=True, text=True, check=True)
        finally:
            emulate.terminate()
            emulate.wait()
        report = json.loads(child.stdout.strip().splitlines()[-1])
    samples = report["samples"]
    print(f"\nmemory: {count} jobs from a JSONL file, {concurrency} in flight, download={download}, "
          f"{report['seconds']:.1f} s, {report['succeeded']} succeeded")
    print(f"{'finished':>9} {'RSS MiB':>8}")
    for finished, rss in samples:
        print(f"{finished:9d} {rss / 2**20:8.1f}")
    half = [sample for sample in samples if sample[0] >= count // 2]
    if len(half) >= 2:
        (first_jobs, first_rss), (last_jobs, last_rss) = half[0], half[-1]
        slope = (last_rss - first_rss) / max(1, last_jobs - first_jobs)
        print(f"growth over the second half: {slope:.0f} bytes per finished job; peak RSS "
              f"{report['peak'] / 2**20:.1f} MiB")
    for size, where in report["growth"]:
        print(f"python heap growth over the last 3/4 of the jobs: {size:+d} bytes at {where}")


async def run_overhead(count: int, concurrency: int, repeat: int, providers: list[str]) -> None:
    settings = {name: EmulatorSettings(run_time=0.05, max_in_flight=10_000) for name in PROVIDERS}
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="batch-overhead-") as temporary:
        async with start_emulators(**settings) as emulators:
            for provider in providers:
                folder = Path(temporary) / provider
                (folder / "images").mkdir(parents=True)
                figures[provider] = await overhead(provider, count, concurrency, repeat, emulators, folder)
    print_overhead(figures, count, concurrency, repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=1000, help="jobs per provider for the overhead part")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--providers", default=",".join(PROVIDERS))
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way; the fastest counts")
    parser.add_argument("--memory-jobs", type=int, default=10_000)
    parser.add_argument("--memory-concurrency", type=int, default=32)
    parser.add_argument("--memory-download", action="store_true", help="also download and save every image")
    parser.add_argument("--memory-trace", action="store_true",
                        help="also say where the Python heap grew (tracemalloc; slows the run down)")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--memory-child", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.memory_child:
        memory_child(json.loads(arguments.memory_child))
        return
    if not arguments.skip_overhead:
        asyncio.run(run_overhead(arguments.jobs, arguments.concurrency, arguments.repeat,
                                 arguments.providers.split(",")))
    if not arguments.skip_memory:
        memory(arguments.memory_jobs, arguments.memory_concurrency, arguments.memory_download, arguments.memory_trace)


if __name__ == "__main__":
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost,::1")
    main()
