"""Tiled gradients and mixed precision: same dream, bounded memory, no retracing."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dream_engine import DreamEngine, DreamParams, ParamError, load_preset
from dream_engine.core.ascent import Objective
from dream_engine.core.results import DreamResult

pytestmark = pytest.mark.slow  # engines of their own: tiled, bfloat16, float16


@pytest.fixture(scope="module")
def tiled_dogs() -> DreamEngine:
    return DreamEngine(model="dogs", tile_size=96)


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_tiles_cover_every_pixel_up_to_the_last_row_and_column(tiled_dogs, dogs_engine):
    """A common bug skips the last partial row or column of tiles."""
    layers = ("block_6_project_BN",)
    weights = Objective(tf.constant([1.0]), tf.zeros([0]), tf.constant(0), tf.constant(0.0))
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


def test_an_image_of_one_tile_takes_the_untiled_loop_with_the_same_gradient(tiled_dogs):
    """The untiled form skips the tile loop; a one-tile image must not notice."""
    layers = ("block_6_project_BN",)
    weights = Objective(tf.constant([1.0]), tf.zeros([0]), tf.constant(0), tf.constant(0.0))
    img = tf.random.stateless_uniform([90, 70, 3], seed=[3, 4], minval=-1.0, maxval=1.0)
    one_tile = tiled_dogs._stepper(layers, tiled_dogs.tile_size)
    assert [int(v) for v in one_tile._tiling(tf.constant(90))] == [96, 1]
    grads, loss, _ = one_tile._gradients(img, weights)
    direct_grads, direct_loss, _ = tiled_dogs._stepper(layers, None)._gradients(img, weights)
    np.testing.assert_allclose(direct_grads.numpy(), grads.numpy(), rtol=1e-4, atol=1e-6)
    assert float(direct_loss) == pytest.approx(float(loss), rel=1e-5)


def test_tiling_never_retraces_across_sizes(tiled_dogs, cat_photo):
    """Two compiled loops, one tiled and one not, each traced once whatever the size."""
    params = load_preset("dogs-swirls").replace(octaves=1, iterations=1)
    tiled_dogs.dream(cat_photo.resize((80, 60)), params)  # one tile: the untiled loop
    tiled_dogs.dream(cat_photo.resize((200, 150)), params)  # 3x2 tiles
    traces = tiled_dogs.trace_count
    for size in [(90, 70), (200, 150), (311, 97), (97, 311)]:  # one tile and many
        tiled_dogs.dream(cat_photo.resize(size), params)
    assert tiled_dogs.trace_count == traces


def test_tiled_dreams_take_the_knobs_of_the_view_and_the_bands_without_retracing(
    tiled_dogs, cat_photo
):
    """The view's transform and the Laplacian bands act on the whole image's gradient, so
    they work across tiles as on one; each combination is traced once for every size."""
    base = load_preset("dogs-swirls").replace(octaves=1, iterations=2)
    knobs = base.replace(scale_jitter=0.05, rotate_jitter=5.0, lap_levels=3)
    photo = cat_photo.resize((200, 150))  # 3x2 tiles of 96
    plain, turned = (tiled_dogs.dream(photo, params) for params in (base, knobs))
    traces = tiled_dogs.trace_count
    tiled_dogs.dream(cat_photo.resize((311, 97)), knobs)
    assert tiled_dogs.trace_count == traces
    assert all(np.isfinite(loss) for loss in turned.losses[-1])
    assert np.abs(pixels(plain.image) - pixels(turned.image)).mean() > 0.3


PRECISION_PARAMS = load_preset("dogs-dream").replace(octaves=2, iterations=8)


def nudged(photo: Image.Image, seed: int) -> Image.Image:
    """The photo with every value moved one level (1/255) up or down at random."""
    steps = np.random.default_rng(seed).choice(np.array([-1, 1], np.int16), pixels(photo).shape)
    return Image.fromarray(np.clip(np.asarray(photo, np.int16) + steps, 0, 255).astype(np.uint8))


@dataclass(frozen=True)
class Chaos:
    """Float32's dream of the photo, and how far float32 itself moves it at a glance (mean
    difference at 1/8 size, in 0-255 levels) when the photo moves by one level."""

    reference: DreamResult
    twin_disagreement: float


@pytest.fixture(scope="module")
def float32_chaos(dogs_engine, cat_photo) -> Chaos:
    # `auto` keeps the dogs network in float32 on every device (it gains nothing in less).
    engine = dogs_engine if dogs_engine.precision == "float32" else None
    engine = engine or DreamEngine(model="dogs", precision="float32")
    reference = engine.dream(cat_photo, PRECISION_PARAMS)
    twins = [engine.dream(nudged(cat_photo, seed), PRECISION_PARAMS) for seed in (1, 2)]
    apart = [np.abs(low_res(t.image) - low_res(reference.image)).mean() for t in twins]
    return Chaos(reference, float(np.mean(apart)))


def assert_within_the_chaos(dream: DreamResult, chaos: Chaos) -> None:
    """A reduced precision moves the dream no further than a one-level nudge of the photo.

    Gradient ascent amplifies any difference: measured over 8 inputs (the photo and 7 nudged
    copies, on an AMX_BF16 Xeon), float32 of a twin nudged by ±1/255 differs from float32
    by 2.46-2.65 levels at 1/8, bfloat16 by 2.46-2.57, float16 by 2.22-2.40 (at most 1.06x
    the twin's), and the last octave's loss by up to 3.8% (twins), 4.5% and 3.0%. A broken
    precision path (overflow, no loss scaling) is far outside either margin.
    """
    assert all(np.isfinite(loss) for octave in dream.losses for loss in octave)
    reference = chaos.reference
    assert dream.losses[-1][-1] == pytest.approx(reference.losses[-1][-1], rel=0.07)
    disagreement = np.abs(low_res(dream.image) - low_res(reference.image)).mean()
    assert disagreement <= 1.25 * chaos.twin_disagreement, (disagreement, chaos.twin_disagreement)


def test_bfloat16_dream_stays_close_to_float32(float32_chaos, cat_photo):
    bf16 = DreamEngine(model="dogs", precision="mixed_bfloat16")
    assert bf16.backbone.layers[2].compute_dtype == "bfloat16"
    assert_within_the_chaos(bf16.dream(cat_photo, PRECISION_PARAMS), float32_chaos)


def test_float16_dream_stays_close_to_float32(float32_chaos, cat_photo):
    """The GPU's tensor-core path, run on the CPU: folded kernels, loss scaling, float32 loss."""
    fp16 = DreamEngine(model="dogs", precision="mixed_float16")
    assert fp16.backbone.get_layer("Conv1").compute_dtype == "float16"
    assert_within_the_chaos(fp16.dream(cat_photo, PRECISION_PARAMS), float32_chaos)


def test_the_guard_fails_a_precision_path_that_really_breaks_the_dream(
    float32_chaos, cat_photo, monkeypatch
):
    """The guard is not so loose that anything passes: a float16 path whose loss scale
    overflows float16 in the backward pass (2**24 instead of 128) ruins the dream, and
    the guard says so. Measured: 115 levels apart at 1/8 against the twin's 2.6, the
    loss 66% short. (Rounding the image to 8 bits or to float16 after every step, by
    contrast, moves it no more than the twin does: those are not broken.)"""
    monkeypatch.setattr("dream_engine.core.engine.FLOAT16_LOSS_SCALE", 2.0**24)
    overflowing = DreamEngine(model="dogs", precision="mixed_float16")
    with warnings.catch_warnings():  # NumPy's, turning the ruined pixels into bytes
        warnings.simplefilter("ignore", RuntimeWarning)
        broken = overflowing.dream(cat_photo, PRECISION_PARAMS)
    with pytest.raises(AssertionError):
        assert_within_the_chaos(broken, float32_chaos)


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
