"""photomaker-bridge: one PhotoMaker request, sent to Runware, fal or Eachlabs, the same result from each.

Quick look::

    from photomaker_bridge import PhotoMakerRequest, explain

    request = PhotoMakerRequest(prompt="a photo of a man img in a spacesuit", images=["face.jpg"])
    plan = explain(request, "eachlabs")      # the exact wire payloads and warnings; no network, no key

    with Bridge() as bridge:                 # keys from RUNWARE_API_KEY, FAL_KEY, EACHLABS_API_KEY
        result = bridge.generate(request, provider="fal")

Every public name is imported on first use, so importing the package is nearly free and never loads an HTTP
library or provider SDK it does not need.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._http import Event as ProgressEvent
    from ._retry import RetryPolicy
    from .client import AsyncBridge, Bridge
    from .errors import (
        AuthenticationError,
        BridgeError,
        BudgetExceededError,
        ClientClosedError,
        ConfigurationError,
        ContentPolicyError,
        GenerationFailedError,
        GenerationTimeoutError,
        InsufficientCreditsError,
        InvalidRequestError,
        JobUnknownError,
        ProviderError,
        ProviderRejectedError,
        ProviderUnavailableError,
        RateLimitedError,
        StateUnavailableError,
        WebhookVerificationError,
    )
    from .jobs import CancelOutcome, JobHandle
    from .plan import FieldMapping, Plan, UploadPlaceholder
    from .providers import explain
    from .providers.eachlabs import EachlabsProvider
    from .providers.fal import FalProvider
    from .providers.runware import RunwareProvider
    from .request import PhotoMakerRequest, ReferenceImage
    from .result import Attempt, BridgeWarning, Cost, GeneratedImage, ImageFormatWarning, PhotoMakerResult, Timings
    from .routing import BreakerSettings, Hedge, MemoryRouterState, Route, RouterState
    from .styles import Style, normalize_style

__version__ = "0.1.0"
"""The package version (pyproject.toml reads it from here)."""

_ERRORS = ("AuthenticationError", "BridgeError", "BudgetExceededError", "ClientClosedError", "ConfigurationError",
           "ContentPolicyError", "GenerationFailedError", "GenerationTimeoutError", "InsufficientCreditsError",
           "InvalidRequestError", "JobUnknownError", "ProviderError", "ProviderRejectedError",
           "ProviderUnavailableError", "RateLimitedError", "StateUnavailableError", "WebhookVerificationError")

_LAZY: dict[str, tuple[str, str]] = {
    **{name: ("errors", name) for name in _ERRORS},
    "AsyncBridge": ("client", "AsyncBridge"),
    "Bridge": ("client", "Bridge"),
    "ProgressEvent": ("_http", "Event"),
    "RetryPolicy": ("_retry", "RetryPolicy"),
    "CancelOutcome": ("jobs", "CancelOutcome"),
    "JobHandle": ("jobs", "JobHandle"),
    "FieldMapping": ("plan", "FieldMapping"),
    "Plan": ("plan", "Plan"),
    "UploadPlaceholder": ("plan", "UploadPlaceholder"),
    "explain": ("providers", "explain"),
    "EachlabsProvider": ("providers.eachlabs", "EachlabsProvider"),
    "FalProvider": ("providers.fal", "FalProvider"),
    "RunwareProvider": ("providers.runware", "RunwareProvider"),
    "PhotoMakerRequest": ("request", "PhotoMakerRequest"),
    "ReferenceImage": ("request", "ReferenceImage"),
    **{name: ("result", name) for name in ("Attempt", "BridgeWarning", "Cost", "GeneratedImage",
                                           "ImageFormatWarning", "PhotoMakerResult", "Timings")},
    **{name: ("routing", name) for name in ("BreakerSettings", "Hedge", "MemoryRouterState", "Route",
                                            "RouterState")},
    "Style": ("styles", "Style"),
    "normalize_style": ("styles", "normalize_style"),
}
"""Public name -> (module, attribute). Every name is imported on first use (PEP 562): ``import photomaker_bridge``
loads none of the package's dependencies, and ``Bridge`` loads neither aiohttp nor requests until a client makes
its connection pool (docs/architecture.md, "Imports"; tests/test_lazy_imports.py pins it)."""


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(f"{__name__}.{module}"), attribute)
        globals()[name] = value  # the next access is an ordinary attribute
        return value
    raise AttributeError(f"module 'photomaker_bridge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "AsyncBridge",
    "Attempt",
    "AuthenticationError",
    "BreakerSettings",
    "Bridge",
    "BridgeError",
    "BridgeWarning",
    "BudgetExceededError",
    "CancelOutcome",
    "ClientClosedError",
    "ConfigurationError",
    "ContentPolicyError",
    "Cost",
    "EachlabsProvider",
    "FalProvider",
    "FieldMapping",
    "GeneratedImage",
    "GenerationFailedError",
    "GenerationTimeoutError",
    "Hedge",
    "ImageFormatWarning",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JobHandle",
    "JobUnknownError",
    "MemoryRouterState",
    "PhotoMakerRequest",
    "PhotoMakerResult",
    "Plan",
    "ProgressEvent",
    "ProviderError",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ReferenceImage",
    "RetryPolicy",
    "Route",
    "RouterState",
    "RunwareProvider",
    "StateUnavailableError",
    "Style",
    "Timings",
    "UploadPlaceholder",
    "WebhookVerificationError",
    "explain",
    "normalize_style",
]
