"""Generates the capability matrix of ``docs/providers.md`` from the adapters' own tables.

``python -m photomaker_bridge._docs`` rewrites the block between the markers in ``docs/providers.md``;
``tests/test_docs_providers.py`` fails when the page and the code disagree, so the page cannot drift.
"""

from __future__ import annotations

import sys
from pathlib import Path

import attrs

from .providers import provider_class
from .request import PhotoMakerRequest

__all__ = ["BEGIN", "END", "render_matrix", "rewrite"]

BEGIN = "<!-- BEGIN GENERATED: python -m photomaker_bridge._docs -->"
END = "<!-- END GENERATED -->"
_ORDER = ("runware", "fal", "eachlabs")
_MARKS = {"native": "✓", "adjusted": "≈", "unsupported": "✗"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_matrix() -> str:
    """The generated Markdown: the capability matrix and each provider's style spellings."""
    adapters = {name: provider_class(name) for name in _ORDER}
    fields = [field.name for field in attrs.fields(PhotoMakerRequest)]
    lines = [
        "| unified field | " + " | ".join(_ORDER) + " |",
        "|---|" + "---|" * len(_ORDER),
    ]
    for field in fields:
        cells = []
        for name in _ORDER:
            found = [line for line in adapters[name].capabilities if line.field == field]
            if not found:
                cells.append("—")
                continue
            line = found[0]
            wire = f"`{line.provider_field}` " if line.provider_field else ""
            cells.append(_cell(f"{_MARKS[line.support]} {wire}{line.detail}".strip()))
        lines.append(f"| `{field}` | " + " | ".join(cells) + " |")
    lines += ["", "✓ sent as given · ≈ translated, clamped or split (with a warning when the value changes) · "
              "✗ not supported: left out with a warning (an error with `strict=True`)", "",
              "Style spellings (`photomaker-bridge styles` prints the same):", "",
              "| style | " + " | ".join(_ORDER) + " |", "|---|" + "---|" * len(_ORDER)]
    tables = {name: adapters[name].style_names() for name in _ORDER}
    for style in tables["runware"]:
        lines.append(f"| `{style.value}` | " + " | ".join(f"`{tables[name][style]}`" for name in _ORDER) + " |")
    return "\n".join(lines) + "\n"


def rewrite(page: str) -> str:
    """``page`` with the generated block replaced by the current :func:`render_matrix`."""
    head, begin, rest = page.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise ValueError(f"the page lacks the markers {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n{render_matrix()}{END}{tail}"


def main() -> int:
    """Rewrite docs/providers.md in place (run from the repository root)."""
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/providers.md")
    path.write_text(rewrite(path.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
