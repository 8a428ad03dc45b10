"""Style and normalize_style(): one enum, every provider's spelling."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from photomaker_bridge import InvalidRequestError, PhotoMakerRequest, Style, normalize_style

CANONICAL = [
    "no_style", "cinematic", "disney_character", "digital_art", "photographic", "fantasy_art", "neonpunk",
    "enhance", "comic_book", "lowpoly", "line_art",
]

RUNWARE = {
    "No style": Style.NO_STYLE, "Cinematic": Style.CINEMATIC, "Disney Character": Style.DISNEY_CHARACTER,
    "Digital Art": Style.DIGITAL_ART, "Photographic": Style.PHOTOGRAPHIC, "Fantasy art": Style.FANTASY_ART,
    "Neonpunk": Style.NEONPUNK, "Enhance": Style.ENHANCE, "Comic book": Style.COMIC_BOOK,
    "Lowpoly": Style.LOWPOLY, "Line art": Style.LINE_ART,
}
FAL = {("(No style)" if name == "No style" else name): style for name, style in RUNWARE.items()}
EACHLABS = {
    **FAL,
    "Disney Charactor": Style.DISNEY_CHARACTER,
    "Photographic (Default)": Style.PHOTOGRAPHIC,
}
del EACHLABS["Disney Character"], EACHLABS["Photographic"]

ALL_SPELLINGS = sorted({*RUNWARE, *FAL, *EACHLABS})


def test_there_are_exactly_eleven_styles_with_canonical_values() -> None:
    assert [style.value for style in Style] == CANONICAL
    assert len(RUNWARE) == len(FAL) == len(EACHLABS) == 11
    assert set(RUNWARE.values()) == set(FAL.values()) == set(EACHLABS.values()) == set(Style)


def test_labels_are_the_human_spellings() -> None:
    assert {style.label: style for style in Style} == RUNWARE


def test_str_is_the_canonical_value() -> None:
    assert str(Style.DISNEY_CHARACTER) == "disney_character"
    assert f"{Style.NO_STYLE}" == "no_style"


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [*RUNWARE.items(), *FAL.items(), *EACHLABS.items()],
)
def test_every_provider_spelling(spelling: str, expected: Style) -> None:
    assert normalize_style(spelling) is expected


@pytest.mark.parametrize("style", list(Style))
def test_the_enum_its_value_and_its_member_name(style: Style) -> None:
    assert normalize_style(style) is style
    assert normalize_style(style.value) is style
    assert normalize_style(style.name) is style
    assert normalize_style(style.label) is style


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("photographic default", Style.PHOTOGRAPHIC),  # "(Default)" without its parentheses
        ("PHOTOGRAPHIC_DEFAULT", Style.PHOTOGRAPHIC),
        ("photographic-(default)", Style.PHOTOGRAPHIC),
        ("Cinematic (Default)", Style.CINEMATIC),
        ("disney-charactor", Style.DISNEY_CHARACTER),
        ("DISNEY_CHARACTOR", Style.DISNEY_CHARACTER),
        ("no-style", Style.NO_STYLE),
        ("nostyle", Style.NO_STYLE),
        ("  (no style)  ", Style.NO_STYLE),
        ("low poly", Style.LOWPOLY),
        ("neon-punk", Style.NEONPUNK),
        ("Comic-Book", Style.COMIC_BOOK),
        ("line__art", Style.LINE_ART),
        ("Digital  Art", Style.DIGITAL_ART),
        ("fantasy_ART", Style.FANTASY_ART),
    ],
)
def test_loose_spellings(spelling: str, expected: Style) -> None:
    assert normalize_style(spelling) is expected


_WORD_SPLIT = re.compile(r"[\s_\-()]+")


def _words(spelling: str) -> list[str]:
    return [word for word in _WORD_SPLIT.split(spelling) if word]


@given(
    spelling=st.sampled_from(ALL_SPELLINGS),
    separators=st.lists(st.sampled_from([" ", "-", "_", "", "  ", " - "]), min_size=4, max_size=4),
    casing=st.lists(st.sampled_from(["lower", "upper", "title", "keep", "swapcase"]), min_size=4, max_size=4),
    parentheses=st.booleans(),
    default_suffix=st.sampled_from(["", " (Default)", " default", "_DEFAULT", "(default)"]),
    misspell=st.booleans(),
)
def test_generated_spellings_all_reach_the_same_style(
    spelling: str, separators: list[str], casing: list[str], parentheses: bool, default_suffix: str,
    misspell: bool,
) -> None:
    expected = {**RUNWARE, **FAL, **EACHLABS}[spelling]
    words = [word for word in _words(spelling) if word.lower() != "default"]
    if misspell:
        words = [re.sub("(?i)character", "Charactor", word) for word in words]
    cased = [getattr(word, casing[index % 4])() if casing[index % 4] != "keep" else word
             for index, word in enumerate(words)]
    text = cased[0] + "".join(separators[index % 4] + word for index, word in enumerate(cased[1:]))
    if parentheses:
        text = f"({text})"
    text += default_suffix
    assert normalize_style(text) is expected


# --- refusals -----------------------------------------------------------------------------------------------


def test_an_unknown_name_lists_the_valid_names_and_the_closest_match() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        normalize_style("cinematik")
    error = caught.value
    assert (error.field, error.value, error.reason) == ("style", "cinematik", "unknown style")
    assert error.allowed == "did you mean 'cinematic'? valid styles: " + ", ".join(CANONICAL)
    assert str(error) == ("style: 'cinematik' is not allowed (unknown style); did you mean 'cinematic'? "
                          "valid styles: " + ", ".join(CANONICAL))


@pytest.mark.parametrize(
    ("typo", "closest"),
    [("Disny Charcter", "disney_character"), ("line-arts", "line_art"), ("photografic", "photographic"),
     ("neon punks", "neonpunk"), ("comics book", "comic_book")],
)
def test_closest_match_for_typos(typo: str, closest: str) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(f"did you mean {closest!r}?")):
        normalize_style(typo)


@pytest.mark.parametrize("name", ["watercolor", "", "()", "(Default)", "default", "xyz"])
def test_names_with_no_close_match_or_no_letters(name: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        normalize_style(name)
    assert caught.value.field == "style"
    assert caught.value.value == name
    assert caught.value.allowed.endswith("valid styles: " + ", ".join(CANONICAL))


@pytest.mark.parametrize("value", [3, None, b"cinematic", ["cinematic"]])
def test_a_non_string_is_refused(value: object) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        normalize_style(value)  # type: ignore[arg-type]
    assert caught.value.field == "style"
    assert caught.value.value == value
    assert caught.value.reason == "a style is a name (string)"


def test_the_request_normalizes_its_style() -> None:
    request = PhotoMakerRequest(prompt="a man img", images=["https://example.com/a.jpg"],
                                style="Disney Charactor")
    assert request.style is Style.DISNEY_CHARACTER
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest(prompt="a man img", images=["https://example.com/a.jpg"], style="vaporwave")
    assert caught.value.field == "style"
