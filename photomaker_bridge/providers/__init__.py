"""The provider registry: name → adapter class, imported lazily so unused SDKs are never loaded."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from ..request import PROVIDER_NAMES

if TYPE_CHECKING:
    from ..plan import Plan
    from ..request import PhotoMakerRequest
    from .base import Provider

__all__ = ["PROVIDER_NAMES", "explain", "provider_class"]

_REGISTRY: dict[str, tuple[str, str]] = {
    "eachlabs": ("photomaker_bridge.providers.eachlabs", "EachlabsProvider"),
    "fal": ("photomaker_bridge.providers.fal", "FalProvider"),
    "runware": ("photomaker_bridge.providers.runware", "RunwareProvider"),
}


def provider_class(name: str) -> type[Provider]:
    """The adapter class registered under ``name``; :class:`ConfigurationError` for an unknown name."""
    if name not in _REGISTRY:
        raise ConfigurationError(f"unknown provider {name!r}; known providers: {', '.join(PROVIDER_NAMES)}")
    module_name, class_name = _REGISTRY[name]
    found: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return found


def explain(request: PhotoMakerRequest, provider: str | Provider, *, strict: bool = False) -> Plan:
    """What ``provider`` would be sent for ``request``: payloads, uploads, warnings, field mapping.

    ``provider`` is a name (default settings) or a configured adapter. No network, no key needed. With
    ``strict=True`` any adjustment (clamp, left-out field, inserted trigger) raises
    :class:`~photomaker_bridge.InvalidRequestError` instead of a warning.
    """
    adapter = provider_class(provider)() if isinstance(provider, str) else provider
    return adapter.plan(request, strict=strict)
