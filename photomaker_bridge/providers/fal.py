"""The fal adapter: ``fal-ai/photomaker`` through fal's queue, spoken by the official ``fal_client``.

Reference: ``shared/providers/fal.md`` (sections cited as §n). Translation tables first, then the adapter
(:class:`FalProvider`: pure translation into a :class:`~photomaker_bridge.Plan`), then the two performers
that run the flows' operations with one ``fal_client.SyncClient`` / ``AsyncClient``. This is the only
module of the package that imports ``fal_client``; every ``fal_client`` and ``httpx`` exception is mapped
to the bridge's own errors here (:func:`_mapped_errors`, style-guide rule 8).

Decisions the reference leaves open:

* **Reference photos** go to fal as one zip archive uploaded to fal storage (§3.3: a data-URI zip is
  reportedly refused). Only local photos (paths, bytes, data URIs, base64) can be zipped: a photo given as
  a URL is refused with :class:`~photomaker_bridge.InvalidRequestError` rather than downloaded, because
  translation does no network I/O and the bridge never fetches arbitrary user URLs (style-guide rule 3).
  Pass the bytes, or your own archive as ``provider_options={"fal": {"image_archive_url": ...}}`` (then the
  photos are not sent at all). A Runware image UUID only means something to Runware: refused too.
* **WEBP** photos are refused: fal's archive is only known to take PNG and JPEG (§3.4), and converting
  would need Pillow, which the library does not depend on.
* **More than 4 images** are split into submissions of at most 4 (``num_images`` 1–4, §4.1). With a seed,
  submission *k* gets ``seed + (images before it)`` so that no two submissions repeat an image (the
  Runware convention: image *i* has seed ``seed + i``); without one fal draws a seed per submission.
* **Width/height** are not inputs of fal-ai/photomaker (it makes 1024×1024, seed 003 output): any other
  size is a warning. **output_format** other than PNG and **safety_check** are warnings too.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime
import json
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, ClassVar, Final, Literal, TypeVar

import attrs
import cattrs
import fal_client
import fal_client.auth
import httpx

from .._http import CLEANUP_GRACE_SECONDS, Flow
from ..errors import (
    ConfigurationError,
    GenerationTimeoutError,
    InvalidRequestError,
    ProviderError,
    ProviderUnavailableError,
)
from ..images import ImageFormat, sha256_hex, zip_images
from ..jobs import JobHandle
from ..plan import Plan, UploadPlaceholder
from ..prompts import apply_trigger, find_triggers
from ..request import PhotoMakerRequest
from ..result import PhotoMakerResult
from ..styles import Style
from ._fal_flow import (
    FalCancel,
    FalFetch,
    FalFlows,
    FalStatusCheck,
    FalSubmit,
    FalUpload,
    JobTracker,
)
from ._fal_parse import (
    PROVIDER,
    FalStatus,
    error_for_answer,
    parse_logs,
    parse_submit,
    unreadable,
)
from ._polling import DurationEstimate, PollPolicy
from .base import (
    Capability,
    FlowContext,
    IdFactory,
    Provider,
    Translator,
    deep_merge,
    new_uuid,
    size_text,
    split_count,
    upload_placeholder,
)

__all__ = ["FalAsyncPerformer", "FalProvider", "FalSyncPerformer"]

# -- translation tables (fal.md §4.1; seed 003 StyleEnum, exact spellings) -------------------------------

_STYLE_TO_FAL: Final[Mapping[Style, str]] = {
    Style.NO_STYLE: "(No style)",
    Style.CINEMATIC: "Cinematic",
    Style.DISNEY_CHARACTER: "Disney Character",
    Style.DIGITAL_ART: "Digital Art",
    Style.PHOTOGRAPHIC: "Photographic",
    Style.FANTASY_ART: "Fantasy art",
    Style.NEONPUNK: "Neonpunk",
    Style.ENHANCE: "Enhance",
    Style.COMIC_BOOK: "Comic book",
    Style.LOWPOLY: "Lowpoly",
    Style.LINE_ART: "Line art",
}

_OUTPUT_FORMAT_TO_FAL: Final[Mapping[str, str | None]] = {"png": "png", "jpeg": None, "webp": None}
"""fal-ai/photomaker has no output format input and always answers PNG (seed 003 output example)."""

_STEPS_RANGE: Final = (20, 100)  # num_inference_steps, default 50
_GUIDANCE_RANGE: Final = (0.1, 10.0)  # guidance_scale, default 5
_STYLE_STRENGTH_RANGE: Final = (15, 50)  # style_strength, default 20
_MAX_IMAGES_PER_CALL: Final = 4  # num_images 1-4
_OUTPUT_SIDE: Final = 1024  # every fal-ai/photomaker image is 1024x1024
_SEED_MODULUS: Final = 2**63  # submission seeds wrap inside the request's own seed range
_TRIGGER: Final = "img"  # after the class word: "a man img" (fal.md §4.1, TencentARC)
_ZIP_CONTENT_TYPE: Final = "application/zip"
_ZIPPABLE_FORMATS: Final = frozenset({"png", "jpeg"})  # fal.md §3.4: WEBP in the archive is unknown

Pipeline = Literal["photomaker", "photomaker-style"]


@attrs.frozen(kw_only=True)
class _PhotoMakerArguments:
    """The ``fal-ai/photomaker`` input, in the schema's order (seed 003); unset optional fields are left out
    so that fal applies its own defaults."""

    image_archive_url: str
    prompt: str
    base_pipeline: str
    style: str
    negative_prompt: str | None = None
    num_inference_steps: int | None = None
    style_strength: int
    num_images: int
    guidance_scale: float | None = None
    seed: int | None = None


_WIRE: Final = cattrs.Converter(omit_if_default=True)


def _arguments_json(arguments: _PhotoMakerArguments) -> dict[str, Any]:
    """The arguments as JSON, keys in the schema's order (cattrs puts fields it may omit last)."""
    unstructured: dict[str, Any] = _WIRE.unstructure(arguments)
    return {field.name: unstructured[field.name] for field in attrs.fields(_PhotoMakerArguments)
            if field.name in unstructured}


