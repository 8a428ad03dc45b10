"""Where the CLI puts results: the ``--out`` folder, checked before anything is paid for, and the saved files.

A generation is paid for once the provider accepted it, so ``--out`` is checked *before* the first request:
it must be a folder (or not exist yet), its parent must exist (``mkdir``, not ``mkdir -p``: a typo in the path
is caught instead of creating a tree somewhere unexpected), and a file must be creatable in it (tried for real:
permission bits say nothing to root, and a read-only mount says nothing to ``os.access``). If saving still
fails afterwards (the disk filled up), the caller prints the images' URLs and the result as JSON instead.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from .errors import InvalidRequestError
from .result import PhotoMakerResult

__all__ = ["check_out_folder", "result_summary", "save_result"]


def check_out_folder(value: str, flag: str = "--out") -> Path:
    """The folder ``value`` names, created if missing, once a file could be written in it; else an
    :class:`InvalidRequestError` naming ``flag``, the path and the reason."""
    folder = Path(value).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InvalidRequestError(flag, value, "a folder to write the images into",
                                  reason="it is an existing file")
    if not folder.exists():
        parent = folder.parent
        if not parent.is_dir():
            missing = next((each for each in reversed([parent, *parent.parents]) if not each.exists()), parent)
            raise InvalidRequestError(flag, value, "a folder whose parent exists (only the last part is created)",
                                      reason=f"{missing} does not exist")
        try:
            # exist_ok: another process (a shard of the same batch) may create it between the check and here;
            # a file created there meanwhile still fails, as FileExistsError.
            folder.mkdir(exist_ok=True)
        except OSError as error:
            raise InvalidRequestError(flag, value, "a folder that can be created",
                                      reason=error.strerror or type(error).__name__) from None
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise InvalidRequestError(flag, value, "a folder that files can be written into",
                                  reason=error.strerror or type(error).__name__) from None
    return folder


def result_summary(result: PhotoMakerResult, saved: list[Path] | None = None) -> dict[str, Any]:
    """``result.to_dict()`` without image bytes (they are in the files, or at the URLs), plus ``saved``."""
    summary = result.to_dict()
    for image in summary["images"]:
        image["data"] = None
    summary["saved"] = [str(path) for path in saved or []]
    return summary


def save_result(result: PhotoMakerResult, folder: Path) -> list[Path]:
    """Write the images as ``<provider>_<n>.<ext>`` (the extension from the bytes themselves) and
    ``<provider>.json``; returns the image paths. ``OSError`` when the disk refuses."""
    paths: list[Path] = []
    for index, image in enumerate(result.images, start=1):
        paths.append(image.save(folder / f"{result.provider}_{index}"))
    text = json.dumps(result_summary(result, paths), indent=2, default=str) + "\n"
    (folder / f"{result.provider}.json").write_text(text)
    return paths
