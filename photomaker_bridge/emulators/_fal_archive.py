"""What fal-ai/photomaker needs from ``image_archive_url``: data URIs and the zip of reference faces.

The fal app's source is closed, so the archive contract is the safe one from fal.md §3.4 [UNVERIFIED]: a
readable zip holding one or more PNG or JPEG images at its root. Sub-folders, ``__MACOSX/`` resource forks
and dotfiles are not counted (macOS Finder adds them; the TencentARC loader reads a flat list of files).
"""

from __future__ import annotations

import base64
import binascii
import io
import urllib.parse
import zipfile
import zlib

from ._images import sniff_format

__all__ = ["MAX_MEMBER_BYTES", "ArchiveProblem", "decode_data_uri", "inspect_archive", "is_data_uri"]

MAX_MEMBER_BYTES = 32 * 1024 * 1024
"""A member larger than this (uncompressed) is not read, so a zip bomb cannot exhaust the emulator."""

_FACE_FORMATS = frozenset({"PNG", "JPEG"})


class ArchiveProblem(ValueError):
    """The archive (or data URI) cannot be used; the message is what the emulator reports."""


def is_data_uri(url: str) -> bool:
    """Whether ``url`` is a ``data:`` URI (RFC 2397), in any letter case."""
    return url[:5].lower() == "data:"


def decode_data_uri(url: str) -> bytes:
    """The bytes carried by a ``data:[<mediatype>][;base64],<data>`` URI.

    fal decodes data URIs for file inputs (fal.md SEED4 "Files"); the media type is not checked because the
    content is inspected anyway.
    """
    header, separator, data = url[5:].partition(",")
    if not separator:
        raise ArchiveProblem("The data URI has no ',' separating its header from its data.")
    if header.lower().endswith(";base64"):
        try:
            return base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            raise ArchiveProblem(f"The data URI is not valid base64: {error}.") from error
    return urllib.parse.unquote_to_bytes(data)


def _counts(name: str) -> bool:
    """Whether a zip member name is a candidate face photo: a file at the root, not hidden."""
    if name.endswith("/") or "/" in name.strip("/") or "\\" in name:
        return False
    return not name.startswith(".")


def inspect_archive(data: bytes) -> list[str]:
    """Names of the PNG/JPEG images at the archive's root, in archive order.

    Raises :class:`ArchiveProblem` when the data is not a readable zip or holds no such image.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as error:
        raise ArchiveProblem(f"The image archive is not a valid zip file: {error}.") from error
    images: list[str] = []
    with archive:
        for info in archive.infolist():
            if info.is_dir() or not _counts(info.filename) or info.file_size > MAX_MEMBER_BYTES:
                continue
            try:
                content = archive.read(info)
            except (zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error, EOFError, OSError) as error:
                # RuntimeError: encrypted member; NotImplementedError: unsupported compression method.
                raise ArchiveProblem(f"The image archive could not be read ({info.filename}): {error}.") from error
            if sniff_format(content) in _FACE_FORMATS:
                images.append(info.filename)
    if not images:
        raise ArchiveProblem("The image archive contains no PNG or JPEG images at its root.")
    return images
