"""photomaker-bridge: one PhotoMaker request, sent to Runware, fal or Eachlabs, the same result from each.

Quick look::

    from photomaker_bridge import PhotoMakerRequest, explain

    request = PhotoMakerRequest(prompt="a photo of a man img in a spacesuit", images=["face.jpg"])
    plan = explain(request, "eachlabs")      # the exact wire payloads and warnings; no network, no key
"""

from .errors import (
    AuthenticationError,
    BridgeError,
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
)
from .jobs import JobHandle
from .plan import FieldMapping, Plan, UploadPlaceholder
from .providers import explain
from .request import PhotoMakerRequest, ReferenceImage
from .result import Attempt, BridgeWarning, Cost, GeneratedImage, PhotoMakerResult, Timings
from .styles import Style, normalize_style

__version__ = "0.1.0"

__all__ = [
    "Attempt",
    "AuthenticationError",
    "BridgeError",
    "BridgeWarning",
    "ConfigurationError",
    "ContentPolicyError",
    "Cost",
    "FieldMapping",
    "GeneratedImage",
    "GenerationFailedError",
    "GenerationTimeoutError",
    "InsufficientCreditsError",
    "InvalidRequestError",
    "JobHandle",
    "PhotoMakerRequest",
    "PhotoMakerResult",
    "Plan",
    "ProviderError",
    "ProviderRejectedError",
    "ProviderUnavailableError",
    "RateLimitedError",
    "ReferenceImage",
    "Style",
    "Timings",
    "UploadPlaceholder",
    "explain",
    "normalize_style",
]
