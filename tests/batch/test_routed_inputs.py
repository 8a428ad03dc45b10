"""Routed batch inputs, offline: keys of routed jobs (stable, from the route's canonical form; single-provider keys
unchanged), routes in JSONL lines (``"route": {...}`` and ``"provider": [...]``) with bad ones reported by line and
field, and the preflight of a route (every candidate planned, the estimate at the dearest candidate)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from photomaker_bridge import Bridge, Hedge, InvalidRequestError, PhotoMakerRequest, Route
from photomaker_bridge.batch import BatchJob, JobFile, LineProblem, job_key, preflight
from photomaker_bridge.batch.estimate import job_cost
from photomaker_bridge.samples import sample_faces

REQUEST = PhotoMakerRequest(prompt="a photo of a woman img reading", images=[sample_faces()[0]], seed=7,
                            style="Cinematic")


def test_single_provider_keys_are_unchanged() -> None:
    # The keys main computed before routes existed: a journal written then must still match its jobs.
    assert job_key(REQUEST, "fal") == "fal-9ddbfd30edefb453"
    assert job_key(REQUEST, "runware") == "runware-ab36c030b3dee721"
    assert BatchJob(REQUEST, provider="fal").key == "fal-9ddbfd30edefb453"


def test_a_routes_key_is_stable_and_follows_its_canonical_form() -> None:
    route = Route(["runware", "fal"])
    assert job_key(REQUEST, route) == "route-c68aa01769f97774"  # the same in every process and version
    assert BatchJob(REQUEST, provider=["runware", "fal"]).key == job_key(REQUEST, route)
    spelled = [Route(["runware", "fal"], budget=budget, strategy="cheapest", max_attempts=2)
               for budget in ("0.05", Decimal("0.050"), 0.05)]
    assert len({job_key(REQUEST, item) for item in spelled}) == 1
    assert job_key(REQUEST, spelled[0]) == "route-63c067403b35eab4"
    others = {Route(["fal", "runware"]), Route(["runware", "fal"], max_attempts=2),
              Route(["runware", "fal", "eachlabs"]),
              Route(["runware", "fal"], policies={"ContentPolicyError": "fallback"})}
    keys = {job_key(REQUEST, item) for item in others} | {job_key(REQUEST, route), job_key(REQUEST, "runware")}
    assert len(keys) == len(others) + 2


def test_a_route_with_a_hedge_or_a_bad_provider_is_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequestError, match=r"^provider: .*hedge is never sent for a submit"):
        BatchJob(REQUEST, provider=Route(["runware", "fal"], hedge=Hedge(after=2.0)))
    with pytest.raises(InvalidRequestError, match=r"^provider: 'replicate' .*unknown provider"):
        BatchJob(REQUEST, provider="replicate")
    with pytest.raises(InvalidRequestError, match=r"^provider: .*'replicate' is not a provider"):
        BatchJob(REQUEST, provider=["fal", "replicate"])


def write_lines(path: Path, lines: list[object]) -> Path:
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    return path


def test_jsonl_lines_carry_routes_and_bad_ones_are_reported_by_line_and_field(tmp_path: Path) -> None:
    face = str(sample_faces()[0])
    base = {"prompt": "a man img on a boat", "images": [face]}
    source = JobFile(write_lines(tmp_path / "jobs.jsonl", [
        {**base, "route": {"providers": ["runware", "fal"], "strategy": "cheapest", "budget": "0.05"}},
        {**base, "provider": ["eachlabs", "fal"], "seed": 2},
        {**base, "route": {"providers": "fal,eachlabs", "max_attempts": 2}, "seed": 3},
        {**base, "seed": 4},
        {**base, "route": {"providers": ["fal"], "max_attempts": 0}},
        {**base, "route": {"providers": ["fal", "runware"], "hedge": "p95"}},
        {**base, "route": {"providers": ["fal", "runware"]}, "provider": "fal"},
        {**base, "route": {"providers": ["fal", "fal"]}},
        {**base, "route": ["fal"]},
        {**base, "route": {"strategy": "fastest"}},
    ]), default_provider=Route(["fal", "runware"], strategy="fastest"))
    items = dict(source.numbered())
    good = {where: item for where, item in items.items() if isinstance(item, BatchJob)}
    assert good["line 1"].provider == Route(["runware", "fal"], strategy="cheapest", budget="0.05")
    assert good["line 2"].provider == Route(["eachlabs", "fal"])
    assert good["line 3"].provider == Route(["fal", "eachlabs"], max_attempts=2)
    assert good["line 4"].provider == Route(["fal", "runware"], strategy="fastest")  # the default route
    problems = {where: str(item) for where, item in items.items() if isinstance(item, LineProblem)}
    assert problems["line 5"].startswith("line 5: route.max_attempts: 0 is not allowed")
    assert problems["line 6"].startswith("line 6: route.hedge: 'p95' is not allowed") and "submit" in problems["line 6"]
    assert problems["line 7"].startswith("line 7: route: ") and "not both" in problems["line 7"]
    assert problems["line 8"].startswith("line 8: route.providers: ") and "twice" in problems["line 8"]
    assert problems["line 9"].startswith("line 9: route: ['fal'] is not allowed")
    assert problems["line 10"].startswith("line 10: route.providers: None")
    assert len(good) + len(problems) == 10


def test_preflight_plans_every_candidate_and_estimates_at_the_dearest(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RUNWARE_API_KEY", "FAL_KEY", "EACHLABS_API_KEY"):
        monkeypatch.setenv(name, "a-key-for-planning-only")
    url = PhotoMakerRequest(prompt="a man img", images=["https://example.com/face.jpg"], seed=1)
    items = [
        ("line 1", BatchJob(REQUEST, provider=["runware", "fal"])),
        ("line 2", BatchJob(url, provider=["fal", "runware"])),  # fal cannot take a URL: the route skips it
        ("line 3", BatchJob(url, provider=Route(["fal"], max_attempts=2))),  # no candidate can
        ("line 4", BatchJob(REQUEST, provider="eachlabs")),
    ]
    with Bridge() as bridge:
        checked = preflight(items, bridge, tmp_path / "out")
        fal, runware = (job_cost(bridge.provider(name), bridge.provider(name).plan(REQUEST)) for name in
                        ("fal", "runware"))
        runware_url = job_cost(bridge.provider("runware"), bridge.provider("runware").plan(url))
    assert fal is not None and runware is not None and runware_url is not None and fal[0] > runware[0]
    (problem,) = checked.problems
    assert problem.where == "line 3" and "no provider of the route can" in problem.message and "fal:" in (
        problem.message)
    assert dict(checked.to_submit) == {"route": 2, "eachlabs": 1}
    route_estimate = checked.estimate.providers["route"]
    assert route_estimate.jobs == 2 and route_estimate.amount == (fal[0] + runware_url[0]).quantize(Decimal("0.000001"))
    assert route_estimate.basis.startswith("the dearest candidate of the route")


def test_preflight_needs_the_key_of_every_candidate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_KEY", "a-key-for-planning-only")
    monkeypatch.delenv("RUNWARE_API_KEY", raising=False)
    from photomaker_bridge import ConfigurationError

    with Bridge() as bridge, pytest.raises(ConfigurationError, match="RUNWARE_API_KEY"):
        preflight([("line 1", BatchJob(REQUEST, provider=["fal", "runware"]))], bridge, tmp_path / "out")
