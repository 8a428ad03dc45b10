"""Trigger words: img / rwre accepted, translated, inserted or moved with a warning; never two."""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from photomaker_bridge import BridgeWarning, InvalidRequestError, PhotoMakerRequest
from photomaker_bridge.prompts import CLASS_WORDS, NEUTRAL_LEAD, apply_trigger, check_prompts, find_triggers

URL = "https://example.com/face.jpg"


def _words(text: str) -> list[str]:
    return [match.group(0) for match in find_triggers(text)]


# --- find_triggers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a man img in space", ["img"]),
        ("a man IMG", ["IMG"]),
        ("a woman Rwre, smiling", ["Rwre"]),
        ("img", ["img"]),
        ("(img)", ["img"]),
        ("a man img.", ["img"]),
        ("img rwre", ["img", "rwre"]),
        ("imgur photo", []),
        ("img_01 and img2 and myimg", []),
        ("rwrefoo rwre_", []),
        ("an image of a man", []),
        ("", []),
    ],
)
def test_find_triggers_matches_whole_words_in_any_case(text: str, expected: list[str]) -> None:
    assert _words(text) == expected


# --- check_prompts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prompt", ["a man img", "a man rwre", "a man", "img", ""])
def test_at_most_one_trigger_is_fine(prompt: str) -> None:
    check_prompts(prompt, None)
    check_prompts(prompt, "blurry, lowres")
    check_prompts(prompt, "")


@pytest.mark.parametrize(
    ("prompt", "count", "words"),
    [
        ("a man img and a woman img", 2, "'img', 'img'"),
        ("a man img rwre", 2, "'img', 'rwre'"),
        ("IMG img Img", 3, "'IMG', 'img', 'Img'"),
    ],
)
def test_two_or_more_triggers_are_refused(prompt: str, count: int, words: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_prompts(prompt, None)
    error = caught.value
    assert (error.field, error.value) == ("prompt", prompt)
    assert error.reason == f"{count} trigger words: {words}"
    assert error.allowed == "write the trigger word (img or rwre) at most once, right after the class word"


@pytest.mark.parametrize("negative", ["img", "blurry, rwre", "no IMG please"])
def test_a_trigger_in_the_negative_prompt_is_refused(negative: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        check_prompts("a man img", negative)
    error = caught.value
    assert (error.field, error.value) == ("negative_prompt", negative)
    assert error.reason == "a trigger word in the negative prompt"
    assert "without the words img or rwre" in error.allowed


def test_the_request_runs_the_same_checks() -> None:
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest(prompt="a man img and a woman rwre", images=[URL])
    assert caught.value.field == "prompt"
    with pytest.raises(InvalidRequestError) as caught:
        PhotoMakerRequest(prompt="a man img", images=[URL], negative_prompt="img, blurry")
    assert caught.value.field == "negative_prompt"
    assert PhotoMakerRequest(prompt="a man", images=[URL], negative_prompt="imgur").prompt == "a man"


# --- apply_trigger: present triggers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "trigger", "expected"),
    [
        ("a man img in a spacesuit", "img", "a man img in a spacesuit"),
        ("a man rwre in a spacesuit", "rwre", "a man rwre in a spacesuit"),
        ("portrait of img, oil painting", "img", "portrait of img, oil painting"),  # a word precedes it: kept
        ("rwre", "rwre", "rwre"),
    ],
)
def test_the_providers_own_trigger_stays_as_written(prompt: str, trigger: str, expected: str) -> None:
    assert apply_trigger(prompt, trigger, provider="x") == (expected, [])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("prompt", "trigger", "expected"),
    [
        ("a man img in a spacesuit", "rwre", "a man rwre in a spacesuit"),
        ("a man rwre in a spacesuit", "img", "a man img in a spacesuit"),
        ("A MAN IMG", "img", "A MAN img"),  # even the case: the prompt sent differs
        ("Asian woman Rwre, smiling", "img", "Asian woman img, smiling"),
        ("img a man", "rwre", "rwre a man"),  # Runware keeps rwre where it is written
    ],
)
def test_another_trigger_is_renamed_in_place_with_a_warning(prompt: str, trigger: str, expected: str) -> None:
    text, warnings = apply_trigger(prompt, trigger, provider="x")  # type: ignore[arg-type]
    assert text == expected
    assert warnings == [BridgeWarning(field="prompt", asked=prompt, sent=expected, provider="x",
                                      reason=f"renamed the trigger word {find_triggers(prompt)[0].group(0)!r} to "
                                             f"{trigger!r}, the one this provider's PhotoMaker reads")]


