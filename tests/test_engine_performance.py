"""Tiled gradients and mixed precision: same dream, bounded memory, no retracing."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dream_engine import DreamEngine, DreamParams, ParamError, load_preset
from dream_engine.core.engine import _Objective


@pytest.fixture(scope="module")
def tiled_dogs() -> DreamEngine:
    return DreamEngine(model="dogs", tile_size=96)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_tiles_cover_every_pixel_up_to_the_last_row_and_column(tiled_dogs, dogs_engine):
    """A common bug skips the last partial row or column of tiles."""
    layers = ("block_6_project_BN",)
    weights = _Objective(tf.constant([1.0]), tf.zeros([0]), tf.constant(0), tf.constant(0.0))
    img = tf.random.stateless_uniform([250, 230, 3], seed=[1, 2], minval=-1.0, maxval=1.0)
    tiled = tiled_dogs._stepper(layers, tiled_dogs.tile_size)
    assert [int(v) for v in tiled._tiling(tf.constant(250))] == [96, 3]  # on the 32-px grid
    grads, loss, _ = tiled._gradients(img, weights)
    whole_grads, whole_loss, _ = dogs_engine._stepper(layers, None)._gradients(
        img, weights
    )  # one tile
    reached = np.abs(grads.numpy()).sum(axis=2) > 0
    reached_whole = np.abs(whole_grads.numpy()).sum(axis=2) > 0
    assert reached[reached_whole].all()  # every pixel the whole-image gradient moves
    assert reached[168:, 154:].mean() > 0.8  # the last tile, bottom right
    assert float(loss) == pytest.approx(float(whole_loss), rel=0.002)  # normalised by area


def low_res(image: Image.Image) -> np.ndarray:
    """The picture as a person sees it at a glance: 1/8 size, no pixel-level chaos."""
    return pixels(image.resize((image.width // 8, image.height // 8), Image.Resampling.BOX))


def assert_same_dream(dream, reference, source: Image.Image, loss_tolerance: float) -> None:
    """Two runs of one dream match: losses per octave, and the picture at a glance.

    Gradient ascent is chaotic at the pixel level (a tiny difference moves an eye
    by a few pixels), so the comparison is of losses and of the image at 1/8.
    """
    for ours, theirs in zip(dream.losses, reference.losses, strict=True):
        assert ours[-1] == pytest.approx(theirs[-1], rel=loss_tolerance)
    change = np.abs(low_res(reference.image) - low_res(source)).mean()
    disagreement = np.abs(low_res(dream.image) - low_res(reference.image)).mean()
    assert disagreement < 0.8 * change, (disagreement, change)


def test_tiled_and_untiled_dreams_match(dogs_engine, cat_photo):
    photo = cat_photo.resize((480, 320), Image.Resampling.LANCZOS)
    tiled = DreamEngine(model="dogs", tile_size=256)  # 480x320 -> 2x2 tiles, 1x2 at octave 1
    # The same random rolls for both (tiling rolls by at least half a tile).
    params = load_preset("dogs-swirls").replace(octaves=2, iterations=8, jitter=80)
    reference = dogs_engine.dream(photo, params)
    assert_same_dream(tiled.dream(photo, params), reference, photo, loss_tolerance=0.1)


def test_tiling_never_retraces_across_sizes(tiled_dogs, cat_photo):
    params = load_preset("dogs-swirls").replace(octaves=1, iterations=1)
    tiled_dogs.dream(cat_photo, params)
    traces = tiled_dogs.trace_count
    for size in [(90, 70), (200, 150), (311, 97), (97, 311)]:  # one tile and many
        tiled_dogs.dream(cat_photo.resize(size), params)
    assert tiled_dogs.trace_count == traces


def test_bfloat16_dream_stays_close_to_float32(dogs_engine, cat_photo):
    bf16 = DreamEngine(model="dogs", precision="mixed_bfloat16")
    assert bf16.backbone.layers[2].compute_dtype == "bfloat16"
    params = load_preset("dogs-dream").replace(octaves=2, iterations=8)
    reference = dogs_engine.dream(cat_photo, params)
    assert_same_dream(bf16.dream(cat_photo, params), reference, cat_photo, loss_tolerance=0.05)


def test_float16_dream_stays_close_to_float32(dogs_engine, cat_photo):
    """The GPU's tensor-core path, run on the CPU: folded kernels, loss scaling, float32 loss."""
    fp16 = DreamEngine(model="dogs", precision="mixed_float16")
    assert fp16.backbone.get_layer("Conv1").compute_dtype == "float16"
    params = load_preset("dogs-dream").replace(octaves=2, iterations=8)
    reference = dogs_engine.dream(cat_photo, params)
    dream = fp16.dream(cat_photo, params)
    assert all(np.isfinite(loss) for octave in dream.losses for loss in octave)
    assert_same_dream(dream, reference, cat_photo, loss_tolerance=0.05)


def test_a_dream_can_turn_tiles_off_with_0_and_is_held_to_the_tile_range(
    inception_engine, cat_photo
):
    one_step = DreamParams(layers={"mixed3": 1.0}, octaves=1, iterations=1)
    untiled = inception_engine.dream(cat_photo, one_step, tile_size=None)
    off = inception_engine.dream(cat_photo, one_step, tile_size=0)  # as --tile-size 0 says
    assert np.array_equal(np.asarray(off.image), np.asarray(untiled.image))
    with pytest.raises(ParamError, match="tile_size: from 150 to 32768 px"):
        inception_engine.dream(cat_photo, one_step, tile_size=100)


def test_bad_engine_options_are_refused():
    with pytest.raises(ParamError, match="precision"):
        DreamEngine(model="dogs", precision="int8")
    for tile_size in (100, 99_999_999_999):  # under two minimum sides; past any image
        with pytest.raises(ParamError, match="tile_size: from 150 to 32768 px"):
            DreamEngine(model="inceptionv3", weights="random", tile_size=tile_size)
