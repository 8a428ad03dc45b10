"""When to poll a job: a pure schedule that starts slow and tightens around the expected end.

Neither Eachlabs nor fal pushes completion to a library client (Eachlabs' webhooks are for Workflows V2 only,
eachlabs.md §2.10; fal's need a public URL, fal.md §1.12), so the bridge polls. A fixed interval either wastes
calls or adds lag: the Eachlabs seed page polls every second (eachlabs.md SEED), fal_client ten times a second
(fal.md §1.8). A PhotoMaker job, though, takes a fairly predictable time: ~21 s for Eachlabs'
``photomaker-style`` (seed page), ~73 s for ``photomaker`` (eachlabs.md §5), tens of seconds on fal. So this
schedule

* checks once early (``first_check``), because failures that need no GPU time (an input image that cannot be
  downloaded, a missing trigger word, eachlabs.md §2.6) end a job within seconds;
* then approaches the expected end by halving the time left (``approach``), never waiting longer than
  ``max_interval`` (so a badly wrong estimate costs at most that much lag);
* polls every ``min_interval`` around the expected end, on a grid aligned with it so that one poll lands
  right on the likeliest moment of completion;
* and, past the expected end, backs off in proportion to the overrun (``overrun``), up to ``max_interval``.

The expected end is learned: :class:`DurationEstimate` keeps an exponentially weighted average of the
durations of completed jobs, seeded from the provider's published typical time. Everything here is
pure (no clock, no I/O): the flow passes elapsed seconds in and gets poll times out.

**Cold start.** Until a duration is *known* (given by the caller, learned from a completed job, or read from the
learned-lengths cache, ``_durations``) the typical time is only a guess: a new client polling around a wrong
guess noticed a 2 s fal job after 4 s, and a 73 s Eachlabs job up to 8 s late. So a cold timer polls on a
schedule whose lag is bounded whatever the job's length (:func:`next_cold_poll_at`): gaps of a tenth of the
time elapsed, at least ``cold_min_interval`` and at most ``cold_max_interval``, plus the guess's own grid so
that a job as long as the guess is still seen at once (docs/architecture.md, "Polling").
"""

from __future__ import annotations

import math
from collections.abc import Callable

import attrs

__all__ = ["DurationEstimate", "PollPolicy", "PollTimer", "duration_sample", "next_cold_poll_at", "next_poll_at"]


_GRID_STEPS = 4
"""Gaps of at most this many ``min_interval`` are aligned on the grid around the expected end."""


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value!r}")


@attrs.frozen
class PollPolicy:
    """The shape of the polling schedule; every time is in seconds since the prediction was created.

    The defaults suit the real service; tests and benchmarks pass smaller ones to stay fast.
    """

    first_check: float = attrs.field(default=2.0, validator=_positive)
    """The first poll: early, to catch the failures that end a prediction within seconds (eachlabs.md §2.6);
    sooner when the job itself is expected to end sooner (an emulator's, say)."""
    approach: float = attrs.field(default=0.5, validator=_positive)
    """Before the expected end, wait this fraction of the time left (0.5 halves the gap at each poll)."""
    min_interval: float = attrs.field(default=0.5, validator=_positive)
    """The shortest wait between two polls of one prediction: the resolution around the expected end."""
    max_interval: float = attrs.field(default=8.0, validator=_positive)
    """The longest wait between two polls of one prediction: bounds the lag when the estimate is wrong."""
    overrun: float = attrs.field(default=0.25, validator=_positive)
    """Past the expected end, wait this fraction of the overrun so far (backing off as a job runs late)."""
    request_timeout: float = attrs.field(default=30.0, validator=_positive)
    """Seconds one HTTP exchange with Eachlabs may take (the caller's deadline may cut it shorter)."""
    cold_min_interval: float = attrs.field(default=0.5, validator=_positive)
    """Cold start (no duration known yet): the shortest wait between two polls, at the start of a job."""
    cold_fraction: float = attrs.field(default=0.1, validator=_positive)
    """Cold start: wait this fraction of the time elapsed since the job was created (the lag stays within it)."""
    cold_max_interval: float = attrs.field(default=1.5, validator=_positive)
    """Cold start: the longest wait between two polls, so that the lag never passes it."""

    def __attrs_post_init__(self) -> None:
        if self.min_interval > self.max_interval:
            raise ValueError(f"min_interval ({self.min_interval}) must not exceed max_interval ({self.max_interval})")
        if self.cold_min_interval > self.cold_max_interval:
            raise ValueError(f"cold_min_interval ({self.cold_min_interval}) must not exceed cold_max_interval "
                             f"({self.cold_max_interval})")


def next_poll_at(elapsed: float, expected: float, policy: PollPolicy) -> float:
    """When (seconds since creation) to poll next, after a poll at ``elapsed`` that found the job unfinished.

    ``expected`` is when the job is expected to finish. Example with the default policy and ``expected=21``:
    polls at 2, 10, 15.5, 18.25, 19.5, 20, 20.5, 21, 21.5, 22, ... (8 polls to see a 21-second job finish).
    Gaps are at least half of ``min_interval`` and at most ``max_interval`` (or ``5 × min_interval`` if that is
    more).
    """
    first = min(policy.first_check, expected)  # a job expected sooner than the first check is polled then
    if elapsed < first:
        return first
    left = expected - elapsed
    gap = left * policy.approach if left > 0 else -left * policy.overrun
    step = policy.min_interval
    at = elapsed + min(max(gap, step), policy.max_interval)
    if at - elapsed <= _GRID_STEPS * step:
        # Near the expected end, polls fall on the grid expected + k·min_interval, so that one lands right on
        # the likeliest moment of completion instead of somewhere up to min_interval after it.
        grid = expected + math.floor((at - expected) / step) * step
        at = grid if grid >= elapsed + step / 2 else grid + step
    return at


