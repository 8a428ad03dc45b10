"""Local stand-ins for Runware, fal and Eachlabs: run your PhotoMaker code and its tests offline.

:func:`start_emulators` starts all three on free loopback ports (one background thread, its own event loop)
and works with ``with`` and ``async with``. Each emulator speaks its provider's protocol, checks payloads the
way the provider does, returns real images, and takes fault injection::

    import requests
    from photomaker_bridge.emulators import Fault, start_emulators

    with start_emulators(seed=7) as emulators:
        eachlabs = emulators.eachlabs
        eachlabs.settings.faults.append(Fault.parse("status:429,retry_after=2,nth=1"))
        response = requests.post(f"{eachlabs.url}/v1/prediction/", headers={"X-API-Key": eachlabs.api_key},
                                 json={"model": "photomaker-style", "input": {}})
        assert response.status_code == 429 and response.headers["Retry-After"] == "2"
        assert eachlabs.counters["fault:status"] == 1

The official clients talk to them unchanged: Runware's SDKs with ``emulators.runware.ws_url`` or
``.rest_url``, ``fal_client`` inside ``with point_fal_client_at(emulators.fal.url):`` (queue, ``fal.run``,
storage), plain HTTP for Eachlabs. Each handle's ``options`` holds how its emulator settles what the provider
leaves undocumented. ``docs/testing-with-emulators.md`` shows pytest fixtures, every fault kind, webhooks and
uploads to a loopback receiver, the request log and the ``photomaker-bridge emulate`` command;
``docs/protocols/`` describes each provider's protocol as emulated, with its sources.
"""

from photomaker_bridge.emulators._common import EmulatorSettings, Fault, LoggedRequest
from photomaker_bridge.emulators._fal_patch import point_fal_client_at
from photomaker_bridge.emulators._runner import (
    EmulatorHandle,
    Emulators,
    RunwareEmulatorHandle,
    start_emulators,
)

__all__ = [
    "EmulatorHandle",
    "EmulatorSettings",
    "Emulators",
    "Fault",
    "LoggedRequest",
    "RunwareEmulatorHandle",
    "point_fal_client_at",
    "start_emulators",
]
