"""The engine's sizing rules as plain arithmetic: what size it dreams at, how it tiles.

The engine applies these inside its graph (on int tensors) and the out-of-memory
retry plans with them in Python (on ints), so a retry knows what the engine will
really run instead of guessing. No TensorFlow here.
"""

from __future__ import annotations

from typing import Any

DEFAULT_MIN_SIDE = 16
"""Shortest side accepted: below this the model's receptive field sees nothing."""
# Longest side over shortest: beyond this a strip would be dreamed at the model's minimum
# height and many times its width, so it is refused with the upload, not at its turn.
MAX_ASPECT_RATIO = 20

TILE_MARGIN_DIVISOR = 8  # each tile is seen with tile_size // 8 of context around it,
MIN_TILE_MARGIN = 96  # at least the border trim at the deepest stride and a model's minimum
# Tiles start on multiples of the deepest stride, so each tile's activation grid is the
# whole image's grid: tiled and untiled see the same features.
TILE_ALIGN = 32


def round_up(value: Any, multiple: int) -> Any:
    """`value` rounded up to a multiple of `multiple` (an int or an int tensor)."""
    return (value + multiple - 1) // multiple * multiple


def tile_layout(size: Any, tile_size: int) -> tuple[Any, Any]:
    """(tile length, tile count) along one axis of `size` px: as few tiles as
    `tile_size` allows, equal and aligned, covering the whole axis."""
    count = (size + tile_size - 1) // tile_size
    length = round_up((size + count - 1) // count, TILE_ALIGN)
    return length, (size + length - 1) // length


def tiles_needed(size: tuple[int, int], tile_size: int | None) -> int:
    """How many tiles an image of `size` (either order) is split into; 1 when untiled."""
    if tile_size is None:
        return 1
    first, second = (tile_layout(side, tile_size)[1] for side in size)
    return first * second


def tile_margin(tile_size: int | None) -> int:
    """Context seen around each tile (only when there is more than one)."""
    return round_up(max((tile_size or 0) // TILE_MARGIN_DIVISOR, MIN_TILE_MARGIN), TILE_ALIGN)


def seen_at_once(size: tuple[int, int], tile_size: int | None) -> tuple[int, int]:
    """(width, height) of what the network is given at once: the image, or a tile and its
    margins. This, not the image, is what bounds a step's memory."""
    if tile_size is None:
        return size
    (tile_w, cols), (tile_h, rows) = (tile_layout(side, tile_size) for side in size)
    if rows * cols == 1:
        return size
    margin = 2 * tile_margin(tile_size)
    return min(size[0], tile_w + margin), min(size[1], tile_h + margin)


def working_size(size: tuple[int, int], max_side: int | None, min_side: int) -> tuple[int, int]:
    """The (width, height) an image of `size` is dreamed at: within `max_side`, unless
    its short side would then fall under the model's `min_side`, which wins."""
    width, height = size
    scale = min(1.0, max_side / max(width, height)) if max_side is not None else 1.0
    short = min(width, height)
    if short * scale < min_side:
        factor = min_side / short
        return max(min_side, round(width * factor)), max(min_side, round(height * factor))
    if scale < 1:
        return max(1, round(width * scale)), max(1, round(height * scale))
    return size
