"""``photomaker-bridge demo``: a small compare on all three providers' local emulators, ending with a report.

Needs no keys and no network: it starts the emulators in-process and runs the bundled sample faces through
``compare`` (one prompt × two styles × the three providers, two images each), with the live progress display,
then prints the summary table and where everything is — the HTML report last. Everything goes into a folder
it names (``photomaker-demo-*`` here, or ``--out``). What the same jobs would cost on the real providers is
printed first; on the emulators nothing is paid.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TextIO

from ._display import JobBoard
from .batch import BatchOptions, CompareMatrix
from .batch._cli import run_command
from .batch.output import prepare_output
from .emulators import EmulatorSettings, start_emulators
from .samples import sample_faces

__all__ = ["DEMO_PROVIDERS", "demo_matrix", "run_demo"]

DEMO_PROVIDERS = ("runware", "fal", "eachlabs")


def demo_matrix() -> CompareMatrix:
    """The demo's compare: two sample faces, an astronaut portrait in two styles, two images per job, seed 42."""
    return CompareMatrix(
        face_sets=[[str(path) for path in sample_faces()[:2]]],
        prompts=["a portrait photo of a person img as an astronaut, studio light"],
        styles=["Cinematic", "Comic book"], providers=DEMO_PROVIDERS, seeds=[42],
        options={"num_images": 2, "steps": 30}, face_names=["sample faces"],
    )


def _settings() -> EmulatorSettings:
    # A little queue and run time, so that the table shows the phases the way real providers report them.
    return EmulatorSettings(queue_time=0.2, run_time=(0.3, 0.6), seed=7)


def run_demo(folder: Path | None, board: JobBoard, out: TextIO, err: TextIO) -> int:
    """Run the demo into ``folder`` (default: a new ``photomaker-demo-*`` folder here), showing progress on
    ``board``; returns the compare's exit code (0 when every job succeeded)."""
    folder = prepare_output(folder or Path(tempfile.mkdtemp(prefix="photomaker-demo-", dir=".")), field="--out")
    matrix = demo_matrix()
    out.write(f"demo: a compare of {len(matrix)} jobs on the three providers' local emulators (no keys, no network, "
              f"nothing paid); writing to {folder}\n")
    out.flush()
    with start_emulators(runware=_settings(), fal=_settings(), eachlabs=_settings()) as emulators:
        return run_command(board, out, err, folder=folder, items=matrix.numbered, jobs=lambda: matrix,
                           providers=emulators.providers(), options=BatchOptions(concurrency=6, timeout=60),
                           max_cost=None, title="photomaker-bridge demo (local emulators)", paid=False)
