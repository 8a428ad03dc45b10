"""The output folder of a batch: checked before anything is paid for, and where each job's images go."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import InvalidRequestError
from ..images import extension_of, sniff_format
from ..result import GeneratedImage

__all__ = ["IMAGES_FOLDER", "image_file_stem", "prepare_output", "save_images"]

IMAGES_FOLDER = "images"
"""Where images are saved, inside the output folder (the report links them relatively)."""

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_STEM = 80


def prepare_output(folder: Path | str, *, field: str = "out") -> Path:
    """Create ``folder`` (and its images folder) if needed and prove it is writable, before any request.

    Raises :class:`InvalidRequestError` naming ``field`` when ``folder`` is a file, cannot be created, or
    cannot be written.
    """
    path = Path(folder).expanduser()
    allowed = "a folder that exists or can be created, and can be written"
    if path.exists() and not path.is_dir():
        raise InvalidRequestError(field, str(path), allowed, reason="it is a file")
    try:
        (path / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
            pass
    except OSError as error:
        raise InvalidRequestError(field, str(path), allowed, reason=error.strerror or str(error)) from None
    return path


def image_file_stem(key: str) -> str:
    """A file-name-safe stem for a job key; keys that had to change get a short digest, so stems stay unique."""
    stem = _UNSAFE.sub("_", key).strip("._") or "job"
    if stem != key or len(stem) > _MAX_STEM:
        stem = f"{stem[:_MAX_STEM]}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"
    return stem


def _extension(image: GeneratedImage, data: bytes) -> str:
    sniffed = sniff_format(data)
    if sniffed is not None:
        return extension_of(sniffed)
    return _EXTENSIONS.get(image.content_type or "", "bin")


def save_images(images: Sequence[GeneratedImage], folder: Path, key: str) -> list[str | None]:
    """Write each image that has bytes to ``folder/images/<stem>-<n>.<ext>``; the paths relative to ``folder``
    (``None`` for an image without bytes, whose URL the journal keeps). Each file is written whole under a
    temporary name and then renamed, so a killed run never leaves half an image behind."""
    paths: list[str | None] = []
    stem = image_file_stem(key)
    for number, image in enumerate(images, start=1):
        if image.data is None:
            paths.append(None)
            continue
        relative = f"{IMAGES_FOLDER}/{stem}-{number}.{_extension(image, image.data)}"
        target = folder / relative
        partial = target.with_name(f".{target.name}.partial")
        partial.write_bytes(image.data)
        os.replace(partial, target)
        paths.append(relative)
    return paths
