"""``batch --shard K/N``: N runs over one input and one output folder (one journal) split the jobs between them,
each job run by exactly one shard, paid once; a shard resumes only its own keys."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_batch import PROVIDERS, adapters, created, emulator_settings, journal_lines

from photomaker_bridge import ConfigurationError, InvalidRequestError, PhotoMakerRequest
from photomaker_bridge.batch import BatchJob, BatchOptions, run_batch
from photomaker_bridge.batch._cli import _shard_flag
from photomaker_bridge.batch.runner import shard_of
from photomaker_bridge.emulators import Emulators, start_emulators
from photomaker_bridge.samples import sample_faces


@pytest.fixture(scope="module")
def running() -> Iterator[Emulators]:
    with start_emulators(**{name: emulator_settings(seed=4) for name in PROVIDERS}) as emulators:
        yield emulators


def jobs() -> list[BatchJob]:
    return [BatchJob(PhotoMakerRequest(prompt=f"a photo of a man img, scene {index}", images=[sample_faces()[0]],
                                       seed=index), provider="runware") for index in range(12)]


def test_shards_split_the_jobs_and_share_one_journal(running: Emulators, tmp_path: Path) -> None:
    running.reset()
    outcomes = {}

    def shard(number: int) -> None:
        outcomes[number] = run_batch(jobs(), tmp_path, providers=adapters(running),
                                     options=BatchOptions(shard=(number, 3), download=False))

    threads = [threading.Thread(target=shard, args=(number,)) for number in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    every = {job.key for job in jobs()}
    assert sum(outcome.succeeded for outcome in outcomes.values()) == len(every)
    finished = Counter(line["key"] for line in journal_lines(tmp_path) if line["type"] == "finished")
    assert set(finished) == every and set(finished.values()) == {1}  # one journal, each job once
    assert created(running)["runware"] == len(every)
    assert {shard_of(key, 3) for key in every} == {0, 1, 2}  # the split is real with these keys
    # A second run of shard 1 finds its keys finished and touches nothing else.
    again = run_batch(jobs(), tmp_path, providers=adapters(running), options=BatchOptions(shard=(1, 3)))
    assert again.skipped == sum(1 for key in every if shard_of(key, 3) == 0) and again.succeeded == 0


def test_a_bad_shard_is_refused_naming_it() -> None:
    assert _shard_flag("2/8") == (2, 8)
    for text in ("0/8", "9/8", "2", "a/b", "2/0"):
        with pytest.raises(InvalidRequestError, match="--shard"):
            _shard_flag(text)
    with pytest.raises(ConfigurationError, match="shard must be"):
        BatchOptions(shard=(3, 2))
