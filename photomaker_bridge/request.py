"""The unified request: one PhotoMaker generation, before any provider is chosen.

:class:`PhotoMakerRequest` validates at construction everything that holds for every provider, so a bad
request fails here, naming the field, before a provider or a network is involved. What differs between
providers (ranges, spellings, unsupported fields) is handled by each adapter's translation, which reports
every adjustment as a :class:`~photomaker_bridge.BridgeWarning`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, cast

import attrs

from ._convert import converter
from .errors import InvalidRequestError
from .images import ImageFormat, build_data_uri, content_type_of, image_size, parse_data_uri, sha256_hex, sniff_format
from .prompts import check_prompts
from .styles import Style, normalize_style

__all__ = [
    "DEFAULT_MAX_IMAGE_BYTES",
    "PROVIDER_NAMES",
    "ImageKind",
    "OutputFormat",
    "PhotoMakerRequest",
    "ReferenceImage",
    "structure_request",
]

DEFAULT_MAX_IMAGE_BYTES = 20 * 1024 * 1024
"""The default size cap of one reference image: 20 MB."""

PROVIDER_NAMES: tuple[str, ...] = ("eachlabs", "fal", "runware")
"""The providers this package speaks to, by the lowercase name used everywhere."""

ImageKind = Literal["path", "bytes", "url", "data_uri", "base64", "runware_uuid"]
OutputFormat = Literal["png", "jpeg", "webp"]

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_BASE64 = re.compile(r"^[A-Za-z0-9+/\s]+={0,2}$")
_MAX_SEED = 2**63 - 1
_MAX_NUM_IMAGES = 100


def _exists(path: Path) -> bool:
    """``path.exists()``, but False where the OS refuses the name itself (too long, a NUL byte): a string
    that is no path at all (long bare base64, say) must not end the check with an ``OSError``."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    text = str(value)
    if text.startswith("data:"):
        return text[:40] + "..."
    return text if len(text) <= 80 else text[:77] + "..."


