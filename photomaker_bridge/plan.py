"""A translation's outcome: what will be sent to one provider, and everything changed on the way.

``explain(request, provider)`` returns a :class:`Plan` without touching the network or needing a key. The
payloads are exactly what will go on the wire, except where a reference image must first be uploaded: there
the payload holds an :class:`UploadPlaceholder`'s ``placeholder`` string, which the client replaces with the
URL the provider's storage returns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import attrs

from .result import BridgeWarning, as_tuple

__all__ = ["FieldMapping", "Plan", "UploadPlaceholder"]


@attrs.frozen
class UploadPlaceholder:
    """A file that must be uploaded before the payloads can be sent, and the string standing for its URL."""

    kind: Literal["zip", "image"]
    """``zip`` (fal: one archive of all the reference photos) or ``image`` (one photo)."""
    placeholder: str
    """The exact string in the payload that the uploaded file's URL (or id) replaces."""
    description: str
    """For people: ``"zip of 3 images, 412 KB"``."""
    image_indices: tuple[int, ...] = attrs.field(converter=as_tuple)
    """Which of the request's images the upload carries."""
    size: int
    """Bytes to upload."""
    sha256: str
    """The upload cache key: the SHA-256 of the bytes of an ``image``; for a ``zip``, the SHA-256 of its members'
    formats and SHA-256s (the archive is deterministic, so this names its bytes exactly without building it)."""
    content_type: str
    """MIME type of the upload (``application/zip``, ``image/png`` ...)."""
    file_name: str
    """A generated, safe file name for the upload."""
    _content: bytes | Callable[[], bytes] = attrs.field(repr=False, eq=False, alias="data")
    """The bytes, or a function building them (given as ``data=``)."""

    @property
    def data(self) -> bytes:
        """The bytes to upload. An archive is built on each access: the flows read it only when the upload cache
        misses and drop it once uploaded, so that no plan, handle or call in flight keeps a copy
        (docs/architecture.md, "Uploads")."""
        content = self._content
        return content() if callable(content) else content

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict without the bytes."""
        return {
            "kind": self.kind, "placeholder": self.placeholder, "description": self.description,
            "image_indices": list(self.image_indices), "size": self.size, "sha256": self.sha256,
            "content_type": self.content_type, "file_name": self.file_name,
        }


@attrs.frozen
class FieldMapping:
    """One line of a plan's field-by-field account: unified field → provider field → value sent → note."""

    unified_field: str
    """The :class:`~photomaker_bridge.PhotoMakerRequest` field (or ``provider_options.<key>``)."""
    provider_field: str | None
    """The provider's wire field, or ``None`` when nothing was sent for it."""
    value: Any
    """The value sent (for several calls, the first call's value); ``None`` when not sent."""
    note: str = ""
    """What happened on the way: clamped, renamed, inserted, left out, provider default ..."""


@attrs.frozen
class Plan:
    """Everything one provider will be sent for a request, before anything is sent."""

    provider: str
    """``"runware"``, ``"fal"`` or ``"eachlabs"``."""
    target: str
    """Where the payloads go, for people: ``"POST https://api.runware.ai/v1"``."""
    payloads: Sequence[Any] = attrs.field(converter=as_tuple)
    """The wire payloads in sending order, exactly as they will be sent (JSON values). Runware: one task
    array; fal: one arguments object per submission; Eachlabs: one create body per prediction."""
    uploads: Sequence[UploadPlaceholder] = attrs.field(default=(), converter=as_tuple)
    """Files the payloads depend on, uploaded first."""
    warnings: Sequence[BridgeWarning] = attrs.field(default=(), converter=as_tuple)
    """Every adjustment made for this provider."""
    mapping: Sequence[FieldMapping] = attrs.field(default=(), converter=as_tuple)
    """Field-by-field account of the translation."""
    images_per_payload: Sequence[int] = attrs.field(default=(), converter=as_tuple)
    """How many images each payload asks for, in the same order as ``payloads``."""
    submit_options: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    """Settings of the submission that travel beside the payloads rather than inside them (fal: ``webhook_url``,
    ``priority``, ``hint``, ``start_timeout``, which fal_client sends as a query parameter and headers)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (uploads without their bytes)."""
        from ._convert import converter

        return {
            "provider": self.provider,
            "target": self.target,
            "payloads": list(self.payloads),
            "uploads": [upload.to_dict() for upload in self.uploads],
            "warnings": [converter.unstructure(warning) for warning in self.warnings],
            "mapping": [converter.unstructure(line) for line in self.mapping],
            "images_per_payload": list(self.images_per_payload),
            "submit_options": dict(self.submit_options),
        }


def _register_upload_hooks() -> None:
    """An upload travels through the converter with its bytes as ``data`` (an archive is built for it)."""
    import base64

    from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

    from ._convert import converter

    def unstructure_content(content: bytes | Callable[[], bytes]) -> str:
        return base64.b64encode(content() if callable(content) else content).decode("ascii")

    def structure_content(value: str, _: object) -> bytes:
        return base64.b64decode(value)

    content = override(rename="data", unstruct_hook=unstructure_content, struct_hook=structure_content)
    converter.register_unstructure_hook(UploadPlaceholder, make_dict_unstructure_fn(
        UploadPlaceholder, converter, _content=content))
    converter.register_structure_hook(UploadPlaceholder, make_dict_structure_fn(
        UploadPlaceholder, converter, _cattrs_forbid_extra_keys=True, _content=content))


_register_upload_hooks()