@pytest.mark.parametrize(
    ("prompt", "expected", "how"),
    [
        ("img, a man in space", "a man img in space", "inserted 'img' after the class word 'man'"),
        ("Img. a woman", "a woman img", "inserted 'img' after the class word 'woman'"),
        ("rwre portrait of a girl", "portrait of a girl img", "inserted 'img' after the class word 'girl'"),
        ("img in space", f"{NEUTRAL_LEAD} img, in space",
         f"no class word (man, woman, person, ...) found: led the prompt with '{NEUTRAL_LEAD} img'"),
        ("img", f"{NEUTRAL_LEAD} img",
         f"no class word (man, woman, person, ...) found: led the prompt with '{NEUTRAL_LEAD} img'"),
    ],
)
def test_img_with_no_word_before_it_is_moved_behind_a_class_word(prompt: str, expected: str, how: str) -> None:
    text, warnings = apply_trigger(prompt, "img", provider="fal")
    assert text == expected
    assert warnings == [BridgeWarning(field="prompt", asked=prompt, sent=expected,
                                      reason=f"'img' must follow a class word; {how}", provider="fal")]


# --- apply_trigger: missing triggers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "expected", "class_word"),
    [
        ("a woman in a garden", "a woman img in a garden", "woman"),
        ("a boy and a girl at the beach", "a boy img and a girl at the beach", "boy"),
        ("A Man, cinematic", "A Man img, cinematic", "Man"),
        ("a photo of a person", "a photo of a person img", "person"),
        ("a human being, a woman", "a human being, a woman img", "woman"),  # "man" inside "human" is no class word
    ],
)
def test_a_missing_img_goes_after_the_first_class_word(prompt: str, expected: str, class_word: str) -> None:
    text, warnings = apply_trigger(prompt, "img", provider="eachlabs")
    assert text == expected
    assert warnings == [BridgeWarning(
        field="prompt", asked=prompt, sent=expected, provider="eachlabs",
        reason=f"the prompt had no trigger word; inserted 'img' after the class word {class_word!r}",
    )]


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("portrait, cyberpunk city", "a photo of a person img, portrait, cyberpunk city"),
        ("  astronaut on the moon ", "a photo of a person img, astronaut on the moon"),
        ("", "a photo of a person img"),
    ],
)
def test_without_a_class_word_img_gets_a_neutral_lead(prompt: str, expected: str) -> None:
    text, warnings = apply_trigger(prompt, "img")
    assert text == expected
    (warning,) = warnings
    assert (warning.field, warning.asked, warning.sent, warning.provider) == ("prompt", prompt, text, None)
    assert warning.reason == ("the prompt had no trigger word; no class word (man, woman, person, ...) found: "
                              "led the prompt with 'a photo of a person img'")


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a woman in a garden", "rwre, a woman in a garden"),
        ("portrait, cyberpunk city", "rwre, portrait, cyberpunk city"),
        ("  astronaut on the moon ", "rwre, astronaut on the moon"),
    ],
)
def test_a_missing_rwre_leads_the_prompt_as_runware_itself_does(prompt: str, expected: str) -> None:
    # Runware: "If not included, it will be automatically prepended" as "rwre, <prompt>" (runware.md §5.1).
    text, warnings = apply_trigger(prompt, "rwre", provider="runware")
    assert text == expected
    assert warnings == [BridgeWarning(
        field="prompt", asked=prompt, sent=expected, provider="runware",
        reason="the prompt had no trigger word; led it with 'rwre, ' as Runware itself does when the trigger is "
               "missing")]


@pytest.mark.parametrize("word", CLASS_WORDS)
def test_every_class_word_takes_the_trigger(word: str) -> None:
    text, warnings = apply_trigger(f"a smiling {word} outdoors", "img")
    assert text == f"a smiling {word} img outdoors"
    assert len(warnings) == 1


