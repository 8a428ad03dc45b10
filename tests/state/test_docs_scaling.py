"""docs/scaling.md's Python example runs as written against the emulators and a real redis-server, changing only
where Redis, the keys and the photo are."""

from __future__ import annotations

import re
from pathlib import Path

import helpers_bridge
from helpers_bridge import adapters
from helpers_redis import RedisServer

from photomaker_bridge.emulators import Emulators
from photomaker_bridge.samples import sample_faces

emulators = helpers_bridge.emulators
emu = helpers_bridge.emu

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "scaling.md"


def test_the_example_runs(emu: Emulators, redis_server: RedisServer, namespace: str, tmp_path: Path) -> None:
    (code,) = re.findall(r"^```python\n(.*?)^```$", DOCUMENT.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)
    face = tmp_path / "face.jpg"
    face.write_bytes(Path(sample_faces()[0]).read_bytes())
    code = (code.replace('"redis://cache.internal:6379/0"', repr(redis_server.url))
                .replace('namespace="photos"', f"namespace={namespace!r}")
                .replace("Bridge(state=state", "Bridge(providers=providers, state=state")
                .replace('"face.jpg"', repr(str(face))))
    scope = {"providers": adapters(emu)}
    exec(compile(code, str(DOCUMENT), "exec"), scope)
    assert len(scope["result"].images) == 1 and scope["result"].provider == "eachlabs"
    exec(compile(code, str(DOCUMENT), "exec"), scope)  # the same key again: collected, not paid again
    assert emu.eachlabs.counters["predictions_created"] == 1
