"""fal storage, in memory: the CDN token, both upload flows, and the public file URLs (fal.md §3.2, §7.7).

fal_client uploads in two ways and the emulator serves both on its one origin:

* ``fal_v3`` (default): ``POST {REST_URL}/storage/auth/token?storage_type=fal-cdn-v3`` with the API key
  gives a Bearer token, then ``POST {CDN_URL}/files/upload`` with that token and the raw bytes gives
  ``{"access_url"}``.
* ``fal`` (fallback when the first fails): ``POST {REST_URL}/storage/upload/initiate?storage_type=gcs``
  with the API key gives ``{"upload_url", "file_url"}``; the bytes go in a ``PUT`` to the signed
  ``upload_url``, which needs no ``Authorization`` (it is a signed storage URL).

Files are public once stored: ``GET /files/...`` needs no key, as on fal's CDN (fal.md §3.2).
"""

from __future__ import annotations

import json
import mimetypes
import re
import secrets
import time
import urllib.parse
from datetime import UTC, datetime, timedelta

import attrs
from aiohttp import web

from ._common import EmulatorState
from ._fal_archive import decode_data_uri, is_data_uri
from ._fal_http import UNAUTHORIZED_DETAIL, check_api_key, json_answer, origin_of
from ._fal_options import FalOptions

__all__ = ["SERVED_FILES_PREFIX", "DownloadProblem", "FileStore", "StoredFile", "storage_routes"]

SERVED_FILES_PREFIX = "/files/emulator/"
"""Where stored files are served. fal's CDN serves ``/files/<bucket>/<name>`` (fal.md §3.2); the bucket is
named ``emulator`` so that the fault middleware can skip served files while ``POST /files/upload`` stays
faultable."""

_UNSAFE_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]+")


class DownloadProblem(ValueError):
    """A file URL the runner cannot download; the message is what the emulator reports."""


@attrs.frozen
class StoredFile:
    """One file in the emulator's storage."""

    path: str
    """URL path, starting with :data:`SERVED_FILES_PREFIX`."""
    data: bytes = attrs.field(repr=False)
    content_type: str
    file_name: str

    def url(self, origin: str) -> str:
        """The public URL of the file on the emulator reached at ``origin``."""
        return origin + self.path


@attrs.frozen
class _PendingUpload:
    path: str
    file_name: str
    content_type: str


def _safe_name(file_name: str | None, content_type: str) -> str:
    if file_name:
        cleaned = _UNSAFE_NAME_CHARACTERS.sub("_", file_name.rsplit("/", 1)[-1]).strip("._")
        if cleaned:
            return cleaned
    extension = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ".bin"
    return "upload" + extension


@attrs.define
class FileStore:
    """Uploaded and generated files, upload tokens and pending signed uploads, all in memory."""

    files: dict[str, StoredFile] = attrs.field(factory=dict)
    """Stored files by URL path."""
    hosts: set[str] = attrs.field(factory=set)
    """``host[:port]`` names the emulator has been reached under: a URL on one of them is the emulator's
    own and is looked up in memory instead of being downloaded."""
    _tokens: dict[str, float] = attrs.field(factory=dict)
    _pending: dict[str, _PendingUpload] = attrs.field(factory=dict)

    def add(self, data: bytes, content_type: str, file_name: str | None = None, *, key: str | None = None
            ) -> StoredFile:
        """Store bytes and return the file. ``key`` names it (default: a random prefix plus the file name)."""
        name = _safe_name(file_name, content_type)
        path = SERVED_FILES_PREFIX + (key or f"{secrets.token_hex(8)}_{name}")
        stored = StoredFile(path, data, content_type, name)
        self.files[path] = stored
        return stored

    def issue_token(self, lifetime: float) -> tuple[str, datetime]:
        """A new CDN Bearer token and its (timezone-aware) expiry."""
        token = secrets.token_urlsafe(24)
        self._tokens[token] = time.monotonic() + lifetime
        return token, datetime.now(UTC) + timedelta(seconds=lifetime)

    def token_valid(self, token: str) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        expiry = self._tokens.get(token)
        return expiry is not None and time.monotonic() < expiry

    def reserve(self, file_name: str | None, content_type: str) -> tuple[str, str]:
        """Plan a signed upload: ``(secret, path)``; the file exists once the secret's PUT arrives."""
        name = _safe_name(file_name, content_type)
        secret = secrets.token_urlsafe(24)
        path = SERVED_FILES_PREFIX + f"{secrets.token_hex(8)}_{name}"
        self._pending[secret] = _PendingUpload(path, name, content_type)
        return secret, path

    def complete(self, secret: str, data: bytes, content_type: str | None) -> StoredFile | None:
        """Store the bytes of a signed upload; ``None`` for an unknown secret. A repeated PUT overwrites."""
        pending = self._pending.get(secret)
        if pending is None:
            return None
        stored = StoredFile(pending.path, data, content_type or pending.content_type, pending.file_name)
        self.files[pending.path] = stored
        return stored

    def is_own(self, url: str) -> bool:
        """Whether ``url`` points at this emulator (a host it has been reached under)."""
        parts = urllib.parse.urlsplit(url)
        return parts.scheme in ("http", "https") and parts.netloc.lower() in self.hosts

    def fetch(self, url: str, *, allow_data_uris: bool, external_urls_reachable: bool) -> bytes | None:
        """The bytes behind a file input URL, as the runner would download them; never touches the network.

        Returns ``None`` for an external URL when ``external_urls_reachable`` (its content is unknown and
        taken as valid). Raises :class:`DownloadProblem` for anything the runner could not download.
        """
        if is_data_uri(url):
            if not allow_data_uris:
                # Reported from live use of fal-ai/photomaker: "a data-URI zip is refused" (fal.md §3.3).
                raise DownloadProblem("Data URIs are not accepted for this input; upload the file to fal "
                                      "storage and pass its URL.")
            try:
                return decode_data_uri(url)
            except ValueError as error:
                raise DownloadProblem(str(error)) from error
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise DownloadProblem(f"Failed to download the file: {url[:100]!r} is not an http(s) URL.")
        if self.is_own(url):
            stored = self.files.get(urllib.parse.unquote(parts.path))
            if stored is None:
                raise DownloadProblem("Failed to download the file: the URL answered 404 Not Found.")
            return stored.data
        if external_urls_reachable:
            return None
        raise DownloadProblem(f"Failed to download the file from {parts.netloc}: the host is not reachable "
                              "(the emulator never leaves loopback; set external_urls_reachable).")


