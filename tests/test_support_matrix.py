"""Every unified field either changes each provider's payload or produces a warning: nothing is dropped silently."""

from __future__ import annotations

import itertools
from typing import Any

import attrs
import pytest

from photomaker_bridge import PhotoMakerRequest, Plan
from photomaker_bridge.emulators._images import render_image
from photomaker_bridge.providers import PROVIDER_NAMES, provider_class


def png_bytes(width: int, height: int, seed: int) -> bytes:
    return render_image(seed=seed, style="test", width=width, height=height)


BASE = dict(prompt="a photo of a man img on a boat", images=[png_bytes(64, 64, seed=1)])

# One changed value per unified field; each differs from the request's default.
VARIANTS: dict[str, Any] = {
    "prompt": "a photo of a woman img at the sea",
    "images": [png_bytes(64, 64, seed=2)],
    "style": "cinematic",
    "style_strength": 35,
    "negative_prompt": "blurry, low quality",
    "num_images": 2,
    "steps": 40,
    "guidance_scale": 3.0,
    "seed": 7,
    "width": 512,
    "height": 768,
    "output_format": "webp",
    "safety_check": True,
    "initial_image": png_bytes(64, 64, seed=5),
    "initial_image_strength": 0.8,
    "provider_options": None,  # filled per provider below
}
NEEDS: dict[str, dict[str, Any]] = {"initial_image_strength": {"initial_image": png_bytes(64, 64, seed=5)}}
"""What a variant needs beside it in both requests (a strength means nothing without an initial image)."""


def deterministic_ids() -> Any:
    counter = itertools.count()
    return lambda: f"00000000-0000-4000-8000-{next(counter):012d}"


def plan_for(provider: str, request: PhotoMakerRequest) -> Plan:
    return provider_class(provider)().plan(request, new_id=deterministic_ids())


def test_every_request_field_is_covered_by_a_variant() -> None:
    assert set(VARIANTS) == {field.name for field in attrs.fields(PhotoMakerRequest)}


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@pytest.mark.parametrize("field", sorted(VARIANTS))
def test_field_changes_payload_or_warns(provider: str, field: str) -> None:
    value = {provider: {"x_bridge_test": 1}} if field == "provider_options" else VARIANTS[field]
    base_fields = {**BASE, **NEEDS.get(field, {})}
    base = plan_for(provider, PhotoMakerRequest(**base_fields))  # type: ignore[arg-type]
    changed = plan_for(provider, PhotoMakerRequest(**{**base_fields, field: value}))  # type: ignore[arg-type]
    payload_changed = list(base.payloads) != list(changed.payloads) or list(base.uploads) != list(changed.uploads)
    warned = any(warning.field == field for warning in changed.warnings)
    assert payload_changed or warned, f"{provider} silently ignores {field}={value!r}"


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_capability_table_names_every_field(provider: str) -> None:
    covered = {line.field for line in provider_class(provider).capabilities}
    assert covered == {field.name for field in attrs.fields(PhotoMakerRequest)}
