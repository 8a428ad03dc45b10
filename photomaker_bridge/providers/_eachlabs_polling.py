"""Moved to :mod:`photomaker_bridge.providers._polling` (shared by Eachlabs and fal); re-exported here."""

from ._polling import DurationEstimate, PollPolicy, PollTimer, duration_sample, next_poll_at

__all__ = ["DurationEstimate", "PollPolicy", "PollTimer", "duration_sample", "next_poll_at"]
