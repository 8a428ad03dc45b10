"""One :class:`~photomaker_bridge.PhotoMakerResult` from the snapshots of a job's Eachlabs predictions. Pure: no
I/O.

Section numbers (§) refer to ``docs/protocols/eachlabs.md``.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from decimal import Decimal

from ..errors import ContentPolicyError, GenerationFailedError
from ..jobs import JobHandle
from ..result import BridgeWarning, Cost, GeneratedImage, PhotoMakerResult, Timings
from ._eachlabs_parsing import PROVIDER, PredictionSnapshot

__all__ = ["assemble_result"]


def assemble_result(snapshots: Sequence[PredictionSnapshot], handle: JobHandle, *,
                    total_seconds: float | None = None,
                    created_at: datetime.datetime | None = None) -> PhotoMakerResult:
    """One result from the successful snapshots of a job's predictions, in the order of ``handle``.

    Images are PNG (the predictor saves ``image_{i}.png``, seed page "Output Format: PNG") and carry their
    prediction's seed. The cost is the sum of the reported ``metrics.cost`` (``None`` unless every prediction
    reported one); ``run_seconds`` the longest ``predict_time``, since predictions run side by side. A
    prediction with fewer images than asked (the safety checker drops flagged images silently, §2.4) adds a
    warning; no image at all raises :class:`ContentPolicyError` when the checker was on, else
    :class:`GenerationFailedError` with code ``no_output``.
    """
    images: list[GeneratedImage] = []
    warnings: list[BridgeWarning] = list(handle.warnings)
    for snapshot in snapshots:
        images.extend(GeneratedImage(url=url, content_type="image/png", seed=snapshot.seed)
                      for url in snapshot.image_urls)
        got, asked = len(snapshot.image_urls), snapshot.requested_images
        if got < asked:
            why = ("the safety checker drops flagged images without an error (eachlabs.md §2.4)"
                   if snapshot.safety_checker else "Eachlabs returned fewer images than asked")
            warnings.append(BridgeWarning(field="num_images", asked=asked, sent=got, provider=PROVIDER,
                                          reason=f"prediction {snapshot.prediction_id} returned {got} of "
                                                 f"{asked} images; {why}"))
    requested = handle.requested_images or sum(snapshot.requested_images for snapshot in snapshots)
    if not images and snapshots:
        raw = [snapshot.raw for snapshot in snapshots]
        request_id = snapshots[0].prediction_id
        if any(snapshot.safety_checker for snapshot in snapshots):
            raise ContentPolicyError("Eachlabs returned no image: the safety checker dropped every output",
                                     provider=PROVIDER, status=200, code="no_output", request_id=request_id,
                                     raw=raw)
        raise GenerationFailedError("Eachlabs reported success but returned no image", provider=PROVIDER,
                                    status=200, code="no_output", request_id=request_id, raw=raw)
    costs = [snapshot.cost for snapshot in snapshots]
    cost = None
    if snapshots and all(amount is not None for amount in costs):
        cost = Cost(sum((amount for amount in costs if amount is not None), Decimal(0)), source="reported")
    run_times = [snapshot.predict_time for snapshot in snapshots if snapshot.predict_time is not None]
    upload_seconds = handle.details.get("upload_seconds")
    timings = Timings(
        total_seconds=total_seconds,
        upload_seconds=float(upload_seconds) if isinstance(upload_seconds, int | float) else None,
        run_seconds=max(run_times) if run_times else None,
    )
    return PhotoMakerResult(
        images=tuple(images),
        provider=PROVIDER,
        request_ids=tuple(snapshot.prediction_id for snapshot in snapshots),
        seed=images[0].seed if images else None,
        cost=cost,
        timings=timings,
        warnings=tuple(warnings),
        raw=tuple(snapshot.raw for snapshot in snapshots),
        requested_images=requested,
        created_at=created_at or datetime.datetime.now(datetime.UTC),
    )
