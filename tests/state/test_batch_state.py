"""``batch --shard K/N --state redis://…``: the shards of one batch, each its own run, respect Eachlabs' cap
together (without ``--state`` each shard would allow the whole cap on its own)."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest
from helpers_bridge import JOB_COUNTER, emulator_settings
from helpers_redis import RedisServer

from photomaker_bridge.cli import main
from photomaker_bridge.emulators import start_emulators
from photomaker_bridge.samples import sample_faces


def run(*arguments: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(arguments), out=out, err=err)
    return code, err.getvalue()


def test_shards_sharing_a_state_never_pass_eachlabs_cap_together(redis_server: RedisServer, namespace: str,
                                                                  tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    jobs = tmp_path / "jobs.jsonl"
    face = str(sample_faces()[0])
    jobs.write_text("".join(json.dumps({"prompt": f"a man img, scene {index}", "images": [face], "seed": index,
                                        "num_images": 1}) + "\n" for index in range(24)))
    # Jobs long enough to overlap; two shards of 8 at once would be 16 in flight against a cap of 10.
    with start_emulators(eachlabs=emulator_settings(queue_time=0.5, run_time=1.0)) as emu:
        monkeypatch.setenv("EACHLABS_API_KEY", emu.eachlabs.api_key)
        (tmp_path / "out").mkdir()  # made first: two shards making it at once is a separate matter
        codes: dict[int, int] = {}

        def shard(number: int) -> None:
            codes[number], _ = run("batch", str(jobs), "--provider", "eachlabs", "--shard", f"{number}/2",
                                   "--concurrency", "8", "--no-download", "--out", str(tmp_path / "out"),
                                   "--base-url", f"eachlabs={emu.eachlabs.url}", "--state", redis_server.url,
                                   "--state-namespace", namespace)

        threads = [threading.Thread(target=shard, args=(number,)) for number in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(300)
        # Each shard answers for its own jobs, whichever ends first (both write the shared folder's summaries).
        assert codes == {1: 0, 2: 0}
        assert emu.eachlabs.counters[JOB_COUNTER["eachlabs"]] == 24
        assert emu.eachlabs.counters["predictions_rate_limited"] == 0  # the cap was never passed
        assert emu.eachlabs.counters["peak_in_flight"] <= 10


def test_a_bad_state_flag_is_refused_naming_it(tmp_path: Path) -> None:
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("")
    code, err = run("batch", str(jobs), "--out", str(tmp_path / "out"), "--state", "http://cache:6379")
    assert code != 0 and "--state" in err and "http://cache:6379" in err
    code, err = run("batch", str(jobs), "--out", str(tmp_path / "out"), "--state", "redis://127.0.0.1:1/0",
                    "--state-namespace", "a:b")
    assert code != 0 and "--state-namespace" in err and "'a:b'" in err