def _bearer_token(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def storage_routes(state: EmulatorState, options: FalOptions, store: FileStore) -> list[web.RouteDef]:
    """The storage routes of the emulator, served on the same origin as the queue."""

    async def auth_token(request: web.Request) -> web.StreamResponse:
        refused = check_api_key(request, state.settings.api_key)
        if refused is not None:
            return refused
        token, expires_at = store.issue_token(options.token_lifetime_seconds)
        state.counters["upload_tokens"] += 1
        # expires_at must be timezone-aware: fal_client compares it with datetime.now(timezone.utc) and a
        # naive value raises TypeError on the next upload (fal.md §3.2).
        return json_answer(200, {"token": token, "token_type": "Bearer", "base_url": origin_of(request),
                                 "expires_at": expires_at.isoformat()})

    async def upload_v3(request: web.Request) -> web.StreamResponse:
        if not store.token_valid(_bearer_token(request)):
            return json_answer(401, {"detail": UNAUTHORIZED_DETAIL})
        content_type = request.headers.get("Content-Type", "application/octet-stream")
        stored = store.add(await request.read(), content_type, request.headers.get("X-Fal-File-Name"))
        state.counters["uploads"] += 1
        return json_answer(200, {"access_url": stored.url(origin_of(request)), "content_type": content_type,
                                 "file_name": stored.file_name, "file_size": len(stored.data)})

    async def upload_initiate(request: web.Request) -> web.StreamResponse:
        refused = check_api_key(request, state.settings.api_key)
        if refused is not None:
            return refused
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("content_type"), str) or not isinstance(
                body.get("file_name", ""), str):
            issue = {"loc": ["body"], "msg": "expected {\"file_name\": str, \"content_type\": str}",
                     "type": "value_error"}
            return json_answer(422, {"detail": [issue]})
        secret, path = store.reserve(body.get("file_name"), body["content_type"])
        origin = origin_of(request)
        return json_answer(200, {"upload_url": f"{origin}/storage/upload/signed/{secret}",
                                 "file_url": origin + path})

    async def signed_put(request: web.Request) -> web.StreamResponse:
        stored = store.complete(request.match_info["secret"], await request.read(),
                                request.headers.get("Content-Type"))
        if stored is None:
            # What a storage bucket answers for a bad signed URL.
            return web.Response(status=403, content_type="application/xml",
                                text="<?xml version='1.0' encoding='UTF-8'?><Error><Code>SignatureDoesNotMatch"
                                     "</Code></Error>")
        state.counters["uploads"] += 1
        return web.Response(status=200)

    async def serve(request: web.Request) -> web.StreamResponse:
        stored = store.files.get(request.path)
        if stored is None:
            return json_answer(404, {"detail": "File not found"})
        state.counters["file_downloads"] += 1
        return web.Response(body=stored.data, content_type=stored.content_type.split(";")[0].strip(),
                            headers={"Content-Disposition": f'inline; filename="{stored.file_name}"'})

    return [
        web.post("/storage/auth/token", auth_token),
        web.post("/storage/upload/initiate", upload_initiate),
        web.put("/storage/upload/signed/{secret}", signed_put),
        web.post("/files/upload", upload_v3),
        web.get(SERVED_FILES_PREFIX + "{name:.+}", serve),
    ]

