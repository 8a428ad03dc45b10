"""What importing the package loads (docs/architecture.md, "Imports"): each case runs in a fresh interpreter and
lists the modules it ended up with. No timing here: the speed is measured by ``python -X importtime`` (the
figures are in the issue's closing note), the rule is pinned here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("aiohttp", "requests", "urllib3", "fal_client", "httpx", "httpcore", "rich", "jinja2", "PIL", "limits",
         "cattrs", "platformdirs")


def loaded_after(code: str) -> tuple[set[str], set[str]]:
    """(the package's modules, the top-level third-party packages) loaded after running ``code`` in a new
    interpreter (beyond what the interpreter itself starts with)."""
    script = ("import sys\nbefore = set(sys.modules)\n" + code + "\nimport json\n"
              "print(json.dumps(sorted(set(sys.modules) - before)))")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                               check=True)
    names = json.loads(completed.stdout.splitlines()[-1])
    ours = {name for name in names if name.split(".")[0] == "photomaker_bridge"}
    others = {name.split(".")[0] for name in names} - set(sys.stdlib_module_names) - {"photomaker_bridge", "json"}
    return ours, {name for name in others if not name.startswith("_")}


def test_the_bare_import_loads_only_the_package_itself() -> None:
    ours, others = loaded_after("import photomaker_bridge")
    assert ours == {"photomaker_bridge"}
    assert others == set()


def test_the_public_names_still_resolve_and_are_listed() -> None:
    ours, _ = loaded_after(
        "import photomaker_bridge\n"
        "assert set(photomaker_bridge.__all__) <= set(dir(photomaker_bridge))\n"
        "for name in photomaker_bridge.__all__:\n"
        "    assert getattr(photomaker_bridge, name).__name__ in (name, 'Event'), name\n"
        "from photomaker_bridge import *")
    assert "photomaker_bridge.client" in ours
    import photomaker_bridge

    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        photomaker_bridge.Nothing  # noqa: B018


def test_planning_loads_no_http_library() -> None:
    _, others = loaded_after(
        "from photomaker_bridge import PhotoMakerRequest, explain\n"
        "from photomaker_bridge.samples import sample_faces\n"
        "request = PhotoMakerRequest(prompt='a man img', images=[sample_faces()[0]])\n"
        "for name in ('runware', 'fal', 'eachlabs'):\n"
        "    explain(request, name)")
    assert not others & {"aiohttp", "requests", "urllib3", "fal_client", "httpx", "rich", "limits", "PIL"}


def test_a_client_loads_only_the_http_library_it_uses() -> None:
    _, sync = loaded_after("from photomaker_bridge import Bridge\nBridge().close()")
    assert "requests" in sync
    assert not sync & {"aiohttp", "fal_client", "httpx", "rich", "limits", "PIL"}
    _, asynchronous = loaded_after("import asyncio\nfrom photomaker_bridge import AsyncBridge\n"
                                   "async def main():\n    async with AsyncBridge() as bridge:\n"
                                   "        bridge._transport.session\n"
                                   "asyncio.run(main())")
    assert "aiohttp" in asynchronous
    assert not asynchronous & {"fal_client", "httpx", "rich", "limits", "PIL"}


def test_cli_help_loads_no_http_library_nor_the_display() -> None:
    ours, others = loaded_after("from photomaker_bridge.cli import main\n"
                                "try:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert not others & set(HEAVY) - {"cattrs"}
    assert not any(name.startswith("photomaker_bridge.emulators") for name in ours)
    assert "photomaker_bridge._display" not in ours and "photomaker_bridge.client" not in ours
    assert "photomaker_bridge.providers.base" not in ours  # the adapters (and asyncio) load when a command runs
    # A command's help quotes each provider's ranges, read from the adapters: still no HTTP library.
    ours, others = loaded_after("from photomaker_bridge.cli import main\n"
                                "try:\n    main(['generate', '--help'])\nexcept SystemExit:\n    pass")
    assert not others & set(HEAVY) - {"cattrs"}
    assert "photomaker_bridge.client" not in ours
