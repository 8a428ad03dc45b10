"""``photomaker-bridge demo``: the same request to all three providers' local emulators, side by side.

Needs no keys and no network: it starts the emulators in-process, sends one request with the bundled sample
faces to each provider, prints a table (provider, images, seed, queue s, run s, total s, cost, warnings) and
writes the images plus a JSON summary to a folder it names.
"""

from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path
from typing import TextIO

from ._console import save_result
from ._display import JobBoard, print_results
from .client import Bridge
from .emulators import EmulatorSettings, start_emulators
from .errors import ProviderError
from .request import PhotoMakerRequest
from .result import PhotoMakerResult
from .samples import sample_faces

__all__ = ["DEMO_PROVIDERS", "demo_request", "run_demo"]

DEMO_PROVIDERS = ("runware", "fal", "eachlabs")


def demo_request() -> PhotoMakerRequest:
    """The demo's request: two sample faces, a cinematic portrait, two images, a fixed seed."""
    return PhotoMakerRequest(
        prompt="a portrait photo of a person img as an astronaut, studio light",
        images=[str(path) for path in sample_faces()[:2]],
        style="Cinematic", num_images=2, seed=42, steps=30,
    )


def _settings() -> EmulatorSettings:
    # A little queue and run time, so that the table shows the phases the way real providers report them.
    return EmulatorSettings(queue_time=0.2, run_time=(0.3, 0.6), seed=7)


def run_demo(folder: Path | None, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """Run the demo, showing each job on ``board``; returns 0 when every provider answered, 4 otherwise."""
    folder = folder or Path(tempfile.mkdtemp(prefix="photomaker-demo-", dir="."))
    request = demo_request()
    results: list[PhotoMakerResult] = []
    failures: dict[str, str] = {}
    out.write(f"demo: one request to each provider's local emulator; writing to {folder}\n")
    out.flush()
    with start_emulators(runware=_settings(), fal=_settings(), eachlabs=_settings()) as emulators, \
            Bridge(providers=emulators.providers()) as bridge:
        for name in DEMO_PROVIDERS:
            job = board.add(name)
            try:
                result = bridge.generate(request, name, timeout=60, on_event=job.on_event, download=True)
                job.set_state("saving")
                save_result(result, folder)
            except (ProviderError, OSError) as error:
                failures[name] = str(error)
                job.finish("failed", type(error).__name__)
                err.write(f"{name} failed: {error}\n")
                continue
            job.finish("completed", f"{len(result.images)} images")
            results.append(result)
    board.close()
    out.write("\n")
    print_results(out, results)
    summary = {
        "created_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "request": {key: value for key, value in request.to_dict().items() if key != "images"},
        "results": [{key: value for key, value in result.to_dict().items() if key not in ("images", "raw")}
                    | {"images": len(result.images)} for result in results],
        "failures": failures,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    out.write(f"\nimages and summary.json written to {folder}\n")
    for result in results:
        for warning in result.warnings:
            err.write(f"warning: {warning}\n")
    return 0 if not failures else 4
