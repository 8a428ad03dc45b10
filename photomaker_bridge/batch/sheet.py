"""The contact sheet's layout: rows = prompt × style, columns = providers, each cell the images of that row's
jobs on that provider (every reference set and seed), captioned with seed, cost and seconds; a failed job is a
labelled tile naming its error class. Pure: built from ``finished`` journal lines; drawn by the HTML report
and by :mod:`.contact_sheet` (PNG).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import attrs

__all__ = ["ContactSheet", "SheetRow", "Tile", "build_sheet", "format_cost", "format_seconds"]


def format_seconds(value: Any) -> str:
    """``1.23 s``, or ``–`` when unknown."""
    return f"{float(value):.2f} s" if isinstance(value, int | float) else "–"


def format_cost(cost: Any) -> str:
    """``0.0013 USD`` (``est.`` for estimated), or ``no cost``."""
    if not isinstance(cost, Mapping):
        return "no cost"
    amount = Decimal(str(cost.get("amount", "0"))).normalize()
    suffix = " est." if cost.get("source") == "estimated" else ""
    return f"{amount:f} {cost.get('currency', 'USD')}{suffix}"


@attrs.frozen
class Tile:
    """One image of a job, or one failed job."""

    key: str
    provider: str
    faces: str
    seed: int | None
    """The image's seed (or the seed asked for)."""
    caption: str
    """``faces 1 · seed 42 · 0.0013 USD · 0.42 s``, or the failure's description."""
    path: str | None = None
    """The saved image, relative to the output folder."""
    url: str | None = None
    """The provider's URL when the image was not saved."""
    error_class: str | None = None
    """For a failed job: its error class; the tile then has no image."""

    @property
    def failed(self) -> bool:
        """Whether this tile stands for a failed job."""
        return self.error_class is not None


@attrs.frozen
class SheetRow:
    """One prompt × style, with one cell (a tuple of tiles) per provider column."""

    prompt: str
    style: str
    cells: tuple[tuple[Tile, ...], ...]


@attrs.frozen
class ContactSheet:
    """The whole grid."""

    providers: tuple[str, ...]
    rows: tuple[SheetRow, ...]
    omitted: int = 0
    """Jobs left out to keep the sheet a readable size."""


def _tiles(record: Mapping[str, Any]) -> list[Tile]:
    labels = record.get("labels") or {}
    faces, asked = str(labels.get("faces", "")), labels.get("seed")
    key, provider = str(record.get("key")), str(record.get("provider"))
    if record.get("outcome") != "success":
        error = record.get("error") or {}
        status = f" (HTTP {error['status']})" if error.get("status") else ""
        seed_text = f"seed {asked}" if asked is not None else "random seed"
        return [Tile(key, provider, faces, asked, f"{faces} · {seed_text} · {error.get('class', 'error')}{status}",
                     error_class=str(error.get("class", "UnknownError")))]
    seconds = record.get("total_seconds")
    if seconds is None:
        seconds = record.get("run_seconds")
    cost = format_cost(record.get("cost"))
    tiles = []
    for image in record.get("images") or ():
        seed = image.get("seed") if image.get("seed") is not None else record.get("seed")
        tiles.append(Tile(key, provider, faces, seed,
                          f"{faces} · seed {seed if seed is not None else '?'} · {cost} · {format_seconds(seconds)}",
                          path=image.get("path"), url=image.get("url")))
    return tiles


def build_sheet(records: Iterable[Mapping[str, Any]], *, providers: Iterable[str] = (),
                max_tiles: int = 600) -> ContactSheet:
    """Lay out ``finished`` journal lines (one per job). Columns are ``providers`` first, then any other
    provider in order of appearance; rows in order of appearance. Tiles past ``max_tiles`` are left out
    (whole jobs), and counted in ``omitted``."""
    columns: list[str] = list(dict.fromkeys(providers))
    rows: dict[tuple[str, str], dict[str, list[Tile]]] = {}
    shown = omitted = 0
    for record in records:
        tiles = _tiles(record)
        if shown + len(tiles) > max_tiles:
            omitted += 1
            continue
        shown += len(tiles)
        labels = record.get("labels") or {}
        provider = str(record.get("provider"))
        if provider not in columns:
            columns.append(provider)
        row = rows.setdefault((str(labels.get("prompt", "")), str(labels.get("style", ""))), {})
        row.setdefault(provider, []).extend(tiles)
    built = tuple(
        SheetRow(prompt, style, tuple(tuple(sorted(cells.get(name, []), key=lambda tile: (tile.faces, tile.seed or 0)))
                                      for name in columns))
        for (prompt, style), cells in rows.items())
    return ContactSheet(tuple(columns), built, omitted)