def test_class_words_include_the_issue_list() -> None:
    assert {"man", "woman", "person", "boy", "girl", "child"} <= set(CLASS_WORDS)


# --- properties ---------------------------------------------------------------------------------------------

_TOKENS = st.sampled_from([
    "img", "IMG", "rwre", "Rwre", "man", "Woman", "person", "child", "a", "photo", "of", "in", "space", "human",
    "imgur", "img_01", ",", ".", "(", ")", ";", "-", "portrait", "'s", "cinematic", "éclair", "42",
])


@given(tokens=st.lists(_TOKENS, max_size=12), joiners=st.lists(st.sampled_from([" ", "", "  ", ", "]), min_size=12,
                                                                 max_size=12),
       trigger=st.sampled_from(["img", "rwre"]))
def test_apply_trigger_always_leaves_exactly_one_trigger(tokens: list[str], joiners: list[str], trigger: str) -> None:
    prompt = "".join(token + joiners[index] for index, token in enumerate(tokens))
    try:
        check_prompts(prompt, None)
    except InvalidRequestError:
        assume(False)
    had_trigger = bool(find_triggers(prompt))
    try:
        text, warnings = apply_trigger(prompt, trigger)  # type: ignore[arg-type]
    except InvalidRequestError as error:
        # Only a word merely containing 'img' is refused, and only for the 'img' providers.
        assert trigger == "img" and "contains 'img'" in str(error)
        assert any(word.lower() != "img" for word in re.findall(r"\w*img\w*", prompt, re.IGNORECASE))
        return
    found = find_triggers(text)
    assert [match.group(0) for match in found] == [trigger]
    check_prompts(text, None)
    if trigger == "img":
        assert text[: found[0].start()].rstrip()[-1:].isalnum(), text
    if not had_trigger:
        assert len(warnings) == 1 and warnings[0].sent == text and warnings[0].asked == prompt
    if warnings:
        assert warnings[0].field == "prompt"
    else:
        # No warning: only the trigger's spelling changed.
        before = find_triggers(prompt)[0]
        assert text == prompt[: before.start()] + trigger + prompt[before.end():]


@given(prompt=st.text(max_size=60), trigger=st.sampled_from(["img", "rwre"]))
def test_apply_trigger_on_arbitrary_text(prompt: str, trigger: str) -> None:
    assume(len(find_triggers(prompt)) <= 1)
    text, _ = apply_trigger(prompt, trigger)  # type: ignore[arg-type]
    assert [match.group(0) for match in find_triggers(text)] == [trigger]


@given(prompt=st.text(max_size=60))
def test_check_prompts_agrees_with_the_trigger_count(prompt: str) -> None:
    count = len(find_triggers(prompt))
    if count > 1:
        with pytest.raises(InvalidRequestError):
            check_prompts(prompt, None)
    else:
        check_prompts(prompt, None)


@pytest.mark.parametrize("prompt", ["a man img on imgur", "a man img, IMG_01.jpg style", "a woman img, imgs"])
def test_a_word_containing_img_is_refused_for_img_providers(prompt: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        apply_trigger(prompt, "img", provider="fal")
    assert caught.value.field == "prompt" and "contains 'img'" in str(caught.value)
    # Runware's trigger is rwre, so the same prompt is fine there.
    assert apply_trigger(prompt, "rwre")[0].count("rwre") == 1


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("a photo of rwre woman in a park", "a photo of woman img in a park"),  # Runware's style: trigger first
        ("a man wearing img glasses", "a man img wearing glasses"),
    ],
)
def test_img_after_a_non_class_word_moves_behind_the_class_word(prompt: str, expected: str) -> None:
    text, warnings = apply_trigger(prompt, "img", provider="eachlabs")
    assert text == expected
    assert len(warnings) == 1 and warnings[0].sent == expected and "class word" in warnings[0].reason


@pytest.mark.parametrize("prompt", ["a Viking img in armor", "an Asian woman img", "a cowboy img and a dog"])
def test_img_stays_where_written_after_a_class_word_or_without_one(prompt: str) -> None:
    assert apply_trigger(prompt, "img") == (prompt, [])
