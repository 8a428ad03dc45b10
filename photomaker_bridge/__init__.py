"""photomaker-bridge: one PhotoMaker request, sent to Runware, fal or Eachlabs, the same result from each.

Quick look::

    from photomaker_bridge import PhotoMakerRequest, explain

    request = PhotoMakerRequest(prompt="a photo of a man img in a spacesuit", images=["face.jpg"])
    plan = explain(request, "eachlabs")      # the exact wire payloads and warnings; no network, no key

    with Bridge() as bridge:                 # keys from RUNWARE_API_KEY, FAL_KEY, EACHLABS_API_KEY
        result = bridge.generate(request, provider="fal")

The provider classes (``RunwareProvider``, ``FalProvider``, ``EachlabsProvider``) are imported on first use,
so importing the package never loads a provider SDK it does not need.
"""

from typing import TYPE_CHECKING, Any

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
    ProviderError,
    ProviderRejectedError,
    ProviderUnavailableError,
    RateLimitedError,
    WebhookVerificationError,
)
from .jobs import CancelOutcome, JobHandle
from .plan import FieldMapping, Plan, UploadPlaceholder
from .providers import explain
from .request import PhotoMakerRequest, ReferenceImage
from .result import Attempt, BridgeWarning, Cost, GeneratedImage, ImageFormatWarning, PhotoMakerResult, Timings
from .routing import BreakerSettings, Hedge, MemoryRouterState, Route, RouterState
from .styles import Style, normalize_style

if TYPE_CHECKING:
    from .providers.eachlabs import EachlabsProvider
    from .providers.fal import FalProvider
    from .providers.runware import RunwareProvider

__version__ = "0.1.0"
"""The package version (pyproject.toml reads it from here)."""

_LAZY = {
    "EachlabsProvider": "photomaker_bridge.providers.eachlabs",
    "FalProvider": "photomaker_bridge.providers.fal",
    "RunwareProvider": "photomaker_bridge.providers.runware",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'photomaker_bridge' has no attribute {name!r}")


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
    "Style",
    "Timings",
    "UploadPlaceholder",
    "WebhookVerificationError",
    "explain",
    "normalize_style",
]
