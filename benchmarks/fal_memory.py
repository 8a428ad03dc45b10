"""Memory and planning CPU of fal calls with large photos: the bridge against the raw ``fal_client``.

Four reference photos of about 5 MB each (a sample face padded with JPEG comment segments, each photo
different). Each measurement runs in a fresh interpreter (``--side``), the emulators in another process
(``_emulator_process``), and reports the growth of the resident set (peak ``VmHWM`` after resetting it, minus
``VmRSS`` before) while ``--calls`` fal calls are in flight:

* **warm**: the archive was uploaded by an earlier call (the raw client built and uploaded it once, as its user
  would; the bridge made one call), then ``--calls`` calls at once;
* **cold**: a new client and ``--calls`` first calls at once (the raw client zips and uploads once, then
  submits them all).

The bridge side also times ``FalProvider.plan`` for a request whose upload is cached (CPU ms per call).
Rounds alternate raw and bridge; medians and min–max are printed. Goals (issue 10): warm growth ≤ 2× the raw
client's; ``plan`` ≤ 1 ms of CPU.

    python benchmarks/fal_memory.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import threading
import time

from _emulator_process import KEY, EmulatorProcess, median_range

PHOTO_BYTES = 5 * 1024 * 1024
PROMPT = "a photo of a man img in a spacesuit"


def photos(count: int = 4) -> list[bytes]:
    """``count`` different valid JPEGs of about 5 MB: a sample face with comment (COM) segments after SOI."""
    from photomaker_bridge.samples import sample_faces

    face = sample_faces()[0].read_bytes()
    made = []
    for index in range(count):
        segment = b"\xff\xfe" + (65535).to_bytes(2, "big") + bytes([index]) * 65533
        made.append(face[:2] + segment * (PHOTO_BYTES // len(segment)) + face[2:])
    return made


def _kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(field)


class PeakRss:
    """The peak resident set while the block runs, in MB above the resident set when it started."""

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.start = _kib("VmRSS")
        self.peak = self.start
        self._stop = threading.Event()
        try:  # the kernel's own peak, reset here (Linux: "5" resets VmHWM)
            with open("/proc/self/clear_refs", "w") as refs:
                refs.write("5")
            self._hwm = True
        except OSError:
            self._hwm = False
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _kib("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._hwm:
            self.peak = max(self.peak, _kib("VmHWM"))

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.start) / 1024


async def raw_side(url: str, calls: int, warm: bool) -> dict[str, float]:
    import fal_client

    from photomaker_bridge.emulators import point_fal_client_at
    from photomaker_bridge.images import zip_images

    images = photos()
    with point_fal_client_at(url):
        client = fal_client.AsyncClient(key=KEY)

        async def upload() -> str:
            archive: str = await client.upload(zip_images([("jpeg", image) for image in images]), "application/zip",
                                               "faces.zip")
            return archive

        async def call(archive: str) -> None:
            arguments = {"image_archive_url": archive, "prompt": PROMPT, "style": "(No style)", "num_images": 1}
            assert (await client.subscribe("fal-ai/photomaker", arguments, interval=0.1))["images"]

        if warm:
            archive = await upload()
            await call(archive)
            with PeakRss() as peak:
                await asyncio.gather(*(call(archive) for _ in range(calls)))
        else:
            with PeakRss() as peak:
                archive = await upload()
                await asyncio.gather(*(call(archive) for _ in range(calls)))
    return {"growth_mb": peak.growth_mb}


async def bridge_side(url: str, calls: int, warm: bool) -> dict[str, float]:
    from photomaker_bridge import AsyncBridge, PhotoMakerRequest
    from photomaker_bridge.providers.fal import FalProvider

    request = PhotoMakerRequest(prompt=PROMPT, images=photos())
    provider = FalProvider(key=KEY, base_url=url, expected_seconds=1.0)
    figures: dict[str, float] = {}
    async with AsyncBridge(providers=[provider]) as bridge:
        if warm:
            await bridge.generate(request, "fal")
            started, count = time.process_time(), 20
            for _ in range(count):
                provider.plan(request)
            figures["plan_cpu_ms"] = (time.process_time() - started) / count * 1000
        with PeakRss() as peak:
            await asyncio.gather(*(bridge.generate(request, "fal") for _ in range(calls)))
    figures["growth_mb"] = peak.growth_mb
    return figures


def measure(side: str, url: str, calls: int, warm: bool) -> dict[str, float]:
    """One measurement in a fresh interpreter."""
    output = subprocess.run([sys.executable, __file__, "--side", side, "--url", url, "--calls", str(calls)]
                            + (["--warm"] if warm else []), check=True, capture_output=True, text=True).stdout
    figures: dict[str, float] = json.loads(output.splitlines()[-1])
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--run-time", type=float, default=1.0, help="seconds each emulated job runs")
    parser.add_argument("--side", choices=("raw", "bridge"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    if arguments.side:
        run = raw_side if arguments.side == "raw" else bridge_side
        print(json.dumps(asyncio.run(run(arguments.url, arguments.calls, arguments.warm))))
        return
    samples: dict[str, list[float]] = {}
    with EmulatorProcess([{"run_time": arguments.run_time}]) as emulators:
        url = emulators.urls[0]["fal"]
        for round_number in range(arguments.rounds):
            sides = ("raw", "bridge") if round_number % 2 == 0 else ("bridge", "raw")
            for warm in (True, False):
                for side in sides:
                    figures = measure(side, url, arguments.calls, warm)
                    for name, value in figures.items():
                        samples.setdefault(f"{side} {'warm' if warm else 'cold'} {name}", []).append(value)
            print(f"round {round_number + 1}/{arguments.rounds} done", flush=True)
    if arguments.json:
        print(json.dumps(samples, indent=2))
        return
    print(f"\n{arguments.calls} fal calls in flight, 4 photos of {PHOTO_BYTES / 2**20:.0f} MB, "
          f"{arguments.rounds} rounds; median (min–max)")
    for name, values in samples.items():
        print(f"{name:26} {median_range(values):>26}")
    for temperature in ("warm", "cold"):
        ours, theirs = samples[f"bridge {temperature} growth_mb"], samples[f"raw {temperature} growth_mb"]
        ratio = [bridge / max(raw, 0.5) for bridge, raw in zip(ours, theirs, strict=True)]
        goal = "  (goal ≤ 2)" if temperature == "warm" else ""
        print(f"growth bridge ÷ raw, {temperature} (raw floored at 0.5 MB): {median_range(ratio)}{goal}")
    plan = statistics.median(samples["bridge warm plan_cpu_ms"])
    print(f"plan() CPU with the upload cached: {plan:.3f} ms (goal ≤ 1 ms): {'ok' if plan <= 1 else 'MISS'}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
