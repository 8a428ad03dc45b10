"""``contact_sheet.png``: the report's contact sheet as one picture, for pasting into chats and issues (Pillow).

The grid is the same as the report's (:mod:`.sheet`): a row per prompt × style, a column per provider, each
cell the row's images on that provider as thumbnails with seed, cost and seconds under them; a failed job is
a red tile naming its error class.
"""

from __future__ import annotations

import functools
import math
import textwrap
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from .sheet import ContactSheet, Tile

__all__ = ["write_contact_sheet"]

_THUMB = 180
_GAP = 12
_CAPTION_LINES = 3
_FONT_SIZE = 12
_LINE = 15
_CHARACTER = 6.5
"""Average width of a character of the caption font, in pixels (for wrapping)."""
_HEADER = 34
_ROW_LABEL = 220
_MAX_TILES_PER_LINE = 4
_BACKGROUND = (255, 255, 255)
_INK = (29, 35, 41)
_MUTED = (91, 102, 112)
_LINE_COLOUR = (216, 222, 228)
_FAILED = (253, 243, 242)
_BAD = (179, 38, 30)


@functools.cache
def _font(size: int = _FONT_SIZE) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's bundled scalable font where FreeType is available (Pillow 10.1+), else its bitmap font."""
    try:
        return ImageFont.load_default(size=size)
    except (OSError, TypeError, ImportError):
        return ImageFont.load_default()


def _per_line(tiles: int) -> int:
    """Tiles side by side in a cell: about as many lines as columns, at most four."""
    return max(1, min(_MAX_TILES_PER_LINE, math.ceil(math.sqrt(tiles))))


def _tile_height() -> int:
    return _THUMB + 4 + _CAPTION_LINES * _LINE


def _cell_size(tiles: int) -> tuple[int, int]:
    per_line = _per_line(tiles)
    lines = max(1, math.ceil(tiles / per_line))
    return per_line * (_THUMB + _GAP) + _GAP, lines * (_tile_height() + _GAP) + _GAP


def _draw_text(draw: ImageDraw.ImageDraw, position: tuple[int, int], text: str, width: int, lines: int,
               fill: tuple[int, int, int]) -> int:
    """Draw ``text`` wrapped to ``width`` pixels, at most ``lines`` lines; returns the lines drawn."""
    x, y = position
    wrapped = textwrap.wrap(text, max(8, int(width / _CHARACTER)))[:lines]
    for index, line in enumerate(wrapped):
        draw.text((x, y + index * _LINE), line, fill=fill, font=_font())
    return len(wrapped)


def _thumbnail(folder: Path, tile: Tile) -> Image.Image | None:
    if tile.path is None:
        return None
    try:
        with Image.open(folder / tile.path) as opened:
            picture = opened.convert("RGB")
    except (OSError, ValueError):
        return None
    picture.thumbnail((_THUMB, _THUMB))
    return picture


def _draw_tile(canvas: Image.Image, draw: ImageDraw.ImageDraw, folder: Path, tile: Tile, x: int, y: int) -> None:
    if tile.failed:
        draw.rectangle((x, y, x + _THUMB, y + _THUMB), fill=_FAILED, outline=_BAD)
        _draw_text(draw, (x + 8, y + 8), tile.error_class or "failed", _THUMB - 16, 4, _BAD)
    else:
        picture = _thumbnail(folder, tile)
        if picture is None:
            draw.rectangle((x, y, x + _THUMB, y + _THUMB), outline=_LINE_COLOUR)
            _draw_text(draw, (x + 8, y + 8), "image not saved", _THUMB - 16, 2, _MUTED)
        else:
            canvas.paste(picture, (x + (_THUMB - picture.width) // 2, y + (_THUMB - picture.height) // 2))
    _draw_text(draw, (x, y + _THUMB + 4), tile.caption, _THUMB, _CAPTION_LINES, _MUTED)


def write_contact_sheet(sheet: ContactSheet, folder: Path, target: Path) -> Path:
    """Draw ``sheet`` (images read from ``folder``) into the PNG ``target``; returns ``target``."""
    widths = [max((_cell_size(len(row.cells[column]))[0] for row in sheet.rows), default=_THUMB + 2 * _GAP)
              for column in range(len(sheet.providers))]
    heights = [max((_cell_size(len(cell))[1] for cell in row.cells), default=_tile_height()) for row in sheet.rows]
    width = _ROW_LABEL + sum(widths) + 1
    height = _HEADER + sum(heights) + 1
    canvas = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    x = _ROW_LABEL
    for name, column_width in zip(sheet.providers, widths, strict=True):
        draw.rectangle((x, 0, x + column_width, _HEADER), outline=_LINE_COLOUR)
        draw.text((x + _GAP, 9), name, fill=_INK, font=_font(_FONT_SIZE + 2))
        x += column_width
    y = _HEADER
    for row, row_height in zip(sheet.rows, heights, strict=True):
        draw.rectangle((0, y, _ROW_LABEL, y + row_height), outline=_LINE_COLOUR)
        drawn = _draw_text(draw, (10, y + 10), row.prompt, _ROW_LABEL - 20, 8, _INK)
        _draw_text(draw, (10, y + 14 + drawn * _LINE), row.style, _ROW_LABEL - 20, 2, _MUTED)
        x = _ROW_LABEL
        for cell, column_width in zip(row.cells, widths, strict=True):
            draw.rectangle((x, y, x + column_width, y + row_height), outline=_LINE_COLOUR)
            per_line = _per_line(len(cell))
            for index, tile in enumerate(cell):
                line, position = divmod(index, per_line)
                _draw_tile(canvas, draw, folder, tile, x + _GAP + position * (_THUMB + _GAP),
                           y + _GAP + line * (_tile_height() + _GAP))
            x += column_width
        y += row_height
    canvas.save(target, "PNG", optimize=True)
    return target
