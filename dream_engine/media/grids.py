"""Contact sheets: several images side by side, each with a caption, as one picture.

A comparison (one parameter swept, one layer per tile, kinds of image) is read
as a whole, so it travels as one image: one Discord attachment, one README
figure. Tiles are scaled to one height so they compare at a glance, in rows of
at most `MAX_COLUMNS` balanced so the last row is not a lone straggler. Each
caption sits under its tile, wrapped (at spaces and at `,+;=/`) and then
shortened to the tile's width, so it never runs into a neighbour. When the
sheet would exceed `max_side`, the tiles shrink and the sheet is laid out
again, so captions keep a legible font size instead of being scaled away.

Pure Pillow: the bot can compose a sheet without TensorFlow.

    from dream_engine.media.grids import compose_grid
    sheet = compose_grid([("input", photo), ("step=0.005", a), ("step=0.05", b)],
                         title="same seed, balanced preset")
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

MAX_COLUMNS = 4
DEFAULT_TILE_HEIGHT = 320
DEFAULT_MAX_SIDE = 2048  # longest side of a whole sheet, in px
MAX_TILE_ASPECT = 2.0  # a panorama gets a box twice as wide as high, not the whole row
MIN_TILE_ASPECT = 0.75  # a tall image still gets a box wide enough for its caption
CAPTION_LINES = 2
TITLE_LINES = 3
MIN_FONT = 11
BACKGROUND = (255, 255, 255)
INK = (24, 24, 24)
_BREAK_AFTER = re.compile(r"(?<=[ ,+;=/])")  # where a caption may wrap
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def compose_grid(
    tiles: Sequence[tuple[str, Image.Image]],
    *,
    title: str | None = None,
    columns: int | None = None,
    tile_height: int = DEFAULT_TILE_HEIGHT,
    max_side: int = DEFAULT_MAX_SIDE,
) -> Image.Image:
    """One RGB image of `tiles` (caption, image) in order, left to right, top to bottom.

    `columns` defaults to a balanced layout of at most `MAX_COLUMNS` per row.
    The result's longest side is at most `max_side`.
    """
    if not tiles:
        raise ValueError("compose_grid needs at least one tile")
    if tile_height < 8 or max_side < 64:
        raise ValueError("tile_height must be at least 8 px and max_side at least 64 px")
    columns = min(columns or balanced_columns(len(tiles)), len(tiles))
    height = tile_height
    for _ in range(8):  # shrink until it fits; each pass brings the sheet close to max_side
        layout = _Layout.plan(tiles, title, columns, height)
        longest = max(layout.size)
        if longest <= max_side:
            return layout.draw(tiles, title)
        height = max(8, math.floor(height * max_side / longest) - 1)
    sheet = layout.draw(tiles, title)  # text at its minimum size: scale the picture itself
    sheet.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return sheet


def balanced_columns(count: int, max_columns: int = MAX_COLUMNS) -> int:
    """Columns for `count` tiles: as few rows as `max_columns` allows, filled evenly."""
    rows = math.ceil(count / max_columns)
    return math.ceil(count / rows)


def font(size: int) -> Font:
    """Pillow's bundled font at `size` px (its small bitmap font where FreeType is missing)."""
    return ImageFont.load_default(size=size)


def wrap(
    text: str,
    width: int,
    typeface: Font,
    max_lines: int,
) -> list[str]:
    """`text` in at most `max_lines` lines of at most `width` px, the last one ending in
    "…" when something had to go. Breaks at spaces and at `,+;=/`, else mid-word."""
    # Newlines and tabs are just spaces; and no caption needs more characters than its
    # lines can show (one per px is generous), so a hostile one costs no more than a long one.
    text = " ".join(text[: max_lines * (width + 1)].split())
    lines: list[tuple[str, str]] = []  # (line, what joins it to the next when shortening)
    current = ""
    for piece in (part for part in _BREAK_AFTER.split(text) if part):
        if typeface.getlength(current + piece) <= width:
            current += piece
            continue
        if current:
            lines.append((current.rstrip(), " " if current.endswith(" ") else ""))
        current = piece.lstrip()
        while typeface.getlength(current) > width and len(current) > 1:  # one long word
            cut = _longest_prefix(current, width, typeface)
            lines.append((current[:cut], ""))
            current = current[cut:]
    if current:
        lines.append((current.rstrip(), ""))
    if len(lines) > max_lines:
        rest = "".join(line + joiner for line, joiner in lines[max_lines - 1 :])
        lines = [*lines[: max_lines - 1], (_shorten(rest, width, typeface), "")]
    return [line for line, _ in lines]


