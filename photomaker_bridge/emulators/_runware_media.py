"""Runware's image storage as the emulator keeps it: uploads, inputs and generated pictures, by imageUUID.

Every image the emulator knows (uploaded with ``imageUpload``, received inline as an input, or generated)
gets a UUID v4 and is served at ``<origin>/image/ws/0.5/ii/<imageUUID>.<ext>``, the path shape of Runware's
own image host (runware.md §2.2, §5.4). Inputs are resolved the four ways the PhotoMaker page allows
(runware.md §5.1): a known UUID, a data URI, bare base64, or an http(s) URL. Nothing is ever fetched from the
network: an URL is valid only when it points at the emulator's own storage, or when the settings declare
external URLs reachable.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
import zlib
from collections.abc import Callable, Collection
from urllib.parse import urlsplit

import attrs

from ._images import render_image, sniff_format
from ._runware_errors import TaskError, error_item

__all__ = [
    "IMAGE_PATH_PREFIX",
    "PHOTOMAKER_INPUT_FORMATS",
    "UPLOAD_FORMATS",
    "InputRules",
    "MediaStore",
    "StoredImage",
    "is_uuid",
    "sniff_any_format",
]

IMAGE_PATH_PREFIX = "/image/ws/0.5/ii/"
"""Path under which images are served, copied from Runware's ``im.runware.ai`` URLs (runware.md §2.2)."""

PHOTOMAKER_INPUT_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP"})
"""PhotoMaker inputs: "Supported formats are: PNG, JPG and WEBP" (runware.md §5.1)."""

UPLOAD_FORMATS: frozenset[str] = frozenset({"PNG", "JPEG", "WEBP", "GIF", "BMP"})
"""``imageUpload`` also takes BMP and GIF (D-UPL, runware.md §5.4)."""

_EXTENSIONS: dict[str, str] = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
_CONTENT_TYPES: dict[str, str] = {
    "PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif", "BMP": "image/bmp",
}
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?;base64,(?P<payload>.*)$", re.DOTALL)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def is_uuid(value: str) -> bool:
    """Whether ``value`` is written as a UUID (any version)."""
    return bool(_UUID.match(value))


def sniff_any_format(data: bytes) -> str | None:
    """The image format named by the magic bytes: PNG, JPEG, WEBP, GIF or BMP, else ``None``."""
    known = sniff_format(data)
    if known is not None:
        return known
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "GIF"
    if data.startswith(b"BM") and len(data) > 26:
        return "BMP"
    return None


@attrs.frozen
class StoredImage:
    """One stored picture: its encoded bytes and their format."""

    data: bytes = attrs.field(repr=False)
    image_format: str
    expires_at: float | None = None
    """``time.monotonic()`` after which the image is deleted (a task's ``ttl``); ``None`` keeps it."""

    def expired(self, now: float | None = None) -> bool:
        """Whether the image has been deleted by its ``ttl``."""
        return self.expires_at is not None and (time.monotonic() if now is None else now) >= self.expires_at

    @property
    def content_type(self) -> str:
        """The MIME type served for it."""
        return _CONTENT_TYPES[self.image_format]

    @property
    def extension(self) -> str:
        """The file extension in its URL (``jpg`` for JPEG, as Runware writes it)."""
        return _EXTENSIONS[self.image_format]


@attrs.frozen
class InputRules:
    """How one image parameter is checked: its name and code in errors, and the formats it takes."""

    parameter: str
    """The parameter named in errors, e.g. ``inputImages`` or ``photoMaker.images``."""
    code: str
    """The ``invalid<Param>`` code for a malformed or unsupported image."""
    formats: Collection[str] = PHOTOMAKER_INPUT_FORMATS
    allow_uuid: bool = True
    """Whether a stored image's UUID is accepted (``imageUpload`` takes only URLs and inline data)."""