def next_cold_poll_at(elapsed: float, guess: float, policy: PollPolicy) -> float:
    """When to poll next while no duration is known (see the module's "Cold start"), after ``elapsed``.

    The gap is ``cold_fraction`` of the time elapsed, between ``cold_min_interval`` and ``cold_max_interval``, so
    a job is noticed at most that late whatever its length: with the defaults, within 0.5 s for the first 5 s,
    within a tenth of its length up to 15 s, within 1.5 s after that — at fewer polls than a loop polling every
    second for any job longer than 10 s. Until just past ``guess`` (the provider's typical time) the guess's own
    grid (:func:`next_poll_at`) may come sooner: a job as long as the typical one is seen at once.
    """
    gap = min(policy.cold_max_interval, max(policy.cold_min_interval, policy.cold_fraction * elapsed))
    at = elapsed + gap
    if elapsed < guess + policy.min_interval:
        at = min(at, next_poll_at(elapsed, guess, policy))
    return at


def duration_sample(last_pending: float, detected: float, predict_time: float | None) -> float:
    """The best guess of a finished job's duration (seconds since creation) from what polling saw.

    The job finished after the last poll that found it unfinished (``last_pending``, 0 when none did) and by
    the poll that found it finished (``detected``). Eachlabs' ``metrics.predict_time`` (§2.4) is the run time
    itself, so when it falls in that interval it is the answer; otherwise the nearer end of the interval is.
    Without it, the middle of the interval.
    """
    if predict_time is None:
        return (last_pending + detected) / 2
    return min(max(predict_time, last_pending), detected)


@attrs.define
class DurationEstimate:
    """The expected duration of one model's predictions, learned from completed ones.

    Kept on the provider instance (one per model) so every call made through one client benefits.
    """

    seconds: float
    """The current estimate of creation-to-completion time, in seconds."""
    weight: float = 0.3
    """How much one new sample moves the estimate (an exponentially weighted moving average)."""
    samples: int = 0
    """How many completed predictions have been learned from."""
    known: bool = False
    """Whether ``seconds`` is known (given by the caller, learned, or read from the learned-lengths cache) rather
    than the provider's typical time: until it is, timers poll on the cold schedule (:func:`next_cold_poll_at`)."""
    on_update: Callable[[DurationEstimate], None] | None = attrs.field(default=None, eq=False, repr=False)
    """Called after each update (the learned-lengths cache saves the estimate, ``_durations``)."""

    def update(self, sample: float) -> None:
        """Learn from one completed prediction that took ``sample`` seconds."""
        if sample <= 0:
            return
        self.seconds = sample if self.samples == 0 else self.seconds + self.weight * (sample - self.seconds)
        self.samples += 1
        self.known = True
        if self.on_update is not None:
            self.on_update(self)


@attrs.define
class PollTimer:
    """The polling state of one prediction: when it was last seen unfinished and when to look next.

    Times are seconds since the prediction was created (the flow converts them to its clock).
    """

    policy: PollPolicy
    duration: float
    """The expected creation-to-completion time when the prediction was created (a :class:`DurationEstimate`)."""
    expected: float = attrs.field(init=False)
    """When the job is now expected to finish: ``duration``, pushed later while the job waits for a worker."""
    last_pending: float = 0.0
    """When a poll last found the job unfinished (0 until one does)."""
    polls: int = 0
    """How many polls of this prediction have been answered."""
    next_at: float = attrs.field(init=False)
    """When to poll next."""
    started: bool = False
    """Whether a poll has seen the job ``processing`` (or finished)."""
    cold: bool = False
    """Whether ``duration`` is only the provider's typical time (no duration known yet): then the cold schedule."""

    def __attrs_post_init__(self) -> None:
        self.expected = self.duration
        self.next_at = self._next(0.0)

    def _next(self, elapsed: float) -> float:
        if self.cold:
            return next_cold_poll_at(elapsed, self.expected, self.policy)
        return next_poll_at(elapsed, self.expected, self.policy)

    def pending(self, elapsed: float, *, started: bool, sent: float | None = None) -> None:
        """A poll answered at ``elapsed`` found the job unfinished; ``started`` when Eachlabs said ``processing``.
        ``sent``: when that poll was sent. The provider looked somewhere between the two, so only ``sent`` proves
        the job unfinished (on a busy client an answer may be read long after the job ended: taking its arrival
        as "still running" would learn lengths that are too long).

        A typical job has a worker by the first check, so its run takes about ``duration - first_check``. A
        job still ``created`` (waiting for a worker, eachlabs.md §2.5) at ``elapsed`` cannot finish before it
        has run, so the expected end moves to at least ``elapsed`` plus that run.
        """
        self.polls += 1
        self.last_pending = max(self.last_pending, elapsed if sent is None else min(sent, elapsed))
        self.started = self.started or started
        if not self.started:
            run = max(self.duration - self.policy.first_check, self.policy.min_interval)
            self.expected = max(self.expected, elapsed + run)
        self.next_at = self._next(elapsed)