def _longest_prefix(text: str, width: int, typeface: Font, suffix: str = "") -> int:
    """Length of the longest prefix of `text` that fits in `width` with `suffix`, at least 1."""
    low, high = 1, len(text)  # binary search: text width grows with its length
    while low < high:
        middle = (low + high + 1) // 2
        if typeface.getlength(text[:middle] + suffix) <= width:
            low = middle
        else:
            high = middle - 1
    return low


def _shorten(text: str, width: int, typeface: Font) -> str:
    if typeface.getlength(text) <= width:
        return text
    cut = _longest_prefix(text, width, typeface, suffix="…")
    return text[:cut].rstrip() + "…"


@dataclass(frozen=True)
class _Layout:
    """Where everything goes for one tile height; `size` is known before drawing."""

    columns: int
    rows: int
    box: tuple[int, int]  # the largest a tile may be: (width, height)
    pad: int
    caption_font: Font
    title_font: Font
    line_height: int
    caption_height: int
    title_lines: tuple[str, ...]
    title_line_height: int

    @classmethod
    def plan(
        cls,
        tiles: Sequence[tuple[str, Image.Image]],
        title: str | None,
        columns: int,
        tile_height: int,
    ) -> _Layout:
        widest = max(image.width / image.height for _, image in tiles)
        aspect = min(max(widest, MIN_TILE_ASPECT), MAX_TILE_ASPECT)
        box = (max(1, round(tile_height * aspect)), tile_height)
        pad = max(4, tile_height // 32)
        caption_size = max(MIN_FONT, min(28, tile_height // 13))
        caption_font, title_font = font(caption_size), font(round(caption_size * 1.25))
        line_height = _line_height(caption_font)
        lines = max(len(wrap(caption, box[0], caption_font, CAPTION_LINES)) for caption, _ in tiles)
        rows = math.ceil(len(tiles) / columns)
        width = columns * box[0] + (columns + 1) * pad
        title_lines = tuple(wrap(title, width - 2 * pad, title_font, TITLE_LINES)) if title else ()
        return cls(
            columns=columns,
            rows=rows,
            box=box,
            pad=pad,
            caption_font=caption_font,
            title_font=title_font,
            line_height=line_height,
            caption_height=lines * line_height + pad // 2,
            title_lines=title_lines,
            title_line_height=_line_height(title_font),
        )

    @property
    def title_height(self) -> int:
        return len(self.title_lines) * self.title_line_height + (
            self.pad if self.title_lines else 0
        )

    @property
    def size(self) -> tuple[int, int]:
        width = self.columns * self.box[0] + (self.columns + 1) * self.pad
        cell = self.box[1] + self.caption_height
        return width, self.pad + self.title_height + self.rows * (cell + self.pad)

    def draw(self, tiles: Sequence[tuple[str, Image.Image]], title: str | None) -> Image.Image:
        sheet = Image.new("RGB", self.size, BACKGROUND)
        pen = ImageDraw.Draw(sheet)
        y = self.pad
        for line in self.title_lines:
            _centred(pen, sheet.width / 2, y, line, self.title_font)
            y += self.title_line_height
        top = self.pad + self.title_height
        for index, (caption, image) in enumerate(tiles):
            row, column = divmod(index, self.columns)
            left = self.pad + column * (self.box[0] + self.pad)
            cell_top = top + row * (self.box[1] + self.caption_height + self.pad)
            tile = _fit(image.convert("RGB"), self.box)
            # Centred in its box; a narrow tile's box stays background.
            offset = ((self.box[0] - tile.width) // 2, (self.box[1] - tile.height) // 2)
            sheet.paste(tile, (left + offset[0], cell_top + offset[1]))
            y = cell_top + self.box[1] + self.pad // 4
            for line in wrap(caption, self.box[0], self.caption_font, CAPTION_LINES):
                _centred(pen, left + self.box[0] / 2, y, line, self.caption_font)
                y += self.line_height
        return sheet


def _centred(pen: ImageDraw.ImageDraw, centre: float, top: int, line: str, typeface: Font) -> None:
    # Centred by hand: Pillow's bitmap fallback font knows no anchors.
    pen.text((round(centre - typeface.getlength(line) / 2), top), line, font=typeface, fill=INK)


def _fit(image: Image.Image, box: tuple[int, int]) -> Image.Image:
    """`image` scaled (up or down, aspect kept) to the largest size inside `box`."""
    scale = min(box[0] / image.width, box[1] / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


def _line_height(typeface: Font) -> int:
    top, bottom = typeface.getbbox("Ag…")[1::2]
    return math.ceil((bottom - top) * 1.35) + 1
