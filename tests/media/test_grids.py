"""Labelled grids: tiles in order at one height, captions drawn under them, a size bound."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from dream_engine.media.grids import MIN_FONT, balanced_columns, compose_grid, font, wrap

COLOURS = [(220, 30, 30), (30, 160, 60), (40, 60, 220), (230, 200, 20), (160, 40, 200)]
SIZES = [(300, 200), (120, 160), (200, 100), (90, 90), (400, 300)]


def solid_tiles(captions: list[str]) -> list[tuple[str, Image.Image]]:
    return [(caption, Image.new("RGB", SIZES[i], COLOURS[i])) for i, caption in enumerate(captions)]


def box_of(sheet: Image.Image, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the pixels of exactly `colour`."""
    mask = np.all(np.asarray(sheet) == colour, axis=-1)
    assert mask.any(), f"{colour} is not on the sheet"
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    return cols[0], rows[0], cols[-1] + 1, rows[-1] + 1


def dark(region: np.ndarray) -> int:
    """Pixels dark enough to be text (the tiles here are all bright or saturated)."""
    return int((region.max(axis=-1) < 100).sum())


def test_tiles_keep_their_order_row_by_row_at_one_height():
    sheet = compose_grid(solid_tiles(["input", "a", "b", "c", "d"]), tile_height=100)
    boxes = [box_of(sheet, colour) for colour in COLOURS]
    heights = {bottom - top for _, top, _, bottom in boxes}
    assert heights == {100}  # every tile scaled to the common height, aspect kept
    for (left, _, right, _), (width, height) in zip(boxes, SIZES, strict=True):
        assert (right - left) == pytest.approx(100 * width / height, abs=1)
    # 5 tiles -> 3 + 2: the input first, top left; then left to right, top to bottom.
    tops = [top for _, top, _, _ in boxes]
    assert tops[0] == tops[1] == tops[2] < tops[3] == tops[4]
    assert boxes[0][0] < boxes[1][0] < boxes[2][0]
    assert boxes[3][0] < boxes[4][0]
    assert boxes[0][0] == min(box[0] for box in boxes)


def test_captions_are_drawn_under_their_tile_and_stay_in_its_column():
    sheet = compose_grid(solid_tiles(["input", "step=0.005", "step=0.05"]), tile_height=120)
    pixels = np.asarray(sheet)
    columns = [box_of(sheet, colour) for colour in COLOURS[:3]]
    for left, top, right, bottom in columns:
        assert dark(pixels[top:bottom, left:right]) == 0  # the tile itself is untouched
        assert dark(pixels[bottom : bottom + 40, left:right]) > 20  # its caption, as ink
    assert dark(pixels[: columns[0][1]]) == 0  # no title asked for, none drawn
    # A long caption wraps inside its own column instead of running into the next.
    long = compose_grid(
        solid_tiles(["layers=" + "+".join(f"mixed{i}:0.5" for i in range(11)), "b", "c"]),
        tile_height=120,
    )
    first, second = ((left + right) // 2 for left, _, right, _ in columns[:2])
    boundary = (first + second) // 2  # between the two columns' boxes
    band = np.asarray(long)[columns[0][3] :]
    assert dark(band[:, :boundary]) > 100
    assert dark(band[:, boundary : second - 15]) == 0  # nothing crosses into the next column


def test_title_goes_above_the_tiles():
    plain = compose_grid(solid_tiles(["a", "b"]), tile_height=80)
    titled = compose_grid(solid_tiles(["a", "b"]), tile_height=80, title="same for all: seed=0")
    offset = box_of(titled, COLOURS[0])[1] - box_of(plain, COLOURS[0])[1]
    assert offset > 10 and titled.height == plain.height + offset
    assert dark(np.asarray(titled)[: box_of(titled, COLOURS[0])[1]]) > 20


@pytest.mark.parametrize(("count", "columns"), [(1, 1), (2, 2), (4, 4), (5, 3), (9, 3), (12, 4)])
def test_balanced_columns_fill_rows_evenly(count, columns):
    assert balanced_columns(count) == columns


def test_a_big_sheet_shrinks_its_tiles_to_fit_max_side():
    tiles = solid_tiles(["input", "a", "b", "c", "d"])
    tiles += [("more", Image.new("RGB", (300, 200), (200, 200, 200)))] * 25  # 30: 8 rows of 4
    sheet = compose_grid(tiles, tile_height=400, max_side=900)
    assert max(sheet.size) <= 900
    assert 0 < box_of(sheet, COLOURS[0])[3] - box_of(sheet, COLOURS[0])[1] < 400
    # Captions are still laid out for reading, not scaled into dust.
    assert dark(np.asarray(sheet)) > 30 * 20


@pytest.mark.parametrize(
    "caption",
    [
        "x" * 5000,
        "line\nbreaks\tand\x00control\x1bcharacters",
        "🐱🐶" * 50,
        "layers=" + "+".join(f"block_{i}_add:0.25" for i in range(16)),
        "",
    ],
)
def test_wrap_keeps_any_caption_within_its_width_and_line_count(caption):
    typeface = font(14)
    lines = wrap(caption, 150, typeface, 2)
    assert len(lines) <= 2
    assert all(typeface.getlength(line) <= 150 for line in lines)
    if len(caption) > 200:
        assert lines[-1].endswith("…")
    compose_grid([(caption, Image.new("RGB", (50, 50), (200, 200, 200)))])  # draws, no error


def test_wrap_breaks_at_separators_and_keeps_short_captions_whole():
    typeface = font(MIN_FONT + 3)
    assert wrap("step=0.005", 300, typeface, 2) == ["step=0.005"]
    lines = wrap("step=0.005, octaves=1, octave_scale=1.8", 120, typeface, 3)
    assert (
        len(lines) > 1
        and "".join(lines).replace(" ", "") == "step=0.005,octaves=1,octave_scale=1.8"
    )


def test_no_tiles_is_a_programming_error():
    with pytest.raises(ValueError, match="at least one tile"):
        compose_grid([])


@pytest.mark.parametrize(
    ("size", "captions"),
    [
        ((102, 512), ["octave_scale=1.2", "octave_scale=1.8"]),  # a 1:5 upload
        ((473, 1024), ["layers=mixed3+mixed5:0.5", "layers=mixed3+mixed5:2"]),  # a screenshot
    ],
)
def test_captions_under_tall_images_still_tell_the_tiles_apart(size, captions):
    image = Image.new("RGB", size, (90, 120, 150))

    def sheet(names: list[str]) -> bytes:
        tiles = [("input", image), *((name, image) for name in names)]
        return compose_grid(tiles, tile_height=320).tobytes()

    assert sheet(captions) != sheet([captions[0], captions[0]])