@attrs.frozen
class ReferenceImage:
    """One reference photo of the person, ready for any provider.

    Build it with :meth:`load` (``PhotoMakerRequest`` does this for every item of ``images``). Local data
    (a path, bytes, a data URI, bare base64) is read once, checked (PNG, JPEG or WEBP by magic bytes, under
    the size cap), measured from its header and hashed. URLs stay URLs: nothing is fetched.
    """

    kind: ImageKind = attrs.field(eq=False)
    """Where the image came from: ``path``, ``bytes``, ``url``, ``data_uri``, ``base64`` or ``runware_uuid``."""
    source: str = attrs.field(eq=False)
    """A short description of the source for messages: the path, the URL, ``<1234 bytes>`` ...
    (Neither ``kind`` nor ``source`` takes part in equality: the same bytes are the same image.)"""
    data: bytes | None = attrs.field(default=None, repr=False)
    """The encoded image, for local kinds; ``None`` for URLs and Runware UUIDs."""
    url: str | None = None
    """The ``http(s)`` URL, for ``kind="url"``."""
    uuid: str | None = None
    """The Runware image UUID, for ``kind="runware_uuid"`` (only Runware understands it)."""
    image_format: ImageFormat | None = None
    """``png``, ``jpeg`` or ``webp`` from the magic bytes; ``None`` when not local."""
    width: int | None = None
    """Pixels, read from the header; ``None`` when not local or unreadable."""
    height: int | None = None
    """Pixels, read from the header; ``None`` when not local or unreadable."""
    sha256: str | None = None
    """SHA-256 of ``data`` (hex): the key of upload caches. ``None`` when not local."""

    @property
    def is_local(self) -> bool:
        """Whether the bytes are here (and must be uploaded or inlined), as opposed to a URL or UUID."""
        return self.data is not None

    @property
    def size(self) -> int | None:
        """Bytes of ``data``, or ``None`` when not local."""
        return None if self.data is None else len(self.data)

    @property
    def content_type(self) -> str | None:
        """``image/png`` ... when local."""
        return None if self.image_format is None else content_type_of(self.image_format)

    def data_uri(self) -> str:
        """The image as ``data:image/...;base64,...`` (local images only)."""
        if self.data is None or self.image_format is None:
            raise ValueError(f"{self.source} is not local; it has no data URI")
        return build_data_uri(self.data, content_type_of(self.image_format))

    def serialize(self) -> str:
        """A string that :meth:`load` turns back into this image: the path, URL or UUID, else a data URI."""
        if self.kind == "path":
            return self.source
        if self.kind == "url" and self.url is not None:
            return self.url
        if self.kind == "runware_uuid" and self.uuid is not None:
            return self.uuid
        return self.data_uri()

    @classmethod
    def load(cls, value: ReferenceImage | str | Path | bytes | bytearray, *, index: int = 0,
             max_bytes: int = DEFAULT_MAX_IMAGE_BYTES, field: str | None = None) -> ReferenceImage:
        """Build a reference image from a path, bytes, an ``http(s)`` URL, a data URI, bare base64 or a
        Runware image UUID.

        ``index`` is the image's position in the request, used in error messages. Raises
        :class:`InvalidRequestError` naming ``images[index]`` (or ``field``), the source and why.
        """
        if isinstance(value, ReferenceImage):
            return value
        field = field or f"images[{index}]"
        if isinstance(value, bytes | bytearray):
            return cls._local("bytes", f"<{len(value)} bytes>", bytes(value), field, max_bytes)
        if isinstance(value, Path):
            return cls._from_path(value, field, max_bytes)
        if not isinstance(value, str):
            raise InvalidRequestError(field, value, "a path, bytes, an http(s) URL, a data URI, base64 or a "
                                      "Runware image UUID", reason=f"unsupported type {type(value).__name__}")
        text = value.strip()
        if not text:
            raise InvalidRequestError(field, value, "a path, an http(s) URL, a data URI, base64 or a Runware image "
                                      "UUID", reason="it is empty")
        lowered = text.lower()
        if lowered.startswith(("http://", "https://")):
            return cls(kind="url", source=text, url=text)
        if lowered.startswith("data:"):
            try:
                _, data = parse_data_uri(text)
            except ValueError as error:
                raise InvalidRequestError(field, _describe(text), "a data:image/...;base64,... URI",
                                          reason=str(error)) from error
            return cls._local("data_uri", _describe(text), data, field, max_bytes)
        if _UUID.match(text) and not _exists(Path(text)):
            return cls(kind="runware_uuid", source=text, uuid=text.lower())
        try:
            path = Path(text).expanduser()
        except RuntimeError as error:  # "~someone/..." naming no user on this machine
            raise InvalidRequestError(field, _describe(text), "an existing file, an http(s) URL, a data URI, "
                                      "base64 or a Runware image UUID", reason=str(error)) from error
        if len(text) < 4096 and _exists(path):
            return cls._from_path(path, field, max_bytes)
        if len(text) >= 64 and _BASE64.match(text):
            try:
                data = base64.b64decode(text, validate=False)
            except (binascii.Error, ValueError) as error:
                raise InvalidRequestError(field, _describe(text), "valid base64 of a PNG, JPEG or WEBP image",
                                          reason=str(error)) from error
            return cls._local("base64", f"<base64, {len(text)} characters>", data, field, max_bytes)
        raise InvalidRequestError(field, _describe(text), "an existing file, an http(s) URL, a data URI, base64 "
                                  "or a Runware image UUID", reason="no such file")

    @classmethod
    def _from_path(cls, path: Path, field: str, max_bytes: int) -> ReferenceImage:
        if not _exists(path):
            raise InvalidRequestError(field, str(path), "an existing image file", reason="no such file")
        if not path.is_file():
            raise InvalidRequestError(field, str(path), "an image file", reason="not a regular file")
        try:
            size = path.stat().st_size
            if size > max_bytes:
                raise InvalidRequestError(field, str(path), f"at most {max_bytes} bytes",
                                          reason=f"the file has {size} bytes")
            data = path.read_bytes()
        except OSError as error:
            raise InvalidRequestError(field, str(path), "a readable image file",
                                      reason=f"cannot read it: {error.strerror or error}") from error
        return cls._local("path", str(path), data, field, max_bytes)

    @classmethod
    def _local(cls, kind: ImageKind, source: str, data: bytes, field: str, max_bytes: int) -> ReferenceImage:
        allowed = "a PNG, JPEG or WEBP image"
        if not data:
            raise InvalidRequestError(field, source, allowed, reason="it is empty")
        if len(data) > max_bytes:
            raise InvalidRequestError(field, source, f"at most {max_bytes} bytes",
                                      reason=f"it has {len(data)} bytes")
        image_format = sniff_format(data)
        if image_format is None:
            raise InvalidRequestError(field, source, allowed, reason="its bytes are not a PNG, JPEG or WEBP image")
        dimensions = image_size(data)
        width, height = dimensions if dimensions else (None, None)
        return cls(kind=kind, source=source, data=data, image_format=image_format, width=width, height=height,
                   sha256=sha256_hex(data))


