"""Trigger words: the token that tells PhotoMaker where the person from the reference photos goes.

TencentARC's PhotoMaker, which fal and Eachlabs run, needs the word ``img`` exactly once, right after the
class word it personalises ("a man img", "Asian woman img"; eachlabs.md §3.3, fal.md §4.2): it takes the
token before ``img`` as the class word, so ``img`` at the start of a prompt personalises nothing. Runware's
PhotoMaker uses ``rwre`` instead, keeps it where it is written, and prepends ``rwre, `` to a prompt without it
("If not included, it will be automatically prepended"; the trigger at the start is strongest, runware.md §5.1).

A unified prompt may carry either word, or neither. :func:`apply_trigger` turns it into a provider's own, as
that provider documents: a present trigger is renamed in place (and, for ``img``, moved behind a class word when
nothing precedes it); a missing ``img`` is inserted after the first class word, or the prompt is led with
"a photo of a person img"; a missing ``rwre`` leads the prompt as ``rwre, `` — what Runware itself would run.
Every change to the prompt (a rename, a move, an insertion) is reported as a :class:`BridgeWarning`.
"""

from __future__ import annotations

import re
from typing import Literal

from .errors import InvalidRequestError
from .result import BridgeWarning

__all__ = ["CLASS_WORDS", "TRIGGER_WORDS", "Trigger", "apply_trigger", "check_prompts", "find_triggers"]

Trigger = Literal["img", "rwre"]
TRIGGER_WORDS: tuple[Trigger, ...] = ("img", "rwre")

CLASS_WORDS: tuple[str, ...] = (
    "man", "woman", "person", "boy", "girl", "child", "kid", "baby", "toddler", "teenager", "teen",
    "lady", "gentleman", "guy", "male", "female", "men", "women", "people", "adult",
)
"""Words that name a person; the trigger goes right after the first of them."""

NEUTRAL_LEAD = "a photo of a person"

# Whole words only: "img" inside "imgur" or "img_01" is not a trigger. CLIP lower-cases text before
# tokenising, so "IMG" would count as the trigger at the provider: match without case.
_TRIGGER_PATTERN = re.compile(r"(?<![\w])(img|rwre)(?![\w])", re.IGNORECASE)
_CLASS_PATTERN = re.compile(r"(?<![\w])(" + "|".join(CLASS_WORDS) + r")(?![\w])", re.IGNORECASE)


def find_triggers(text: str) -> list[re.Match[str]]:
    """Every whole-word ``img`` or ``rwre`` in ``text``, any case."""
    return list(_TRIGGER_PATTERN.finditer(text))


def check_prompts(prompt: str, negative_prompt: str | None) -> None:
    """Refuse what no provider can run: two or more triggers, or a trigger in the negative prompt."""
    found = find_triggers(prompt)
    if len(found) > 1:
        words = ", ".join(repr(match.group(0)) for match in found)
        raise InvalidRequestError(
            "prompt", prompt, "write the trigger word (img or rwre) at most once, right after the class word",
            reason=f"{len(found)} trigger words: {words}",
        )
    if negative_prompt and find_triggers(negative_prompt):
        raise InvalidRequestError(
            "negative_prompt", negative_prompt, "a negative prompt without the words img or rwre",
            reason="a trigger word in the negative prompt",
        )


def _insert(prompt: str, trigger: Trigger) -> tuple[str, str]:
    """Insert ``trigger`` as its provider documents (``rwre``: prepended; ``img``: after the first class word, or
    a neutral lead); say what was done."""
    if trigger == "rwre":
        body = prompt.strip()
        return (f"rwre, {body}" if body else "rwre"), ("led it with 'rwre, ' as Runware itself does when the "
                                                        "trigger is missing")
    match = _CLASS_PATTERN.search(prompt)
    if match:
        text = prompt[: match.end()] + " " + trigger + prompt[match.end():]
        return text, f"inserted {trigger!r} after the class word {match.group(0)!r}"
    body = prompt.strip()
    text = f"{NEUTRAL_LEAD} {trigger}, {body}" if body else f"{NEUTRAL_LEAD} {trigger}"
    return text, f"no class word (man, woman, person, ...) found: led the prompt with '{NEUTRAL_LEAD} {trigger}'"


def _tidy(text: str) -> str:
    """Collapse the doubled spaces and dangling separators left by removing a word."""
    text = re.sub(r"\s{2,}", " ", text)
    text = re.sub(r"^\s*[,;:.]\s*", "", text)
    return re.sub(r"\s+([,;:.])", r"\1", text).strip()


def _refuse_embedded_img(prompt: str) -> None:
    # TencentARC registers "img" as an added token (eachlabs.md §3.3); a tokenizer's added tokens match inside
    # words too, so "imgur" would count as a second trigger and the job would fail after being accepted.
    embedded = [word for word in re.findall(r"\w*img\w*", prompt, re.IGNORECASE) if word.lower() != "img"]
    if embedded:
        raise InvalidRequestError(
            "prompt", prompt, "no other word containing 'img' (PhotoMaker's tokenizer takes it as a trigger)",
            reason=f"{embedded[0]!r} contains 'img'",
        )


def apply_trigger(prompt: str, trigger: Trigger, *, provider: str | None = None) -> tuple[str, list[BridgeWarning]]:
    """The prompt with the provider's trigger word, and a warning for anything inserted or moved.

    Assumes :func:`check_prompts` passed (at most one trigger). For ``img``, a word that merely contains
    ``img`` ("imgur") is refused: the provider's tokenizer would read a second trigger in it.
    """
    if trigger == "img":
        _refuse_embedded_img(prompt)
    found = find_triggers(prompt)
    if not found:
        text, how = _insert(prompt, trigger)
        reason = f"the prompt had no trigger word; {how}"
        return text, [BridgeWarning(field="prompt", asked=prompt, sent=text, reason=reason, provider=provider)]
    match = found[0]
    before = prompt[: match.start()].rstrip()
    previous = re.search(r"(\w+)$", before)
    misplaced = previous is None or (not _CLASS_PATTERN.fullmatch(previous.group(1))
                                     and _CLASS_PATTERN.search(prompt) is not None)
    if trigger == "img" and misplaced:
        # PhotoMaker takes the word right before 'img' as the class word it personalises (eachlabs.md §3.3):
        # nothing there ("img, a portrait"), or another word while the prompt names a person elsewhere
        # ("a photo of rwre woman", Runware's style), would personalise the wrong thing or nothing.
        without = _tidy(prompt[: match.start()] + prompt[match.end():])
        text, how = _insert(without, trigger)
        reason = f"'img' must follow a class word; {how}"
        return text, [BridgeWarning(field="prompt", asked=prompt, sent=text, reason=reason, provider=provider)]
    text = prompt[: match.start()] + trigger + prompt[match.end():]
    if match.group(0) == trigger:
        return text, []
    reason = f"renamed the trigger word {match.group(0)!r} to {trigger!r}, the one this provider's PhotoMaker reads"
    return text, [BridgeWarning(field="prompt", asked=prompt, sent=text, reason=reason, provider=provider)]
