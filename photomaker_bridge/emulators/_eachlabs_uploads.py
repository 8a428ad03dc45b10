"""Eachlabs' file storage routes: presign, the presigned ``PUT`` (S3's part) and the public files (the CDN's).

The flow of eachlabs.md §2.11: ``POST /v1/upload/presign`` answers where to ``PUT`` the bytes and the public
URL they will be served at; the ``PUT`` is checked the way S3 checks a presigned request.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from typing import TYPE_CHECKING

from aiohttp import web

from ._eachlabs_errors import CONTENT_TYPE_REQUIRED, INVALID_API_KEY, INVALID_REQUEST_BODY, error_response
from ._eachlabs_http import json_object, new_uuid
from ._eachlabs_storage import (
    DEFAULT_RETENTION_SECONDS,
    MAX_RETENTION_SECONDS,
    MAX_UPLOAD_BYTES,
    MIN_RETENTION_SECONDS,
    PRESIGNED_PATH_PREFIX,
    PUBLIC_PATH_PREFIX,
    s3_error,
)

if TYPE_CHECKING:
    from .eachlabs import EachlabsEmulator

__all__ = ["presign_upload", "put_upload", "serve_file"]


async def presign_upload(emulator: EachlabsEmulator, request: web.Request) -> web.StreamResponse:
    """``POST /v1/upload/presign``: reserve a file and hand out where to PUT it (eachlabs.md §2.11)."""
    if emulator.authenticate(request) is None:
        return error_response(401, INVALID_API_KEY)
    body = await json_object(request)
    if body is None:
        return error_response(400, INVALID_REQUEST_BODY)
    content_type = body.get("content_type")
    if not isinstance(content_type, str) or not content_type.strip():
        return error_response(400, CONTENT_TYPE_REQUIRED)
    retention = body.get("expires_in_seconds", DEFAULT_RETENTION_SECONDS)
    if (isinstance(retention, bool) or not isinstance(retention, int)
            or not MIN_RETENTION_SECONDS <= retention <= MAX_RETENTION_SECONDS):
        # [UNVERIFIED] text: the docs give the allowed range, not the error (eachlabs.md §2.11).
        return error_response(400, "expires_in_seconds must be an integer between "
                                   f"{MIN_RETENTION_SECONDS} and {MAX_RETENTION_SECONDS}")
    file_id = new_uuid(emulator.state, emulator.storage.has_id)
    stored = emulator.storage.presign(file_id, content_type.strip(), retention,
                                  secrets.token_hex(32), time.monotonic())
    origin = str(request.url.origin())
    emulator.state.counters["presigns"] += 1
    query = urllib.parse.urlencode({
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Expires": "900",
        "X-Amz-SignedHeaders": "content-type;host;x-amz-meta-file-id",
        "X-Amz-Signature": stored.signature,
    })
    return web.json_response({
        "id": stored.file_id,
        "presigned_url": f"{origin}{PRESIGNED_PATH_PREFIX}{stored.name}?{query}",
        "public_url": f"{origin}{PUBLIC_PATH_PREFIX}{stored.name}",
        "expires_at": stored.expires_at,
        "required_headers": stored.required_headers,
    })

async def put_upload(emulator: EachlabsEmulator, request: web.Request) -> web.StreamResponse:
    """``PUT`` to a presigned URL: checked the way S3 checks a presigned request (eachlabs.md §2.11).

    The signature in the query, the expiry, the signed ``Content-Type`` and every ``required_headers``
    entry must match, or S3 answers 403 ``SignatureDoesNotMatch``.
    """
    stored = emulator.storage.files.get(request.match_info["name"])
    if stored is None:
        return s3_error(403, "SignatureDoesNotMatch")
    signature = request.query.get("X-Amz-Signature", "")
    if not secrets.compare_digest(signature.encode(), stored.signature.encode()):
        return s3_error(403, "SignatureDoesNotMatch")
    if time.monotonic() > stored.presigned_until:
        return s3_error(403, "AccessDenied")
    sent_type = request.headers.get("Content-Type", "")
    if sent_type.split(";")[0].strip().lower() != stored.content_type.split(";")[0].strip().lower():
        return s3_error(403, "SignatureDoesNotMatch")
    for name, value in stored.required_headers.items():
        if request.headers.get(name) != value:
            return s3_error(403, "SignatureDoesNotMatch")
    data = await request.read()
    if len(data) > MAX_UPLOAD_BYTES:
        return s3_error(400, "EntityTooLarge")
    stored.data = data
    emulator.state.counters["uploads"] += 1
    return web.Response(status=200, headers={"ETag": stored.etag})

async def serve_file(emulator: EachlabsEmulator, request: web.Request) -> web.StreamResponse:
    """``GET`` of an uploaded file or an output image (the CDN's part, no key needed)."""
    served = emulator.served_file(request.path, time.monotonic())
    if served is None:
        return s3_error(404, "NoSuchKey")
    data, content_type = served
    emulator.state.counters["downloads"] += 1
    return web.Response(body=data, content_type=content_type)