@attrs.define
class MediaStore:
    """Images by imageUUID, with the rules for turning an input string into a stored image."""

    new_uuid: Callable[[], str]
    """Source of fresh imageUUIDs (the emulator draws them from its seeded generator)."""
    images: dict[str, StoredImage] = attrs.field(factory=dict)

    def put(self, image_uuid: str, data: bytes, image_format: str, expires_at: float | None = None) -> StoredImage:
        """Store a picture under ``image_uuid`` (replacing nothing that is already there)."""
        return self.images.setdefault(image_uuid, StoredImage(data, image_format, expires_at))

    def get(self, image_uuid: str) -> StoredImage | None:
        """The stored picture, if any."""
        return self.images.get(image_uuid)

    def url(self, image_uuid: str, origin: str) -> str:
        """The absolute URL of a stored picture on the emulator's own origin."""
        stored = self.images[image_uuid]
        return f"{origin}{IMAGE_PATH_PREFIX}{image_uuid}.{stored.extension}"

    def lookup_path(self, name: str) -> StoredImage | None:
        """The picture served at ``IMAGE_PATH_PREFIX + name`` (``<uuid>.<ext>``), if the extension matches."""
        image_uuid, _, extension = name.partition(".")
        stored = self.images.get(image_uuid)
        if stored is None or extension.lower() != stored.extension or stored.expired():
            return None
        return stored

    def resolve(self, value: object, rules: InputRules, *, origin: str, external_urls_reachable: bool) -> str:
        """The imageUUID of an input image, storing inline data as a new image; raises :class:`TaskError`."""
        kind, text, data = self._parse(value, rules)
        if kind == "uuid":
            return text
        if kind == "url":
            return self._resolve_url(text, rules, origin=origin, external_urls_reachable=external_urls_reachable)
        image_format = sniff_any_format(data)
        assert image_format is not None
        image_uuid = self.new_uuid()
        self.put(image_uuid, data, image_format)
        return image_uuid

    def check(self, value: object, rules: InputRules) -> None:
        """Check an input image's form without storing or downloading anything (a dry run)."""
        kind, text, _ = self._parse(value, rules)
        if kind == "url" and not urlsplit(text).netloc:
            raise self._invalid(rules, f"The image URL {text} has no host.")

    def _parse(self, value: object, rules: InputRules) -> tuple[str, str, bytes]:
        """``(kind, text, data)`` of an input: a stored image's UUID, a URL, or inline data (decoded)."""
        if not isinstance(value, str) or not value.strip():
            raise self._invalid(rules, "Each image must be a non-empty string: a UUID, a data URI, base64 "
                                       "data or a URL.")
        text = value.strip()
        if is_uuid(text):
            if not rules.allow_uuid:
                raise self._invalid(rules, "The image must be a URL, a data URI or base64 data.")
            stored = self.images.get(text)
            if stored is None or stored.expired():
                # The UUID is well-formed but names no stored image (never stored, or deleted by its ttl).
                # Runware's code for this is [UNVERIFIED]; ``mediaNotFound`` is the name the official SDKs'
                # error tables use for a missing media item (runware.md §6, NEWTS errors.test).
                raise TaskError(error_item(
                    "mediaNotFound", f"No image with UUID {text} was found. Upload it first with imageUpload.",
                    parameter=rules.parameter, value_type="string"))
            self._check_format(stored.image_format, rules)
            return "uuid", text, b""
        if text.lower().startswith(("http://", "https://")):
            return "url", text, b""
        if "://" in text:
            raise self._invalid(rules, "Only http and https URLs are supported.")
        data = self._decode_inline(text, rules)
        image_format = sniff_any_format(data)
        if image_format is None:
            raise self._invalid(rules, "The image data is not a PNG, JPG or WEBP image.")
        self._check_format(image_format, rules)
        return "inline", text, data

    def _resolve_url(self, url: str, rules: InputRules, *, origin: str, external_urls_reachable: bool) -> str:
        parts = urlsplit(url)
        if not parts.netloc:
            raise self._invalid(rules, f"The image URL {url} has no host.")
        own = urlsplit(origin)
        if parts.netloc.lower() == own.netloc.lower():
            name = parts.path[len(IMAGE_PATH_PREFIX):] if parts.path.startswith(IMAGE_PATH_PREFIX) else ""
            stored = self.lookup_path(name) if name else None
            if stored is None:
                raise self._unreachable(url, rules)
            self._check_format(stored.image_format, rules)
            # Runware stores every input it downloads under a new UUID (inputImagesUUID, runware.md §2.2).
            image_uuid = self.new_uuid()
            self.put(image_uuid, stored.data, stored.image_format)
            return image_uuid
        if not external_urls_reachable:
            raise self._unreachable(url, rules)
        # The emulator never downloads anything: a "reachable" external URL stands for a valid face photo,
        # stored as a small deterministic placeholder so that its UUID can be reused like any other.
        image_uuid = self.new_uuid()
        placeholder = render_image(seed=zlib.crc32(url.encode()), style="No style", width=64, height=64)
        self.put(image_uuid, placeholder, "PNG")
        return image_uuid

    @staticmethod
    def _decode_inline(text: str, rules: InputRules) -> bytes:
        match = _DATA_URI.match(text)
        payload = match.group("payload") if match else text
        if text.startswith("data:") and match is None:
            raise MediaStore._invalid(rules, "A data URI must have the form data:<mediaType>;base64,<data>.")
        compact = "".join(payload.split())
        if not compact or not _BASE64.match(compact):
            raise MediaStore._invalid(rules, "The image is not a UUID, a URL, a data URI or valid base64 data.")
        try:
            return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
        except (binascii.Error, ValueError) as error:
            raise MediaStore._invalid(rules, f"The image is not valid base64 data: {error}.") from error

    @staticmethod
    def _check_format(image_format: str, rules: InputRules) -> None:
        if image_format not in rules.formats:
            names = ", ".join("JPG" if name == "JPEG" else name for name in sorted(rules.formats))
            raise MediaStore._invalid(rules, f"Unsupported image format {image_format}. Supported formats "
                                             f"are: {names}.")

    @staticmethod
    def _invalid(rules: InputRules, message: str) -> TaskError:
        return TaskError(error_item(rules.code, message, parameter=rules.parameter, value_type="string"))

    @staticmethod
    def _unreachable(url: str, rules: InputRules) -> TaskError:
        # Runware's wording for a failed download is [UNVERIFIED]; it is reported as an invalid image
        # parameter, which is what the input is from the client's point of view.
        return MediaStore._invalid(rules, f"Could not download the image from {url}: the URL is not publicly "
                                          "reachable.")
