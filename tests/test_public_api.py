"""The public names: an explicit, sorted ``__all__``, each importable from the top-level package.

When a name is added to (or removed from) ``photomaker_bridge.__all__``, update ``EXPECTED`` here: the pin is
one literal on purpose, so a change of the public surface is always a visible diff.
"""

from __future__ import annotations

import photomaker_bridge

EXPECTED = [
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


def test_all_is_pinned() -> None:
    assert photomaker_bridge.__all__ == EXPECTED


def test_all_is_a_sorted_list_without_duplicates() -> None:
    names = photomaker_bridge.__all__
    assert isinstance(names, list)
    assert names == sorted(names)
    assert len(set(names)) == len(names)


def test_every_name_is_there_and_star_import_gives_exactly_all() -> None:
    for name in EXPECTED:
        assert getattr(photomaker_bridge, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from photomaker_bridge import *", namespace)
    assert sorted(key for key in namespace if key != "__builtins__") == sorted(EXPECTED)


def test_public_classes_say_they_are_public() -> None:
    # Each public class or function is defined in the package, documented, and not a private helper.
    for name in EXPECTED:
        value = getattr(photomaker_bridge, name)
        assert value.__module__.startswith("photomaker_bridge."), name
        assert (value.__doc__ or "").strip(), f"{name} has no docstring"
        assert not name.startswith("_")


def test_version_is_a_string() -> None:
    assert isinstance(photomaker_bridge.__version__, str) and photomaker_bridge.__version__.count(".") == 2


def test_importing_the_package_loads_no_provider_sdk() -> None:
    import subprocess
    import sys

    code = "import sys, photomaker_bridge; print('fal_client' in sys.modules, 'httpx' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert completed.stdout.split() == ["False", "False"]


def test_provider_classes_load_on_first_use() -> None:
    from photomaker_bridge.providers.fal import FalProvider

    assert photomaker_bridge.FalProvider is FalProvider
