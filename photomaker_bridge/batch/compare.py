"""``compare``: the same PhotoMaker jobs on several providers — reference sets × prompts × styles × seeds ×
providers — run through the batch runner, then summarised and reported.

Before the first request it plans every job, checks keys, and estimates the cost of what is left to run; a
cost above ``max_cost`` is refused (:func:`~photomaker_bridge.batch.preflight.check_cost`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from ..client import AsyncBridge
from ..errors import InvalidRequestError
from ..pricing import DEFAULT_MAX_COST
from ..providers.base import Provider
from ..request import PROVIDER_NAMES, PhotoMakerRequest, ReferenceImage
from ..styles import Style, normalize_style
from .artifacts import OutputFiles, write_outputs
from .jobs import BatchJob, JobLabels
from .jsonl import LineProblem
from .output import prepare_output
from .preflight import Preflight, check_cost, preflight
from .runner import BatchOptions, BatchOutcome, EventCallback, arun_batch, run_in_new_loop

__all__ = ["DEFAULT_MAX_COST", "CompareMatrix", "CompareOutcome", "acompare", "compare"]

"""USD: a compare estimated above this is refused unless the caller raises the limit."""

FaceSet = Sequence[ReferenceImage | str | Path | bytes]


def _nonempty(field: str, values: Sequence[Any]) -> None:
    if not values:
        raise InvalidRequestError(field, [], "at least one value")


def _providers(values: Sequence[str]) -> tuple[str, ...]:
    _nonempty("providers", values)
    for index, name in enumerate(values):
        if name not in PROVIDER_NAMES:
            raise InvalidRequestError(f"providers[{index}]", name, "one of " + ", ".join(PROVIDER_NAMES),
                                      reason="unknown provider")
    return tuple(dict.fromkeys(values))


def _face_sets(values: Sequence[FaceSet]) -> tuple[tuple[ReferenceImage, ...], ...]:
    _nonempty("faces", values)
    sets = []
    for set_index, images in enumerate(values):
        if isinstance(images, str | bytes | Path):
            images = [images]
        if not 1 <= len(images) <= 4:
            raise InvalidRequestError(f"faces[{set_index}]", f"<{len(images)} images>", "1 to 4 reference images")
        try:
            sets.append(tuple(ReferenceImage.load(image, index=index) for index, image in enumerate(images)))
        except InvalidRequestError as error:
            raise InvalidRequestError(f"faces[{set_index}].{error.field}", error.value, error.allowed,
                                      reason=error.reason) from None
    return tuple(sets)


def _styles(values: Sequence[Style | str | None]) -> tuple[Style, ...]:
    return tuple(dict.fromkeys(Style.NO_STYLE if value is None else normalize_style(value)
                               for value in values or (None,)))


def _texts(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _options(values: Mapping[str, Any]) -> dict[str, Any]:
    return dict(values)


def _seeds(values: Sequence[int | None]) -> tuple[int | None, ...]:
    return tuple(dict.fromkeys(values or (None,)))


@attrs.frozen
class CompareMatrix:
    """The cross product to run: every reference set × prompt × style × seed, on every provider.

    ``options`` holds any other :class:`~photomaker_bridge.PhotoMakerRequest` field, the same for every job
    (``{"num_images": 1, "steps": 30}``). Example::

        CompareMatrix(face_sets=[["a.jpg"], ["b.jpg", "c.jpg"]], prompts=["a man img on a boat"],
                      providers=["runware", "fal", "eachlabs"], styles=["cinematic"], seeds=[42, 43])
    """

    face_sets: tuple[tuple[ReferenceImage, ...], ...] = attrs.field(converter=_face_sets)
    """Each reference set: 1 to 4 photos of one person (paths, bytes, URLs, ...)."""
    prompts: tuple[str, ...] = attrs.field(converter=_texts)
    """The prompts."""
    providers: tuple[str, ...] = attrs.field(converter=_providers)
    """Where to run every job."""
    styles: tuple[Style, ...] = attrs.field(default=(None,), converter=_styles)
    """The styles (any provider's spelling; ``None``: no style)."""
    seeds: tuple[int | None, ...] = attrs.field(default=(None,), converter=_seeds)
    """The seeds (``None``: random)."""
    options: Mapping[str, Any] = attrs.field(factory=dict, converter=_options)
    """Other request fields, the same for every job."""
    face_names: tuple[str, ...] = attrs.field(default=(), converter=_texts)
    """How reports name each reference set (default ``faces 1``, ``faces 2``, ...)."""

    def __attrs_post_init__(self) -> None:
        _nonempty("prompts", self.prompts)
        clashing = {"prompt", "images", "style", "seed"} & set(self.options)
        if clashing:
            raise InvalidRequestError("options", sorted(clashing), "request fields other than prompt, images, style "
                                      "and seed, which the matrix itself sets")
        if self.face_names and len(self.face_names) != len(self.face_sets):
            raise InvalidRequestError("face_names", list(self.face_names), f"{len(self.face_sets)} names, one per "
                                      "reference set")

    def __len__(self) -> int:
        return len(self.face_sets) * len(self.prompts) * len(self.styles) * len(self.seeds) * len(self.providers)

    def face_name(self, index: int) -> str:
        """The name of reference set ``index``."""
        return self.face_names[index] if self.face_names else f"faces {index + 1}"

    def numbered(self) -> Iterator[tuple[str, BatchJob | LineProblem]]:
        """Every job as ``(where, job)``, providers innermost so that all of them start at once; a combination no
        request can be made of (a prompt with two trigger words, say) is a problem instead."""
        for face_index, faces in enumerate(self.face_sets):
            for prompt_index, prompt in enumerate(self.prompts):
                for style in self.styles:
                    for seed in self.seeds:
                        where = (f"{self.face_name(face_index)}, prompt {prompt_index + 1}, {style.label}, "
                                 f"seed {seed if seed is not None else 'random'}")
                        try:
                            request = PhotoMakerRequest(prompt=prompt, images=faces, style=style, seed=seed,
                                                        **self.options)
                        except InvalidRequestError as error:
                            yield where, LineProblem(where, str(error))
                            continue
                        labels = JobLabels.of(request, faces=self.face_name(face_index))
                        for provider in self.providers:
                            yield f"{where}, {provider}", BatchJob(request, provider=provider, labels=labels)

    def __iter__(self) -> Iterator[BatchJob]:
        """Every job that can be made (see :meth:`numbered`)."""
        return (item for _, item in self.numbered() if isinstance(item, BatchJob))


@attrs.frozen
class CompareOutcome:
    """What a compare did and wrote."""

    preflight: Preflight
    run: BatchOutcome
    files: OutputFiles


PlanCallback = Callable[[Preflight], Any]
"""Receives the preflight (job count, estimate, problems) before the first request."""


async def acompare(matrix: CompareMatrix, out: Path | str, *, bridge: AsyncBridge | None = None,
                   providers: Iterable[Provider] | None = None, max_cost: Decimal | None = DEFAULT_MAX_COST,
                   options: BatchOptions | None = None, on_plan: PlanCallback | None = None,
                   on_event: EventCallback | None = None, title: str | None = None) -> CompareOutcome:
    """Run ``matrix`` into ``out`` and write its summary and report (see :func:`compare`)."""
    if bridge is None:
        async with AsyncBridge(providers=providers) as own:
            return await acompare(matrix, out, bridge=own, max_cost=max_cost, options=options, on_plan=on_plan,
                                  on_event=on_event, title=title)
    options = options or BatchOptions()
    folder = prepare_output(out)
    checked = preflight(matrix.numbered(), bridge, folder, strict=options.strict)
    if on_plan is not None:
        on_plan(checked)
    check_cost(checked.estimate, max_cost)
    run = await arun_batch(matrix, folder, bridge=bridge, options=options, on_event=on_event)
    files = write_outputs(folder, title=title or "PhotoMaker compare")
    return CompareOutcome(checked, run, files)


def compare(matrix: CompareMatrix, out: Path | str, *, providers: Iterable[Provider] | None = None,
            max_cost: Decimal | None = DEFAULT_MAX_COST, options: BatchOptions | None = None,
            on_plan: PlanCallback | None = None, on_event: EventCallback | None = None,
            title: str | None = None) -> CompareOutcome:
    """Run every job of ``matrix`` (see :func:`~photomaker_bridge.batch.run_batch`) into ``out`` and write
    ``summary.json``, ``summary.csv``, ``report.html`` and ``contact_sheet.png``.

    Raises :class:`~photomaker_bridge.InvalidRequestError` naming ``max_cost`` before any request when the
    estimated cost of the jobs left to run is above ``max_cost`` USD (``None``: no limit).
    """
    return run_in_new_loop(lambda: acompare(matrix, out, providers=providers, max_cost=max_cost, options=options,
                                            on_plan=on_plan, on_event=on_event, title=title))
