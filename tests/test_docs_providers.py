"""docs/providers.md shows the capability matrix the adapters' tables produce: it cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

from photomaker_bridge._docs import BEGIN, END, render_matrix, rewrite

PAGE = Path(__file__).resolve().parent.parent / "docs" / "providers.md"


def test_the_page_holds_the_current_matrix() -> None:
    page = PAGE.read_text()
    assert rewrite(page) == page, "docs/providers.md is stale: run `python -m photomaker_bridge._docs`"


def test_the_matrix_covers_every_field_and_provider() -> None:
    matrix = render_matrix()
    for field in ("prompt", "images", "style", "num_images", "width", "safety_check", "provider_options"):
        assert f"| `{field}` |" in matrix
    assert "| unified field | runware | fal | eachlabs |" in matrix
    assert "`Disney Charactor`" in matrix


def test_rewrite_refuses_a_page_without_markers() -> None:
    import pytest

    with pytest.raises(ValueError, match="markers"):
        rewrite("no markers here")
    assert BEGIN in PAGE.read_text() and END in PAGE.read_text()