def _to_images(value: Any) -> tuple[ReferenceImage, ...]:
    if isinstance(value, str | bytes | bytearray | Path | ReferenceImage):
        value = [value]
    if not isinstance(value, Iterable):
        raise InvalidRequestError("images", value, "a list of 1 to 4 reference images")
    items = list(value)
    if not 1 <= len(items) <= 4:
        raise InvalidRequestError("images", f"<{len(items)} images>", "1 to 4 reference images of the person")
    return tuple(ReferenceImage.load(item, index=index) for index, item in enumerate(items))


def _to_initial_image(value: Any) -> ReferenceImage | None:
    return None if value is None else ReferenceImage.load(value, field="initial_image")


_OUTPUT_FORMATS: dict[str, OutputFormat] = {"png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp"}


def _to_output_format(value: Any) -> OutputFormat | None:
    if value is None:
        return None
    if isinstance(value, str) and value.lower() in _OUTPUT_FORMATS:
        return _OUTPUT_FORMATS[value.lower()]
    raise InvalidRequestError("output_format", value, "one of png, jpeg (jpg), webp, or None for the default")


def _to_provider_options(value: Any) -> dict[str, dict[str, Any]]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidRequestError("provider_options", value, "a mapping of provider name to a mapping of fields")
    options: dict[str, dict[str, Any]] = {}
    for name, fields in value.items():
        if name not in PROVIDER_NAMES:
            raise InvalidRequestError(f"provider_options[{name!r}]", name,
                                      "provider names: " + ", ".join(PROVIDER_NAMES), reason="unknown provider")
        if not isinstance(fields, Mapping) or not all(isinstance(key, str) for key in fields):
            raise InvalidRequestError(f"provider_options[{name!r}]", fields, "a mapping of field name to value")
        for key, item in fields.items():
            _check_json(item, f"provider_options[{name!r}][{key!r}]")
        options[name] = dict(fields)
    return options


def _check_json(value: Any, path: str) -> None:
    """Refuse what a provider's JSON body cannot carry: ``provider_options`` are sent verbatim, so a set, bytes
    or a NaN would otherwise fail (or go out as invalid JSON) only after the photos were uploaded."""
    allowed = "JSON values only: str, int, float (finite), bool, None, lists and mappings with str keys"
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequestError(path, value, allowed, reason="JSON has no NaN or infinity")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequestError(f"{path}[{key!r}]", key, allowed, reason="JSON object keys are strings")
            _check_json(item, f"{path}[{key!r}]")
        return
    raise InvalidRequestError(path, value, allowed, reason=f"a {type(value).__name__} is not JSON")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require_int(field: str, value: object, low: int, high: int | None, allowed: str) -> None:
    if not _is_int(value) or cast(int, value) < low or (high is not None and cast(int, value) > high):
        raise InvalidRequestError(field, value, allowed)


