"""Laplacian-pyramid gradient normalisation: each band gets its share, any size keeps its
shape, and a dream with it on traces once for every image size."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from dream_engine import DreamParams
from dream_engine.core.laplacian import laplacian_normalize


def low_frequency_share(values: np.ndarray) -> float:
    """Share of the power below 1/16 cycle per pixel: the structures, not the pixel noise."""
    power = np.abs(np.fft.fft2(values, axes=(0, 1))) ** 2
    fy = np.fft.fftfreq(values.shape[0])[:, None]
    fx = np.fft.fftfreq(values.shape[1])[None, :]
    low = (np.hypot(fy, fx) < 1 / 16)[..., None]
    return float((power * low).sum() / power.sum())


@pytest.fixture(scope="module")
def noisy_gradient() -> tf.Tensor:
    """A broad wave under pixel noise ten times as strong: a raw gradient's make-up."""
    height, width = 97, 131  # odd sides: every halving rounds
    _, x = np.mgrid[0:height, 0:width]
    wave = np.sin(2 * np.pi * x / 64)[..., None] * np.ones(3)
    noise = np.random.default_rng(0).normal(0, 10, (height, width, 3))
    return tf.constant((wave + noise).astype(np.float32))


def test_no_levels_leave_the_gradient_as_it_is(noisy_gradient):
    same = laplacian_normalize(noisy_gradient, 0)
    np.testing.assert_array_equal(same.numpy(), noisy_gradient.numpy())


def test_each_band_gets_its_share_so_the_broad_structure_is_no_longer_drowned(noisy_gradient):
    normalised = [laplacian_normalize(noisy_gradient, levels).numpy() for levels in (0, 2, 4)]
    shares = [low_frequency_share(values) for values in normalised]
    assert shares[0] < 0.05  # raw: the noise has nearly all the power
    assert shares[0] < shares[1] < shares[2]
    assert shares[2] > 0.3


@pytest.mark.parametrize("size", [(1, 1), (5, 7), (64, 64), (97, 131)])
def test_any_size_keeps_its_shape(size):
    gradient = tf.random.stateless_normal([*size, 3], seed=[1, 2])
    normalised = laplacian_normalize(gradient, 4)
    assert normalised.shape == gradient.shape
    assert np.isfinite(normalised.numpy()).all()


@pytest.mark.slow  # dreams on the session's InceptionV3
def test_a_dream_with_lap_levels_traces_once_for_every_size_and_changes_the_dream(
    inception_engine,
):
    params = DreamParams(layers={"mixed3": 1.0}, octaves=1, iterations=3, lap_levels=4)
    rng = np.random.default_rng(5)
    photos = [
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
        for width, height in ((120, 90), (150, 101), (97, 133))
    ]
    inception_engine.dream(photos[0], params)  # traces the step with 4 levels
    traces = inception_engine.trace_count
    smoothed = [inception_engine.dream(photo, params) for photo in photos]
    assert inception_engine.trace_count == traces  # new sizes, no new trace
    assert [result.image.size for result in smoothed] == [photo.size for photo in photos]
    plain = inception_engine.dream(photos[0], params.replace(lap_levels=0))
    again = inception_engine.dream(photos[0], params)
    apart = np.abs(np.asarray(plain.image, np.int16) - np.asarray(smoothed[0].image, np.int16))
    assert apart.mean() > 0.5  # the normalisation changes the steps it takes
    np.testing.assert_array_equal(np.asarray(again.image), np.asarray(smoothed[0].image))