TYPICAL_SECONDS: Final = 15.0
"""What a fal PhotoMaker request is expected to take before any has completed: SDXL at 1024², 50 steps on
an A6000 runs ~10–30 s (fal.md §4.3, [UNVERIFIED]: fal publishes no latency); learned from completed ones."""


@attrs.define
class FalProvider(Provider):
    """The fal adapter. ``FalProvider()`` reads ``FAL_KEY`` (or ``FAL_KEY_ID`` + ``FAL_KEY_SECRET``) when
    first used; ``FalProvider(key="id:secret")`` sets it explicitly.

    ``base_url`` points ``fal_client`` at another server (the fal emulator:
    ``FalProvider(key=emulators.fal.api_key, base_url=emulators.fal.url)``) for as long as a client using it
    is open (from its first fal call until ``close()``). fal_client keeps its hosts in module constants, so
    the patch is process-wide (fal.md §2): it would also redirect every other fal client of the process,
    sending their calls and API keys to that server. So while it is active, a client without ``base_url``
    (meant for fal itself) raises :class:`~photomaker_bridge.ConfigurationError` instead of making its call,
    as does a client with another ``base_url``; and a client with ``base_url`` raises it while a client
    without one is open (a client dropped without ``close()`` stops counting once it is garbage collected).
    Use one kind at a time per process, or close the other clients first.
    """

    name: ClassVar[str] = PROVIDER
    style_table: ClassVar[Mapping[Style, str]] = _STYLE_TO_FAL
    capabilities: ClassVar[tuple[Capability, ...]] = (
        Capability("prompt", "prompt", "adjusted",
                   "'img' exactly once, right after the class word; inserted when missing, 'rwre' renamed"),
        Capability("images", "image_archive_url", "adjusted",
                   "1–4 local PNG/JPEG photos in one zip, uploaded once to fal storage; URLs, WEBP and Runware "
                   "UUIDs refused (or pass your own zip as provider_options['fal']['image_archive_url'])"),
        Capability("style", "style", "native", "(No style), Cinematic, Disney Character, ... (11 styles)"),
        Capability("style_strength", "style_strength", "native", "integer 15–50"),
        Capability("negative_prompt", "negative_prompt", "native", "fal's default: empty"),
        Capability("num_images", "num_images", "adjusted",
                   "1–4 per submission; more are split into several submissions"),
        Capability("steps", "num_inference_steps", "adjusted", "20–100, clamped with a warning; fal's default 50"),
        Capability("guidance_scale", "guidance_scale", "adjusted", "0.1–10, clamped with a warning; fal's default 5"),
        Capability("seed", "seed", "adjusted", "submission k of a split gets seed + images before it"),
        Capability("width", None, "unsupported", "the model outputs 1024×1024"),
        Capability("height", None, "unsupported", "the model outputs 1024×1024"),
        Capability("output_format", None, "unsupported", "PNG only"),
        Capability("safety_check", None, "unsupported", "fal-ai/photomaker has no safety checker input"),
        Capability("provider_options", None, "native", "provider_options['fal'] merged verbatim into every payload"),
    )

    key: str | None = attrs.field(default=None, repr=False)
    """The fal API key (``"key_id:key_secret"``); ``None`` reads ``FAL_KEY`` or ``FAL_KEY_ID``+``FAL_KEY_SECRET``."""
    pipeline: Pipeline = "photomaker"
    """``base_pipeline``: ``photomaker`` (identity fidelity) or ``photomaker-style`` (stylised)."""
    application: str = "fal-ai/photomaker"
    """The fal application the payloads are submitted to."""
    base_url: str | None = None
    """Another server for fal_client (an emulator), e.g. ``http://127.0.0.1:8765``; ``None``: fal itself."""
    polling: PollPolicy = attrs.field(factory=lambda: PollPolicy(first_check=1.0, min_interval=0.25,
                                                                  max_interval=5.0))
    """The shape of the polling schedule (``_polling``): an early check, then tightening around the expected
    end. fal_client's own loop polls ten times a second (fal.md §1.8), too eager for the real service
    (fal.md §6, ISS fal-ai/fal #573); this one polls a handful of times per request."""
    expected_seconds: float | None = None
    """Submit-to-completion seconds to expect before any request has completed (default
    ``TYPICAL_SECONDS``); afterwards the schedule learns from completed requests."""
    poll_interval: float | None = None
    """A fixed number of seconds between status calls instead of the adaptive schedule (tests use a few
    hundredths against the emulator)."""
    with_logs: bool = True
    """Ask for the request's logs at every status call and turn new lines into ``log`` events."""
    _estimate: DurationEstimate = attrs.field(init=False, repr=False, eq=False)
    """Learned submit-to-completion time, shared by every call made with this adapter."""

    def __attrs_post_init__(self) -> None:
        if self.pipeline not in ("photomaker", "photomaker-style"):
            raise ConfigurationError(f"pipeline must be 'photomaker' or 'photomaker-style', got {self.pipeline!r}")
        if self.poll_interval is not None and not self.poll_interval > 0:
            raise ConfigurationError(f"poll_interval must be a positive number of seconds, got {self.poll_interval!r}")
        if self.expected_seconds is not None and not self.expected_seconds > 0:
            raise ConfigurationError(f"expected_seconds must be positive, got {self.expected_seconds!r}")
        self._estimate = DurationEstimate(self.expected_seconds or TYPICAL_SECONDS)

    # -- credentials ----------------------------------------------------------------------------------------

    def resolved_key(self) -> str:
        """The key to use: ``key``, else ``FAL_KEY``, else ``FAL_KEY_ID:FAL_KEY_SECRET`` (fal.md §5)."""
        if self.key:
            return self.key
        if os.environ.get("FAL_KEY"):
            return os.environ["FAL_KEY"]
        key_id, secret = os.environ.get("FAL_KEY_ID"), os.environ.get("FAL_KEY_SECRET")
        if key_id and secret:
            return f"{key_id}:{secret}"
        raise ConfigurationError("fal needs an API key: set FAL_KEY (or FAL_KEY_ID and FAL_KEY_SECRET), "
                                 "or pass FalProvider(key=...)")

    def require_key(self) -> None:
        """Raise :class:`ConfigurationError` naming ``FAL_KEY``, ``FAL_KEY_ID``/``FAL_KEY_SECRET`` and
        ``key=`` when no key is configured."""
        self.resolved_key()

    # -- translation ----------------------------------------------------------------------------------------

    def plan(self, request: PhotoMakerRequest, *, strict: bool = False, new_id: IdFactory = new_uuid) -> Plan:
        """The ``fal-ai/photomaker`` arguments for ``request`` (one per submission), the zip to upload first,
        and every adjustment. Pure: no network, no key. ``new_id`` is unused: fal assigns the request ids."""
        translator = Translator(self.name, strict=strict)
        options = dict(request.provider_options.get(self.name, {}))
        prompt = self._prompt(request, translator)
        upload = self._archive(request, translator, options)
        archive_url = upload.placeholder if upload is not None else str(options["image_archive_url"])
        style = translator.send("style", "style", _STYLE_TO_FAL[request.style])
        style_strength = int(translator.clamp("style_strength", "style_strength", request.style_strength,
                                              *_STYLE_STRENGTH_RANGE, "15-50"))
        if request.negative_prompt is None:
            translator.default("negative_prompt", "not sent: fal's default (empty)")
        else:
            translator.send("negative_prompt", "negative_prompt", request.negative_prompt)
        counts = split_count(request.num_images, _MAX_IMAGES_PER_CALL)
        note = "" if len(counts) == 1 else (f"fal takes 1-4 per submission: split into {len(counts)} submissions "
                                            f"({'+'.join(map(str, counts))})")
        translator.send("num_images", "num_images", counts[0], note)
        steps = None
        if request.steps is None:
            translator.default("steps", "not sent: fal's default (50)")
        else:
            steps = int(translator.clamp("steps", "num_inference_steps", request.steps, *_STEPS_RANGE, "20-100"))
        guidance = None
        if request.guidance_scale is None:
            translator.default("guidance_scale", "not sent: fal's default (5)")
        else:
            guidance = translator.clamp("guidance_scale", "guidance_scale", request.guidance_scale,
                                        *_GUIDANCE_RANGE, "0.1-10")
        seeds = self._seeds(request, counts, translator)
        self._unsupported(request, translator)
        translator.send("pipeline (FalProvider setting)", "base_pipeline", self.pipeline)
        payloads: list[dict[str, Any]] = []
        for count, seed in zip(counts, seeds, strict=True):
            arguments = _PhotoMakerArguments(
                image_archive_url=archive_url, prompt=prompt, base_pipeline=self.pipeline, style=style,
                negative_prompt=request.negative_prompt, num_inference_steps=steps, style_strength=style_strength,
                num_images=count, guidance_scale=guidance, seed=seed)
            payload = _arguments_json(arguments)
            # provider_options go in verbatim, after translation, and may override anything (rule 2).
            payload = translator.options(payload, options) if not payloads else deep_merge(payload, options)
            payloads.append(payload)
        target = f"fal queue: {self.application}" + (f" (at {self.base_url})" if self.base_url else "")
        return Plan(provider=self.name, target=target, payloads=payloads,
                    uploads=() if upload is None else (upload,), warnings=tuple(translator.warnings),
                    mapping=tuple(translator.mapping), images_per_payload=tuple(counts))

    def _prompt(self, request: PhotoMakerRequest, translator: Translator) -> str:
        text, warnings = apply_trigger(request.prompt, _TRIGGER, provider=self.name)
        for warning in warnings:
            translator.warn(warning)
        found = find_triggers(request.prompt)
        note = ""
        if warnings:
            note = warnings[0].reason
        elif found and found[0].group(0) != _TRIGGER:
            note = f"renamed the trigger {found[0].group(0)!r} to fal's {_TRIGGER!r}"
        translator.send("prompt", "prompt", text, note)
        return text

    def _archive(self, request: PhotoMakerRequest, translator: Translator,
                 options: Mapping[str, Any]) -> UploadPlaceholder | None:
        """The zip of the reference photos to upload, or ``None`` when ``provider_options`` supplies one."""
        count = len(request.images)
        if isinstance(options.get("image_archive_url"), str):
            translator.send("images", "image_archive_url", options["image_archive_url"],
                            f"the {count} reference photo(s) are not sent: provider_options['fal'] "
                            "supplies image_archive_url")
            return None
        members: list[tuple[ImageFormat, bytes]] = []
        for index, image in enumerate(request.images):
            field = f"images[{index}]"
            if image.kind == "runware_uuid":
                raise InvalidRequestError(field, image.source, "a path, bytes, a data URI or base64 of a photo",
                                          reason="a Runware image UUID only works with provider 'runware'")
            if image.kind == "url" or image.data is None or image.image_format is None:
                raise InvalidRequestError(
                    field, image.source, "a path, bytes, a data URI or base64 of a PNG or JPEG photo, or your own "
                    "zip as provider_options={'fal': {'image_archive_url': ...}}",
                    reason="fal takes the photos as one zip archive, and the bridge does not download URLs "
                           "to build it")
            if image.image_format not in _ZIPPABLE_FORMATS:
                raise InvalidRequestError(field, image.source, "a PNG or JPEG photo (convert WEBP first)",
                                          reason="fal's image archive is only known to take PNG and JPEG")
            members.append((image.image_format, image.data))
        data = zip_images(members)
        upload = _upload_for(data, count)
        translator.send("images", "image_archive_url", upload.placeholder,
                        f"{upload.description}, uploaded to fal storage before submitting")
        return upload

    def _seeds(self, request: PhotoMakerRequest, counts: Sequence[int], translator: Translator) -> list[int | None]:
        if request.seed is None:
            translator.default("seed", "not sent: fal draws a random seed per submission")
            return [None] * len(counts)
        offsets = [sum(counts[:index]) for index in range(len(counts))]
        seeds: list[int | None] = [(request.seed + offset) % _SEED_MODULUS for offset in offsets]
        note = "" if len(counts) == 1 else ("one seed per submission: seed + images before it ("
                                            + ", ".join(str(seed) for seed in seeds) + ")")
        translator.send("seed", "seed", seeds[0], note)
        return seeds

    def _unsupported(self, request: PhotoMakerRequest, translator: Translator) -> None:
        for field in ("width", "height"):
            value = getattr(request, field)
            if value is None:
                continue
            if value == _OUTPUT_SIDE:
                translator.default(field, "not sent: fal makes 1024x1024 images, as asked")
            else:
                translator.unsupported(field, value, "fal-ai/photomaker has no size input; its images are 1024x1024")
        if request.output_format is not None:
            if _OUTPUT_FORMAT_TO_FAL[request.output_format] is None:
                translator.unsupported("output_format", request.output_format,
                                       "fal-ai/photomaker has no output format input; its images are PNG")
            else:
                translator.default("output_format", "not sent: fal answers PNG, as asked")
        if request.safety_check is not None:
            translator.unsupported("safety_check", request.safety_check,
                                   "fal-ai/photomaker has no safety checker input")

    # -- flows ----------------------------------------------------------------------------------------------

    def _flows(self) -> FalFlows:
        if self.poll_interval is not None:
            fixed = self.poll_interval
            policy = PollPolicy(first_check=fixed, approach=1.0, min_interval=fixed, max_interval=fixed)
        else:
            policy = self.polling
        return FalFlows(self.application, policy, self._estimate, self.with_logs)

    def submit_flow(self, plan: Plan, context: FlowContext) -> Flow[JobHandle]:
        """Upload the zip (once per distinct content per client), submit every payload, return the handle."""
        return self._flows().submit(plan, context, None)

    def result_flow(self, handle: JobHandle, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Poll each request of ``handle``, fetch the results, and assemble one result."""
        return self._flows().result(handle, context, None)

    def generate_flow(self, plan: Plan, context: FlowContext) -> Flow[PhotoMakerResult]:
        """Submit, then collect; a call abandoned midway cancels its requests."""
        return self._flows().generate(plan, context)

    def handle_for(self, request_id: str) -> JobHandle:
        """A handle for a request submitted earlier (by any process) to this adapter's application."""
        return JobHandle(provider=self.name, request_ids=(request_id,),
                         submitted_at=datetime.datetime.now(datetime.UTC),
                         details={"application": self.application, "submitted_at_known": False})

    def sync_performer(self) -> FalSyncPerformer:
        """Runs the flows' fal operations with one ``fal_client.SyncClient`` (created on first use)."""
        return FalSyncPerformer(self)

    def async_performer(self) -> FalAsyncPerformer:
        """Runs the flows' fal operations with one ``fal_client.AsyncClient`` (created on first use)."""
        return FalAsyncPerformer(self)


def _upload_for(data: bytes, count: int) -> UploadPlaceholder:
    digest = sha256_hex(data)
    return UploadPlaceholder(
        kind="zip", placeholder=upload_placeholder("zip", digest),
        description=f"zip of {count} image{'s' if count != 1 else ''}, {size_text(len(data))}",
        image_indices=tuple(range(count)), size=len(data), sha256=digest, content_type=_ZIP_CONTENT_TYPE,
        file_name=f"photomaker-{digest[:12]}.zip", data=data)


# -- the seam with fal_client ------------------------------------------------------------------------------


class _ClientPatch:
    """Points fal_client's module constants at one ``base_url`` while at least one performer needs it.

    The constants are process-wide (fal.md §2, option B), so performers for the same base share one patch
    (reference-counted), and every other combination is refused rather than silently misdirected:

    * a performer for a different base while one is open;
    * a performer *without* ``base_url`` while a patch is active: its calls, and its API key, would go to the
      patched server instead of fal;
    * a patch while a performer without ``base_url`` is open (has made a call and is not closed): its later
      calls would go to the patched server. Open direct performers are held weakly, so one that was dropped
      without ``close()`` stops counting once it is garbage.
    """

    _lock = threading.Lock()
    _users = 0
    _base: str | None = None
    _patch: contextlib.AbstractContextManager[None] | None = None
    _direct: ClassVar[weakref.WeakSet[object]] = weakref.WeakSet()

    @classmethod
    def acquire(cls, base_url: str) -> None:
        with cls._lock:
            if cls._users and cls._base != base_url:
                raise ConfigurationError(f"fal_client already points at {cls._base}; it cannot also point at "
                                         f"{base_url} in the same process (close the other client first)")
            if len(cls._direct):
                raise ConfigurationError(
                    f"cannot point fal_client at {base_url}: fal_client's hosts are process-wide (fal.md §2) and "
                    "another fal client without base_url is open in this process, whose calls would then go "
                    f"to {base_url} too (close it first)")
            if not cls._users:
                patch = _point_fal_client_at(base_url)
                patch.__enter__()
                cls._patch, cls._base = patch, base_url
            cls._users += 1

    @classmethod
    def release(cls) -> None:
        with cls._lock:
            cls._users -= 1
            if cls._users == 0 and cls._patch is not None:
                patch, cls._patch, cls._base = cls._patch, None, None
                patch.__exit__(None, None, None)

    @classmethod
    def enter_direct(cls, performer: object) -> None:
        """Record that ``performer`` (no ``base_url``) talks to fal itself; refused while a patch is active."""
        with cls._lock:
            if cls._users:
                raise ConfigurationError(
                    "this fal client has no base_url, so it is meant for fal itself, but fal_client's hosts are "
                    f"process-wide (fal.md §2) and another fal client points them at {cls._base}: its calls and "
                    "API key would go there. Close the other client first, or give this one the same base_url")
            cls._direct.add(performer)

    @classmethod
    def leave_direct(cls, performer: object) -> None:
        with cls._lock:
            cls._direct.discard(performer)


def _point_fal_client_at(base_url: str) -> contextlib.AbstractContextManager[None]:
    from ..emulators._fal_patch import point_fal_client_at

    return point_fal_client_at(base_url)


def _response_body(response: httpx.Response | None) -> Any:
    if response is None:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _request_id_of(operation: Any) -> str | None:
    request_id = getattr(operation, "request_id", None)
    return request_id if isinstance(request_id, str) else None


@contextlib.contextmanager
def _mapped_errors(operation: Any, provider: FalProvider) -> Iterator[None]:
    """Turn what fal_client and httpx raise into the bridge's errors (fal.md §1.6, §1.9, §5)."""
    request_id = _request_id_of(operation)
    try:
        yield
    except ProviderError:
        raise
    except fal_client.FalClientHTTPError as error:
        raise error_for_answer(error.status_code, _response_body(error.response), error.response_headers,
                               request_id=request_id, error_type=error.error_type) from error
    except fal_client.FalClientTimeoutError as error:
        handle = provider.handle_for(error.request_id) if error.request_id else None
        raise GenerationTimeoutError(str(error), provider=PROVIDER, request_id=error.request_id,
                                     handle=handle) from error
    except fal_client.auth.MissingCredentialsError as error:
        raise ConfigurationError(f"{error} (or pass FalProvider(key=...))") from error
    except httpx.HTTPStatusError as error:
        # The sync CDN-token fetch raises httpx's own status error, not FalClientHTTPError (fal.md §3.2).
        response = error.response
        raise error_for_answer(response.status_code, _response_body(response), dict(response.headers),
                               request_id=request_id) from error
    except httpx.TimeoutException as error:
        # Raw httpx errors escape fal_client after its own retries (fal.md §1.9).
        raise ProviderUnavailableError(f"timed out talking to fal ({type(error).__name__}: {error})",
                                       provider=PROVIDER, request_id=request_id) from error
    except httpx.HTTPError as error:
        raise ProviderUnavailableError(f"could not talk to fal ({type(error).__name__}: {error})",
                                       provider=PROVIDER, request_id=request_id) from error
    except json.JSONDecodeError as error:
        # fal_client parses a body only after _raise_for_status let it through, so this was a success answer;
        # its exact status is not exposed, and every fal success the references show is 200 (fal.md §1.3–§1.6).
        raise unreadable(f"not JSON ({error.msg})", error.doc, request_id=request_id, status=200) from error
    except (KeyError, TypeError, ValueError) as error:
        # fal_client reads required keys with [] and raises ValueError("Unknown status: ...") (fal.md §1.4).
        raise unreadable(f"{type(error).__name__}: {error}", None, request_id=request_id) from error


def _status_of(status: fal_client.Status) -> FalStatus:
    """fal_client's status object as the bridge's :class:`FalStatus`."""
    if isinstance(status, fal_client.Queued):
        return FalStatus("IN_QUEUE", queue_position=status.position)
    if isinstance(status, fal_client.InProgress):
        return FalStatus("IN_PROGRESS", logs=parse_logs(status.logs))
    if isinstance(status, fal_client.Completed):
        return FalStatus("COMPLETED", logs=parse_logs(status.logs), metrics=dict(status.metrics or {}),
                         error=status.error, error_type=status.error_type)
    raise ValueError(f"Unknown status object: {status!r}")


_OPERATIONS: Final = (FalUpload, FalSubmit, FalStatusCheck, FalFetch, FalCancel)


def _check_operation(operation: Any) -> None:
    if not isinstance(operation, _OPERATIONS):
        raise TypeError(f"the fal performer cannot run {operation!r}")


def _deadline_error(operation: Any, remaining: float) -> ProviderUnavailableError:
    return ProviderUnavailableError(f"fal did not answer {type(operation).__name__} within the {remaining:.3g} s "
                                    "left before the deadline", provider=PROVIDER,
                                    request_id=_request_id_of(operation))


T = TypeVar("T")

_Hosts = Literal["patched", "direct"]
"""How a performer uses fal_client's process-wide hosts: it patched them, or it talks to fal itself."""


def _claim_hosts(provider: FalProvider, performer: object) -> _Hosts:
    """Point fal_client at the provider's ``base_url``, or record ``performer`` as talking to fal itself;
    either is refused when it would misdirect another open client (:class:`_ClientPatch`)."""
    if provider.base_url:
        _ClientPatch.acquire(provider.base_url)
        return "patched"
    _ClientPatch.enter_direct(performer)
    return "direct"


def _release_hosts(hosts: _Hosts | None, performer: object) -> None:
    if hosts == "patched":
        _ClientPatch.release()
    elif hosts == "direct":
        _ClientPatch.leave_direct(performer)


def _spawn(name: str, function: Callable[[], T]) -> concurrent.futures.Future[T]:
    """Run ``function`` in a new daemon thread; its outcome lands in the returned future.

    Not a fixed pool: a call cut short by a deadline keeps its thread for as long as fal_client retries
    (~50 s, fal.md §1.9), and in a pool later calls and cancels would queue behind such calls until they too
    ran out of time. Daemon, because ``concurrent.futures`` joins its workers at interpreter exit, so one
    stuck retry would hold up the caller's program for its whole length.
    """
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return  # cancelled before it started: nothing was sent
        try:
            result = function()
        except BaseException as error:  # handed to whoever waits, as concurrent.futures does
            future.set_exception(error)
        else:
            future.set_result(result)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class FalSyncPerformer:
    """Runs fal operations for the sync driver with one ``fal_client.SyncClient``.

    ``fal_client`` retries internally for up to ~50 s (fal.md §1.9) and its calls cannot be interrupted, so
    when the caller has a deadline each call runs in a thread of its own (:func:`_spawn`) and the driver
    waits at most the time left; a call cut short keeps running in its thread until fal_client gives up, and
    its outcome is dropped. A submit is the exception: fal may accept it after we stopped waiting, and nobody
    was told the id of that running (and billed) job, so it is cancelled in the background once fal answers.
    """

    def __init__(self, provider: FalProvider) -> None:
        self._provider = provider
        self._lock = threading.Condition()  # re-entrant: guards the state below, signals background work ending
        self._client: fal_client.SyncClient | None = None
        self._hosts: _Hosts | None = None
        self._uploads: set[concurrent.futures.Future[Any]] = set()
        """Uploads in flight in a worker thread (close() lets them end before fal_client's hosts go back)."""
        self._background: set[concurrent.futures.Future[Any]] = set()
        """Cancels sent in the background, and submits cut short whose request is cancelled once fal answers."""
        self._closing = False
        self._closed = False

    def _ensure(self) -> fal_client.SyncClient:
        with self._lock:
            if self._closing:
                raise ConfigurationError("this fal client is closed")
            if self._client is None:
                key = self._provider.resolved_key()
                if self._hosts is None:
                    self._hosts = _claim_hosts(self._provider, self)
                self._client = fal_client.SyncClient(key=key)
            return self._client

    def _call(self, client: fal_client.SyncClient, operation: Any) -> Callable[[], Any]:
        if isinstance(operation, FalUpload):
            return lambda: client.upload(operation.data, operation.content_type, operation.file_name)
        if isinstance(operation, FalSubmit):
            return lambda: self._submit(client, operation)
        if isinstance(operation, FalStatusCheck):
            return lambda: _status_of(client.status(operation.application, operation.request_id,
                                                    with_logs=operation.with_logs))
        if isinstance(operation, FalFetch):
            # result() polls status once more (it is COMPLETED), then GETs the response URL (fal.md §1.8).
            return lambda: client.result(operation.application, operation.request_id)
        assert isinstance(operation, FalCancel)
        return lambda: client.cancel(operation.application, operation.request_id)

    def _submit(self, client: fal_client.SyncClient, operation: FalSubmit) -> Any:
        handle = client.submit(operation.application, dict(operation.arguments))
        if operation.jobs is not None:
            operation.jobs.hook = self._cancel_later
        return parse_submit({"request_id": handle.request_id})

    def perform(self, operation: Any, remaining: float | None) -> Any:
        """Run ``operation``, waiting at most ``remaining`` seconds (``None``: no limit)."""
        _check_operation(operation)
        with _mapped_errors(operation, self._provider):
            client = self._ensure()
            call = self._call(client, operation)
            if remaining is None:
                return call()
            future = _spawn("fal-call", call)
            if isinstance(operation, FalUpload):
                self._track(self._uploads, future)
            finished = False
            try:
                finished = bool(concurrent.futures.wait([future], timeout=max(remaining, 0.001)).done)
            finally:
                # Out of time (or interrupted): a call that has not started yet is dropped; a submit that has
                # may still create a job nobody knows of, so it is cancelled once fal answers.
                if not finished and not future.cancel() and isinstance(operation, FalSubmit):
                    self._cancel_when_accepted(future, operation.application)
            if not finished:
                raise _deadline_error(operation, remaining)
            return future.result()

    def _track(self, futures: set[concurrent.futures.Future[Any]], future: concurrent.futures.Future[Any],
               on_done: Callable[[concurrent.futures.Future[Any]], None] | None = None) -> None:
        """Keep ``future`` in ``futures`` until it ends (after ``on_done`` ran), waking close()."""
        with self._lock:
            futures.add(future)

        def ended(finished: concurrent.futures.Future[Any]) -> None:
            try:
                if on_done is not None:
                    on_done(finished)
            finally:
                with self._lock:
                    futures.discard(finished)
                    self._lock.notify_all()

        future.add_done_callback(ended)  # outside the lock: it runs at once if the future is already done

    def _cancel_when_accepted(self, future: concurrent.futures.Future[Any], application: str) -> None:
        """A submit the deadline (and its grace) cut short: cancel its request once fal answers (fal.md §1.7)."""

        def accepted(finished: concurrent.futures.Future[Any]) -> None:
            if finished.cancelled() or finished.exception() is not None:
                return  # fal refused it or never heard of it: nothing runs
            self._cancel_later([(application, finished.result().request_id)])

        self._track(self._background, future, accepted)

    def _cancel_later(self, requests: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            client = self._client
            if client is None or self._closed:
                return
        for application, request_id in requests:
            self._track(self._background, _spawn("fal-cancel", partial(_quietly, client.cancel, application,
                                                                      request_id)))

    def close(self) -> None:
        """Finish background work within the clean-up grace, close fal_client's connection pool, restore
        fal_client's hosts. Takes at most ``CLEANUP_GRACE_SECONDS``.

        First the background work that keeps the caller from paying for jobs nobody collects: cancels, and
        submits cut short by a deadline (their request is cancelled once fal answers). Then fal_client's
        connection pool is closed, so that a call still retrying inside fal_client fails at its next attempt
        without sending anything (its URL was fixed when it began, fal.md §2). Uploads use connections of
        their own and may move on to another URL (fal.md §3.2), so they are given what is left of the grace
        before fal_client's hosts are put back.
        """
        with self._lock:
            if self._closing:
                return
            self._closing = True
            ends = time.monotonic() + CLEANUP_GRACE_SECONDS
            self._lock.wait_for(lambda: not self._background, timeout=CLEANUP_GRACE_SECONDS)
            self._closed = True
            client, uploads = self._client, list(self._uploads)
        if client is not None:
            # SyncClient has no close(); its httpx.Client is a cached_property in __dict__.
            http = client.__dict__.get("_client")
            if isinstance(http, httpx.Client):
                http.close()
        if self._hosts == "patched" and uploads:
            concurrent.futures.wait(uploads, timeout=max(ends - time.monotonic(), 0.0))
        hosts, self._hosts = self._hosts, None
        _release_hosts(hosts, self)


def _quietly(function: Callable[..., Any], *arguments: Any) -> None:
    with contextlib.suppress(Exception):
        function(*arguments)


async def _aquietly(awaitable: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await awaitable


def _async_http_of(client: fal_client.AsyncClient | None) -> httpx.AsyncClient | None:
    """The connection pool of ``client``, if it made one. AsyncClient has no aclose(); its httpx.AsyncClient
    is an async cached_property, stored in ``__dict__`` wrapped in an object whose ``value`` it is."""
    entry = None if client is None else client.__dict__.get("_client")
    http = getattr(entry, "value", None)
    return http if isinstance(http, httpx.AsyncClient) else None


class FalAsyncPerformer:
    """Runs fal operations for the async driver with one ``fal_client.AsyncClient`` per event loop.

    Each call is bounded with ``asyncio.wait_for(remaining)``, which also stops fal_client's retries. When
    the caller's task is cancelled while a ``generate`` call has requests in flight, the requests are
    cancelled in the background (fal keeps running, and billing, a request nobody collects); a submit cut
    short by the deadline or by the caller's cancellation runs on, and its request is cancelled once fal
    answers. :meth:`aclose` waits for that background work within the clean-up grace.

    An ``AsyncClient``'s connection pool belongs to the event loop it first ran on (fal.md §6: on the next
    ``asyncio.run`` it fails with "Event loop is closed"), so a call on another loop starts a fresh client.
    """

    def __init__(self, provider: FalProvider) -> None:
        self._provider = provider
        self._client: fal_client.AsyncClient | None = None
        self._hosts: _Hosts | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Task[Any]] = set()
        """Background cancels, and submits cut short whose request is cancelled once fal answers."""
        self._closing = False
        self._closed = False

    def _ensure(self) -> fal_client.AsyncClient:
        if self._closing:
            raise ConfigurationError("this fal client is closed")
        loop = asyncio.get_running_loop()
        if self._client is not None and self._loop is not loop:
            self._retire()
        if self._client is None:
            key = self._provider.resolved_key()
            if self._hosts is None:
                self._hosts = _claim_hosts(self._provider, self)
            self._client = fal_client.AsyncClient(key=key)
            self._loop = loop
        return self._client

    def _retire(self) -> None:
        """Drop the client of another event loop (fal.md §6). Its pool can only be closed on its own loop: that
        is asked for when the loop still runs (in another thread); a closed loop took its connections along."""
        http, loop = _async_http_of(self._client), self._loop
        self._client, self._loop = None, None
        self._background = set()  # the old loop's tasks cannot be awaited from another loop
        if http is not None and loop is not None and loop.is_running() and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # it closed meanwhile
                asyncio.run_coroutine_threadsafe(http.aclose(), loop)

    async def _call(self, client: fal_client.AsyncClient, operation: Any) -> Any:
        if isinstance(operation, FalUpload):
            return await client.upload(operation.data, operation.content_type, operation.file_name)
        if isinstance(operation, FalStatusCheck):
            return _status_of(await client.status(operation.application, operation.request_id,
                                                  with_logs=operation.with_logs))
        if isinstance(operation, FalFetch):
            return await client.result(operation.application, operation.request_id)
        assert isinstance(operation, FalCancel)
        return await client.cancel(operation.application, operation.request_id)

    async def _submit(self, client: fal_client.AsyncClient, operation: FalSubmit, remaining: float | None) -> Any:
        # The submit runs as a task of its own, awaited through a shield: when the deadline (past the grace the
        # driver gives a step that creates a job) or the caller's cancellation stops the wait, fal may still
        # accept it, and nobody would know the id of a job that runs and bills. The task runs on instead, and
        # its request is cancelled once fal answers (fal.md §1.7).
        task = asyncio.ensure_future(client.submit(operation.application, dict(operation.arguments)))
        try:
            if remaining is None:
                handle = await asyncio.shield(task)
            else:
                handle = await self._bounded(asyncio.shield(task), operation, remaining)
        except BaseException:
            if not task.done():
                self._cancel_when_accepted(task, operation.application)
            raise
        return parse_submit({"request_id": handle.request_id})

    @staticmethod
    async def _bounded(awaitable: Awaitable[T], operation: Any, remaining: float) -> T:
        try:
            return await asyncio.wait_for(awaitable, max(remaining, 0.001))
        except TimeoutError as error:
            if isinstance(error, fal_client.FalClientTimeoutError):
                raise
            raise _deadline_error(operation, remaining) from None

    def _watch(self, jobs: JobTracker) -> None:
        """Cancel ``jobs``' requests if the task running the flow ends before the flow does.

        Called from :meth:`_perform`, which runs in the caller's task (``asyncio.wait_for`` runs the call in a
        task of its own on Python 3.11, which ends with every call)."""
        jobs.hook = self._cancel_later
        task = asyncio.current_task()
        if task is None or jobs.on_close is not None:
            return

        def ended(_: object) -> None:
            jobs.abandon()

        def unwatch() -> None:
            task.remove_done_callback(ended)

        task.add_done_callback(ended)
        # A long-lived task may run many generations: stop watching once this one is over.
        jobs.on_close = unwatch

    def perform(self, operation: Any, remaining: float | None) -> Awaitable[Any]:
        """Run ``operation``, waiting at most ``remaining`` seconds (``None``: no limit)."""
        _check_operation(operation)
        return self._perform(operation, remaining)

    async def _perform(self, operation: Any, remaining: float | None) -> Any:
        jobs: JobTracker | None = getattr(operation, "jobs", None)
        try:
            with _mapped_errors(operation, self._provider):
                client = self._ensure()
                if isinstance(operation, FalSubmit):
                    if jobs is not None:
                        self._watch(jobs)
                    return await self._submit(client, operation, remaining)
                if remaining is None:
                    return await self._call(client, operation)
                return await self._bounded(self._call(client, operation), operation, remaining)
        except asyncio.CancelledError:
            # The caller cancelled: nobody will collect this call's requests (Python 3.12+ wait_for cancels
            # inside the caller's own task, so the task's done-callback may come much later).
            if jobs is not None:
                jobs.abandon()
            raise

    def _cancel_when_accepted(self, task: asyncio.Task[Any], application: str) -> None:
        """A submit nobody waits for any more: cancel its request once fal answers (fal.md §1.7)."""

        def accepted(finished: asyncio.Task[Any]) -> None:
            self._background.discard(finished)
            if finished.cancelled() or finished.exception() is not None:
                return  # fal refused it or never heard of it: nothing runs
            self._cancel_later([(application, finished.result().request_id)])

        self._background.add(task)
        task.add_done_callback(accepted)

    def _cancel_later(self, requests: Sequence[tuple[str, str]]) -> None:
        loop, client = self._loop, self._client
        if loop is None or client is None or self._closed:
            return

        def start() -> None:
            for application, request_id in requests:
                cancel = asyncio.wait_for(client.cancel(application, request_id), CLEANUP_GRACE_SECONDS)
                task = loop.create_task(_aquietly(cancel))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

        running = None
        with contextlib.suppress(RuntimeError):
            running = asyncio.get_running_loop()
        if running is loop:
            start()
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing can be sent any more
            loop.call_soon_threadsafe(start)

    async def aclose(self) -> None:
        """Finish background work within the clean-up grace, close fal_client's connection pool, restore
        fal_client's hosts. Takes at most ``CLEANUP_GRACE_SECONDS``."""
        if self._closing:
            return
        self._closing = True
        loop = asyncio.get_running_loop()
        ends = loop.time() + CLEANUP_GRACE_SECONDS
        await asyncio.sleep(0)  # let cancels scheduled by a just-cancelled task start
        while True:
            # A submit that ends here starts its cancel from its done-callback: look again until none is left.
            waiting = {task for task in self._background if task.get_loop() is loop and not task.done()}
            left = ends - loop.time()
            if not waiting or left <= 0:
                break
            await asyncio.wait(waiting, timeout=left)
        self._closed = True
        for task in self._background:
            if task.get_loop() is loop:
                task.cancel()  # out of time; the pool closes below, so they could not send anything anyway
        self._background = set()
        if self._loop is loop:
            http, self._client = _async_http_of(self._client), None
            if http is not None:
                await http.aclose()
        else:
            self._retire()
        hosts, self._hosts = self._hosts, None
        _release_hosts(hosts, self)