@attrs.frozen
class PhotoMakerRequest:
    """One identity-preserving generation: reference photos of a person, a prompt, a style.

    ``None`` in an optional field means "the provider's default". Construction raises
    :class:`InvalidRequestError` for anything no provider accepts. Example::

        PhotoMakerRequest(prompt="a photo of a man img in a spacesuit", images=["face.jpg"],
                          style="cinematic", num_images=2, seed=42)
    """

    prompt: str
    """What to draw. May hold the trigger word ``img`` or ``rwre`` once, right after the class word ("a man
    img"); without one, each adapter inserts its provider's trigger and warns."""
    images: tuple[ReferenceImage, ...] = attrs.field(converter=_to_images)
    """1 to 4 photos of the same person: paths, bytes, URLs, data URIs, base64 or Runware image UUIDs."""
    style: Style = attrs.field(default=Style.NO_STYLE, converter=normalize_style)
    """The style template; any provider's spelling is accepted. Default: no style (best identity fidelity)."""
    style_strength: int = 20
    """How strongly the style applies, 15–50 (lower keeps more identity)."""
    negative_prompt: str | None = None
    """What to avoid; must not contain a trigger word. ``None``: the provider's default."""
    num_images: int = 1
    """How many images to generate, 1–100. Providers with a lower per-call maximum get several calls."""
    steps: int | None = None
    """Denoising steps (≥ 1); clamped to each provider's range with a warning. ``None``: provider default."""
    guidance_scale: float | None = None
    """Classifier-free guidance (≥ 0); clamped to each provider's range with a warning. ``None``: default."""
    seed: int | None = None
    """Seed for reproducible output, 0 to 2**63-1. ``None``: random."""
    width: int | None = None
    """Output width in pixels: a multiple of 64 in 128–2048. ``None``: the provider's default (1024)."""
    height: int | None = None
    """Output height in pixels: a multiple of 64 in 128–2048. ``None``: the provider's default (1024)."""
    output_format: OutputFormat | None = attrs.field(default=None, converter=_to_output_format)
    """``png``, ``jpeg`` or ``webp`` (``jpg`` is accepted). ``None``: the provider's default."""
    safety_check: bool | None = None
    """Ask the provider to check outputs for unsafe content. ``None``: the provider's default."""
    initial_image: ReferenceImage | None = attrs.field(default=None, converter=_to_initial_image)
    """An image to start from (image-to-image), from the same sources as ``images``. Providers without
    image-to-image leave it out with a warning. ``None``: generate from noise."""
    initial_image_strength: float | None = None
    """How far from ``initial_image`` to go, 0–1 (fal: "how much noise to add"; its default 0.5). Needs
    ``initial_image``. ``None``: the provider's default."""
    provider_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, converter=_to_provider_options,
                                                                    hash=False)
    """Extra wire fields per provider (``{"runware": {"scheduler": "..."}}``), merged verbatim into that
    provider's payload after translation: they can override anything the bridge computed. (Left out of
    ``hash()``, which a dict cannot take, so that a request can key a cache.)"""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InvalidRequestError("prompt", self.prompt, "a non-empty string describing the picture")
        if self.negative_prompt is not None and not isinstance(self.negative_prompt, str):
            raise InvalidRequestError("negative_prompt", self.negative_prompt, "a string or None")
        _require_int("style_strength", self.style_strength, 15, 50, "an integer from 15 to 50")
        _require_int("num_images", self.num_images, 1, _MAX_NUM_IMAGES,
                     f"an integer from 1 to {_MAX_NUM_IMAGES}")
        if self.steps is not None:
            _require_int("steps", self.steps, 1, None, "an integer of at least 1, or None")
        if self.guidance_scale is not None and (
            isinstance(self.guidance_scale, bool) or not isinstance(self.guidance_scale, int | float)
            or not math.isfinite(self.guidance_scale) or self.guidance_scale < 0
        ):
            raise InvalidRequestError("guidance_scale", self.guidance_scale, "a finite number of at least 0, or None")
        if self.seed is not None:
            _require_int("seed", self.seed, 0, _MAX_SEED, "an integer from 0 to 2**63-1, or None")
        for field in ("width", "height"):
            value = getattr(self, field)
            if value is not None and (not _is_int(value) or not 128 <= value <= 2048 or value % 64):
                raise InvalidRequestError(field, value, "a multiple of 64 from 128 to 2048, or None")
        if self.safety_check is not None and not isinstance(self.safety_check, bool):
            raise InvalidRequestError("safety_check", self.safety_check, "True, False or None")
        strength = self.initial_image_strength
        if strength is not None:
            if isinstance(strength, bool) or not isinstance(strength, int | float) or not math.isfinite(strength) \
                    or not 0 <= strength <= 1:
                raise InvalidRequestError("initial_image_strength", strength, "a number from 0 to 1, or None")
            if self.initial_image is None:
                raise InvalidRequestError("initial_image_strength", strength, "None without an initial_image",
                                          reason="it says how far to go from the initial image, and there is none")
        check_prompts(self.prompt, self.negative_prompt)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; images become their path, URL, UUID or a data URI."""
        value: dict[str, Any] = converter.unstructure(self)
        return value

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> PhotoMakerRequest:
        """Build a request from a dict (as from JSON). Unknown keys are refused by name."""
        return structure_request(value)


_REQUEST_FIELDS = {field.name for field in attrs.fields(PhotoMakerRequest)}
_REQUIRED = {field.name for field in attrs.fields(PhotoMakerRequest) if field.default is attrs.NOTHING}


def structure_request(value: Any) -> PhotoMakerRequest:
    """A :class:`PhotoMakerRequest` from a dict, refusing unknown or missing keys by name."""
    if not isinstance(value, Mapping):
        raise InvalidRequestError("request", value, "a mapping of field names to values")
    for key in value:
        if key not in _REQUEST_FIELDS:
            raise InvalidRequestError(str(key), value[key], "known fields: " + ", ".join(sorted(_REQUEST_FIELDS)),
                                      reason="unknown field")
    for key in sorted(_REQUIRED - set(value)):
        raise InvalidRequestError(key, None, "this field is required", reason="missing")
    return PhotoMakerRequest(**dict(value))


# The converter learns our types where they live (``_convert`` imports none of them).
converter.register_unstructure_hook(ReferenceImage, lambda image: image.serialize())
converter.register_structure_hook(ReferenceImage, lambda value, _: ReferenceImage.load(value))
converter.register_structure_hook(PhotoMakerRequest, lambda value, _: structure_request(value))
