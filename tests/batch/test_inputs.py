"""Bad input is reported before any paid request: JSONL lines by number, unknown providers, missing images,
keys given twice, an output folder that cannot be written, missing keys, a cost above the limit."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from helpers_batch import PROVIDERS, acceptance_matrix_arguments, adapters, emulator_settings

from photomaker_bridge import AsyncBridge, Bridge, ConfigurationError, InvalidRequestError, PhotoMakerRequest
from photomaker_bridge.batch import BatchJob, CompareMatrix, JobFile, compare, job_key, preflight
from photomaker_bridge.batch.output import image_file_stem, prepare_output
from photomaker_bridge.emulators import Emulators, start_emulators
from photomaker_bridge.providers.runware import RunwareProvider
from photomaker_bridge.samples import sample_faces


@pytest.fixture(scope="module")
def emulators() -> Iterator[Emulators]:
    with start_emulators(**{name: emulator_settings() for name in PROVIDERS}) as running:
        yield running


def requests_seen(emulators: Emulators) -> int:
    return sum(handle.counters["requests"] for handle in emulators)


def write_jsonl(folder: Path, lines: list[str]) -> Path:
    path = folder / "jobs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def request_line(**fields: object) -> str:
    values: dict[str, object] = {"prompt": "a man img on a boat", "images": [str(sample_faces()[0])], "seed": 1}
    values.update(fields)
    return json.dumps(values)


def test_bad_lines_are_reported_by_number_and_the_good_ones_kept(tmp_path: Path) -> None:
    shutil.copy(sample_faces()[1], tmp_path / "beside.jpg")
    path = write_jsonl(tmp_path, [
        request_line(provider="fal"),                          # 1 good
        "{not json",                                           # 2
        "[1, 2]",                                              # 3
        "",                                                    # blank: skipped silently
        request_line(provider="replicate"),                    # 5 unknown provider
        request_line(provider="fal", images=["missing.jpg"]),  # 6 missing image
        request_line(provider="fal", colour="red"),            # 7 unknown field
        request_line(),                                        # 8 no provider, no default
        request_line(provider="eachlabs", images=["beside.jpg"], key="mine"),  # 9 good, path beside the file
    ])
    items = list(JobFile(path).numbered())
    where = [place for place, _ in items]
    assert where == ["line 1", "line 2", "line 3", "line 5", "line 6", "line 7", "line 8", "line 9"]
    problems = {place: str(item) for place, item in items if not isinstance(item, BatchJob)}
    assert "not JSON" in problems["line 2"] and "a JSON object" in problems["line 3"]
    assert "provider: 'replicate'" in problems["line 5"] and "unknown provider" in problems["line 5"]
    assert "images[0]" in problems["line 6"] and "missing.jpg" in problems["line 6"]
    assert "colour" in problems["line 7"] and "unknown field" in problems["line 7"]
    assert "--provider" in problems["line 8"]
    jobs = list(JobFile(path))
    assert [(item.provider, item.key) for item in jobs][1] == ("eachlabs", "mine")
    assert jobs[1].request.images[0].source == str(tmp_path / "beside.jpg")
    # With a default provider, line 8 runs too.
    assert len(list(JobFile(path, default_provider="runware"))) == 3


def test_keys_are_stable_and_follow_the_content(tmp_path: Path) -> None:
    face = sample_faces()[0]
    by_path = PhotoMakerRequest(prompt="a man img", images=[str(face)], seed=1)
    by_bytes = PhotoMakerRequest(prompt="a man img", images=[face.read_bytes()], seed=1)
    assert job_key(by_path, "fal") == job_key(by_bytes, "fal") == BatchJob(by_path, provider="fal").key
    assert job_key(by_path, "fal") != job_key(by_path, "runware")
    assert job_key(by_path, "fal") != job_key(PhotoMakerRequest(prompt="a man img", images=[str(face)], seed=2), "fal")
    with pytest.raises(InvalidRequestError, match="key"):
        BatchJob(by_path, provider="fal", key="two\nlines")
    assert image_file_stem("fal-0123") == "fal-0123"
    assert image_file_stem("a/b") != image_file_stem("a:b")  # changed keys keep distinct file names


def test_preflight_reports_problems_and_duplicates_and_sends_nothing(emulators: Emulators, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, [
        request_line(provider="fal", key="a"),
        request_line(provider="fal", key="a", seed=2),                        # key already used by line 1
        request_line(provider="fal", key="b", images=["https://example.com/face.jpg"]),  # fal refuses URLs
        request_line(provider="runware", key="c"),
        "oops",
    ])
    out = prepare_output(tmp_path / "out")
    with Bridge(providers=adapters(emulators)) as bridge:
        checked = preflight(JobFile(path).numbered(), bridge, out)
    assert dict(checked.to_submit) == {"fal": 1, "runware": 1} == dict(checked.per_provider)
    problems = {problem.where: problem.message for problem in checked.problems}
    assert set(problems) == {"line 2", "line 3", "line 5"}
    assert "already used by line 1" in problems["line 2"]
    assert "images[0]" in problems["line 3"]
    assert checked.estimate.jobs == 2 and checked.estimate.total > 0
    assert requests_seen(emulators) == 0


def test_preflight_refuses_a_provider_without_a_key(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path, [request_line(provider="runware")])
    with Bridge(providers=[RunwareProvider()]) as bridge, pytest.raises(ConfigurationError, match="RUNWARE_API_KEY"):
        preflight(JobFile(path).numbered(), bridge, tmp_path)


def test_an_unusable_output_folder_is_refused(tmp_path: Path) -> None:
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(InvalidRequestError, match="it is a file"):
        prepare_output(a_file, field="--out")
    with pytest.raises(InvalidRequestError, match="--out"):
        prepare_output(a_file / "below", field="--out")
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InvalidRequestError):
            prepare_output(locked / "out")


def test_compare_refuses_a_cost_above_the_limit_before_any_request(emulators: Emulators, tmp_path: Path) -> None:
    matrix = CompareMatrix(**acceptance_matrix_arguments())
    before = requests_seen(emulators)
    with pytest.raises(InvalidRequestError, match=r"max_cost: '0\.01'.*48 jobs to submit are estimated at") as caught:
        compare(matrix, tmp_path / "out", providers=adapters(emulators), max_cost=Decimal("0.01"))
    assert "runware 16 jobs" in str(caught.value)
    assert requests_seen(emulators) == before
    assert not (tmp_path / "out" / "journal.jsonl").exists()


def test_compare_reports_what_it_will_do_before_the_first_request(emulators: Emulators, tmp_path: Path) -> None:
    arguments = acceptance_matrix_arguments() | {"prompts": ["a man img on a boat"], "seeds": [1],
                                                  "styles": ["Cinematic"]}
    seen: list[int] = []

    def on_plan(checked: object) -> None:
        seen.append(requests_seen(emulators))

    before = requests_seen(emulators)
    outcome = compare(CompareMatrix(**arguments), tmp_path / "out", providers=adapters(emulators), on_plan=on_plan)
    assert seen == [before]
    assert outcome.preflight.estimate.jobs == 6 and outcome.run.succeeded == 6
    # The estimate's basis names pricing.py or the documented assumption.
    bases = {name: item.basis for name, item in outcome.preflight.estimate.providers.items()}
    assert "pricing.py" in bases["fal"] and "assumed" in bases["runware"]
    # Once the journal holds what jobs really cost, that replaces the assumptions for the jobs left.
    more = CompareMatrix(**arguments | {"seeds": [1, 2]})
    with Bridge(providers=adapters(emulators)) as bridge:
        again = preflight(more.numbered(), bridge, tmp_path / "out")
    assert again.finished == 6 and again.estimate.jobs == 6
    runware = again.estimate.providers["runware"]
    assert "earlier runs of this journal" in runware.basis and runware.amount == Decimal("0.0026")  # 2 × 0.0013


def test_a_matrix_names_the_field_at_fault() -> None:
    arguments = acceptance_matrix_arguments()
    with pytest.raises(InvalidRequestError, match=r"providers\[1\]: 'replicate'"):
        CompareMatrix(**arguments | {"providers": ["fal", "replicate"]})
    with pytest.raises(InvalidRequestError, match=r"faces\[1\]\.images\[0\]"):
        CompareMatrix(**arguments | {"face_sets": [[str(sample_faces()[0])], ["nowhere.jpg"]]})
    with pytest.raises(InvalidRequestError, match="prompts"):
        CompareMatrix(**arguments | {"prompts": []})
    with pytest.raises(InvalidRequestError, match="options"):
        CompareMatrix(**arguments | {"options": {"seed": 3}})
    matrix = CompareMatrix(**arguments | {"prompts": ["a man img", "img img two triggers"]})
    problems = [item for _, item in matrix.numbered() if not isinstance(item, BatchJob)]
    assert len(matrix) == 48 and len(problems) == 8  # the bad prompt × 2 faces × 2 styles × 2 seeds


async def test_preflight_accepts_the_async_client(emulators: Emulators, tmp_path: Path) -> None:
    matrix = CompareMatrix(**acceptance_matrix_arguments())
    async with AsyncBridge(providers=adapters(emulators)) as bridge:
        checked = preflight(matrix.numbered(), bridge, tmp_path)
    assert checked.jobs == 48 and sum(checked.to_submit.values()) == 48
