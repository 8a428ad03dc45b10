"""Eachlabs file storage as the emulator serves it: presign, PUT to the presigned URL, public download.

On the real service the presigned URL points at S3 and the public URL at the ``cdn-us.eachlabs.ai`` CDN
(eachlabs.md §2.11); the emulator serves both from its own origin, under :data:`PRESIGNED_PATH_PREFIX` and
:data:`PUBLIC_PATH_PREFIX`. The presigned PUT answers the way S3 does (XML errors, an ``ETag``), since
clients talk to S3 there, not to Eachlabs' API.
"""

from __future__ import annotations

import datetime
import hashlib
import re

import attrs
from aiohttp import web

__all__ = [
    "DEFAULT_RETENTION_SECONDS",
    "MAX_RETENTION_SECONDS",
    "MAX_UPLOAD_BYTES",
    "MIN_RETENTION_SECONDS",
    "PRESIGNED_PATH_PREFIX",
    "PRESIGN_VALID_SECONDS",
    "PUBLIC_PATH_PREFIX",
    "Storage",
    "StoredFile",
    "extension_for",
    "s3_error",
]

PRESIGNED_PATH_PREFIX = "/storage/uploads/"
"""Where presigned PUTs go (S3 on the real service)."""
PUBLIC_PATH_PREFIX = "/uploads/"
"""Where uploaded files and prediction outputs are served (the CDN's ``/uploads/`` on the real service,
eachlabs.md §2.4, §2.11)."""
PRESIGN_VALID_SECONDS = 15 * 60
"""A presigned URL is valid for 15 minutes (MD ``storage/upload-file.mdx``, eachlabs.md §2.11)."""
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""Largest accepted upload: 100 MB (eachlabs.md §2.11)."""
MIN_RETENTION_SECONDS = 60
"""Shortest ``expires_in_seconds`` (eachlabs.md §2.11)."""
MAX_RETENTION_SECONDS = 365 * 24 * 3600
"""Longest ``expires_in_seconds`` (eachlabs.md §2.11)."""
DEFAULT_RETENTION_SECONDS = 180 * 24 * 3600
"""Retention when the presign request names none (eachlabs.md §2.11)."""

_EXTENSIONS: dict[str, str] = {
    "image/jpeg": "jpg", "image/jpg": "jpg", "image/png": "png", "image/webp": "webp",
    "application/zip": "zip", "application/octet-stream": "bin",
}


def extension_for(content_type: str) -> str:
    """The file extension the public URL gets for a MIME type (``image/png`` → ``png``)."""
    base = content_type.split(";")[0].strip().lower()
    if base in _EXTENSIONS:
        return _EXTENSIONS[base]
    subtype = re.sub(r"[^a-z0-9]+", "", base.rpartition("/")[2])
    return subtype[:10] or "bin"


@attrs.define
class StoredFile:
    """One presigned upload slot and, once PUT, its bytes."""

    file_id: str
    name: str
    """``<file_id>.<extension>``: the last path segment of both URLs."""
    content_type: str
    """The MIME type named at presign; the PUT must send the same ``Content-Type``."""
    signature: str
    """Stands in for ``X-Amz-Signature``: the PUT must carry it in its query."""
    presigned_until: float
    """``time.monotonic()`` after which the presigned URL no longer works."""
    expires_at: str
    """When the stored file will be deleted (ISO 8601, UTC), as reported at presign."""
    data: bytes | None = None
    """The uploaded bytes; ``None`` until the PUT arrives."""

    @property
    def required_headers(self) -> dict[str, str]:
        """Headers the PUT must send besides ``Content-Type`` (eachlabs.md §2.11)."""
        return {"x-amz-meta-file-id": self.file_id}

    @property
    def etag(self) -> str:
        """S3's ETag of a single-part upload: the quoted MD5 of the bytes."""
        return '"' + hashlib.md5(self.data or b"", usedforsecurity=False).hexdigest() + '"'


@attrs.define
class Storage:
    """All files presigned on one emulator, by name."""

    files: dict[str, StoredFile] = attrs.field(factory=dict)

    def presign(self, file_id: str, content_type: str, retention_seconds: int, signature: str,
                now: float) -> StoredFile:
        """Reserve a slot for a file that the caller will PUT within :data:`PRESIGN_VALID_SECONDS`."""
        expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=retention_seconds)
        stored = StoredFile(
            file_id=file_id,
            name=f"{file_id}.{extension_for(content_type)}",
            content_type=content_type,
            signature=signature,
            presigned_until=now + PRESIGN_VALID_SECONDS,
            expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        )
        self.files[stored.name] = stored
        return stored

    def has_id(self, file_id: str) -> bool:
        """Whether a file with this id was already presigned."""
        return any(stored.file_id == file_id for stored in self.files.values())

    def uploaded(self, name: str) -> StoredFile | None:
        """The file served under ``name``, if its bytes have arrived."""
        stored = self.files.get(name)
        return stored if stored is not None and stored.data is not None else None


_S3_MESSAGES: dict[str, str] = {
    "SignatureDoesNotMatch": "The request signature we calculated does not match the signature you "
                             "provided. Check your key and signing method.",
    "AccessDenied": "Request has expired",
    "EntityTooLarge": "Your proposed upload exceeds the maximum allowed size",
    "NoSuchKey": "The specified key does not exist.",
}


def s3_error(status: int, code: str) -> web.Response:
    """An S3-style XML error, as the presigned URL's real host (S3) answers."""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{_S3_MESSAGES[code]}</Message></Error>"
    )
    return web.Response(status=status, text=body, content_type="application/xml")
