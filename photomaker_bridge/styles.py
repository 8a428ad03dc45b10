"""The 11 PhotoMaker styles, and one way to name them whatever the provider's spelling.

The three providers spell the same styles differently (architecture.md §5): Runware writes ``No style`` and
``Disney Character``, fal ``(No style)``, Eachlabs ``(No style)``, ``Disney Charactor`` (sic, TencentARC's
original misspelling) and ``Photographic (Default)``. Each adapter keeps its own spelling table; this module
only knows the styles themselves and how to recognise any of those spellings.
"""

from __future__ import annotations

import difflib
import enum
import re

from .errors import InvalidRequestError

__all__ = ["Style", "normalize_style"]


class Style(enum.Enum):
    """A PhotoMaker style template. The value is the canonical snake_case name (``"disney_character"``)."""

    NO_STYLE = "no_style"
    """No template: the prompt as written; the best identity fidelity."""
    CINEMATIC = "cinematic"
    DISNEY_CHARACTER = "disney_character"
    DIGITAL_ART = "digital_art"
    PHOTOGRAPHIC = "photographic"
    FANTASY_ART = "fantasy_art"
    NEONPUNK = "neonpunk"
    ENHANCE = "enhance"
    COMIC_BOOK = "comic_book"
    LOWPOLY = "lowpoly"
    LINE_ART = "line_art"

    @property
    def label(self) -> str:
        """A human-readable name: ``"Disney Character"``."""
        return _LABELS[self]

    def __str__(self) -> str:
        return self.value


_LABELS: dict[Style, str] = {
    Style.NO_STYLE: "No style",
    Style.CINEMATIC: "Cinematic",
    Style.DISNEY_CHARACTER: "Disney Character",
    Style.DIGITAL_ART: "Digital Art",
    Style.PHOTOGRAPHIC: "Photographic",
    Style.FANTASY_ART: "Fantasy art",
    Style.NEONPUNK: "Neonpunk",
    Style.ENHANCE: "Enhance",
    Style.COMIC_BOOK: "Comic book",
    Style.LOWPOLY: "Lowpoly",
    Style.LINE_ART: "Line art",
}


def _key(text: str) -> str:
    """Fold a spelling to letters only: case, parentheses, "(Default)", dashes, underscores, spaces go.

    A trailing "default" goes with or without its parentheses ("Photographic Default", "photographic_default"),
    but never the whole name: "default" alone names no style.
    """
    folded = re.sub(r"[^a-z]", "", text.lower()).replace("charactor", "character")
    if folded.endswith("default") and len(folded) > len("default"):
        folded = folded[: -len("default")]
    return folded


_BY_KEY: dict[str, Style] = {_key(style.value): style for style in Style}


def normalize_style(value: Style | str) -> Style:
    """The :class:`Style` a name stands for, in any provider's spelling.

    Accepts the enum itself, its value (``"comic_book"``), its member name (``"COMIC_BOOK"``), and every
    provider spelling in any case, with or without parentheses, dashes, underscores or spaces,
    ``"(Default)"``, and the ``Charactor`` misspelling: ``"(No style)"``, ``"No style"``,
    ``"Disney Charactor"``, ``"Photographic (Default)"``, ``"line-art"``.

    Raises :class:`InvalidRequestError` for an unknown name, listing the valid names and the closest match.
    """
    if isinstance(value, Style):
        return value
    if not isinstance(value, str):
        raise InvalidRequestError("style", value, _allowed(), reason="a style is a name (string)")
    style = _BY_KEY.get(_key(value))
    if style is not None:
        return style
    close = difflib.get_close_matches(_key(value), list(_BY_KEY), n=1, cutoff=0.5)
    hint = f"did you mean {_BY_KEY[close[0]].value!r}? " if close else ""
    raise InvalidRequestError("style", value, hint + _allowed(), reason="unknown style")


def _allowed() -> str:
    return "valid styles: " + ", ".join(style.value for style in Style)
